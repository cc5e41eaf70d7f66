import { channelName, ident, literal } from './sql';

/** One step of the schema, applied once, in order, in its own transaction. */
export interface Migration {
  version: number;
  name: string;
  sql: (schema: string) => string;
}

/**
 * Keys and the audit log. Keys notify their channel on every change (the row as JSON, which holds the key's SHA-256,
 * never the key), so every replica's key ring follows without polling. Audit records are whole JSON texts (`record`)
 * so that the hash covers exactly the bytes stored; `audit_chains` lists every chain ever started (insert-only), so
 * that a chain deleted as a whole is still missed by `verify`.
 */
const v1: Migration = {
  version: 1,
  name: 'keys and audit',
  sql: (schema) => {
    const s = ident(schema);
    const keys = literal(channelName(schema, 'keys'));
    return `
CREATE TABLE ${s}.keys (
  id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
  sha256 text NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  team text,
  project text,
  profile text,
  admin boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
CREATE FUNCTION ${s}.keys_notify() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify(${keys}, '{"op":"reload"}');
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM pg_notify(${keys}, json_build_object('op', 'delete', 'id', OLD.id)::text);
  ELSE
    PERFORM pg_notify(${keys}, json_build_object('op', 'upsert', 'key', row_to_json(NEW))::text);
  END IF;
  RETURN NULL;
END $f$;
CREATE TRIGGER keys_notify AFTER INSERT OR UPDATE OR DELETE ON ${s}.keys FOR EACH ROW EXECUTE FUNCTION ${s}.keys_notify();
CREATE TRIGGER keys_truncate_notify AFTER TRUNCATE ON ${s}.keys FOR EACH STATEMENT EXECUTE FUNCTION ${s}.keys_notify();

CREATE TABLE ${s}.audit_chains (
  chain text PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now(),
  info jsonb
);
CREATE TABLE ${s}.audit (
  chain text NOT NULL,
  seq bigint NOT NULL CHECK (seq > 0),
  t timestamptz NOT NULL,
  type text NOT NULL,
  record text NOT NULL,
  hash text NOT NULL,
  PRIMARY KEY (chain, seq)
);
CREATE INDEX audit_t ON ${s}.audit (t);
`;
  },
};

/**
 * Budgets and rate limits. Replicas change them only through these functions (SECURITY DEFINER, owned by the owner
 * role): a lease on a slice of a window's room, settled spend, overrides, limits. So the serving role needs EXECUTE
 * and SELECT here, never UPDATE, and every change to a window happens under that window's row lock.
 */
const v2: Migration = {
  version: 2,
  name: 'budget and rate leases',
  sql: (schema) => {
    const s = ident(schema);
    const budgets = literal(channelName(schema, 'budgets'));
    const definer = 'LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp';
    return `
CREATE TABLE ${s}.budget_windows (
  scope text NOT NULL,
  period text NOT NULL,
  window_start timestamptz NOT NULL,
  window_end timestamptz NOT NULL,
  limit_usd double precision NOT NULL,
  override_usd double precision,
  override_by text,
  spent_usd double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (scope, period, window_start)
);
CREATE TABLE ${s}.budget_leases (
  scope text NOT NULL,
  period text NOT NULL,
  window_start timestamptz NOT NULL,
  replica text NOT NULL,
  granted_usd double precision NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, period, window_start, replica)
);

-- Settles p_delta of spend (it moves from the replica's lease into spent) and resizes the replica's lease to p_want:
-- a smaller lease is always given (room returned); a larger one only while the window has room, and once the room
-- is smaller than the call that waits (p_need), exactly that call (so the window ends at most one call over).
-- p_floor (the replica's reservations in flight) is always kept.
CREATE FUNCTION ${s}.budget_sync(p_replica text, p_scope text, p_period text, p_start timestamptz, p_end timestamptz,
    p_configured double precision, p_delta double precision, p_floor double precision, p_want double precision,
    p_need double precision, p_lease_ms integer)
  RETURNS TABLE (o_granted double precision, o_limit double precision, o_spent double precision, o_others double precision, o_overridden boolean)
  ${definer} AS $f$
DECLARE
  w record;
  cur double precision;
  others double precision;
  lim double precision;
  room double precision;
  nxt double precision;
BEGIN
  -- Spend only grows: a caller cannot hand spend back or lease a negative amount.
  IF NOT (p_delta >= 0 AND p_floor >= 0 AND p_want >= 0 AND p_need >= 0 AND p_configured > 0 AND p_lease_ms BETWEEN 1000 AND 3600000) THEN
    RAISE EXCEPTION 'budget_sync: amounts must be >= 0, the limit > 0 and the lease 1 s to 1 h' USING ERRCODE = '22023';
  END IF;
  INSERT INTO ${s}.budget_windows AS b (scope, period, window_start, window_end, limit_usd)
    VALUES (p_scope, p_period, p_start, p_end, p_configured) ON CONFLICT DO NOTHING;
  UPDATE ${s}.budget_windows AS b SET spent_usd = b.spent_usd + p_delta
    WHERE b.scope = p_scope AND b.period = p_period AND b.window_start = p_start
    RETURNING b.spent_usd, b.limit_usd, b.override_usd INTO w;
  SELECT l.granted_usd INTO cur FROM ${s}.budget_leases AS l
    WHERE l.scope = p_scope AND l.period = p_period AND l.window_start = p_start AND l.replica = p_replica AND l.expires_at > now();
  cur := greatest(coalesce(cur, 0) - p_delta, 0);
  SELECT coalesce(sum(l.granted_usd), 0) INTO others FROM ${s}.budget_leases AS l
    WHERE l.scope = p_scope AND l.period = p_period AND l.window_start = p_start AND l.replica <> p_replica AND l.expires_at > now();
  lim := coalesce(w.override_usd, w.limit_usd);
  IF p_want <= cur THEN
    nxt := p_want;
  ELSE
    room := lim - w.spent_usd - others - cur;
    IF room >= p_want - cur THEN
      nxt := p_want;
    ELSIF room > 0 THEN
      nxt := cur + greatest(room, p_need);
    ELSE
      nxt := cur;
    END IF;
  END IF;
  nxt := greatest(nxt, p_floor, 0);
  IF nxt > 0 THEN
    INSERT INTO ${s}.budget_leases AS l (scope, period, window_start, replica, granted_usd, expires_at)
      VALUES (p_scope, p_period, p_start, p_replica, nxt, now() + p_lease_ms * interval '1 millisecond')
      ON CONFLICT (scope, period, window_start, replica) DO UPDATE SET granted_usd = excluded.granted_usd, expires_at = excluded.expires_at;
  ELSE
    DELETE FROM ${s}.budget_leases AS l
      WHERE l.scope = p_scope AND l.period = p_period AND l.window_start = p_start AND l.replica = p_replica;
  END IF;
  RETURN QUERY SELECT nxt, lim, w.spent_usd, others, w.override_usd IS NOT NULL;
END $f$;

-- Sets (p_usd) or clears (NULL) the limit of one budget for one window, and tells every replica.
CREATE FUNCTION ${s}.budget_override(p_scope text, p_period text, p_start timestamptz, p_end timestamptz,
    p_configured double precision, p_usd double precision, p_by text)
  RETURNS double precision ${definer} AS $f$
DECLARE
  lim double precision;
BEGIN
  IF NOT (p_configured > 0 AND (p_usd IS NULL OR p_usd >= 0)) THEN
    RAISE EXCEPTION 'budget_override: the limit must be >= 0' USING ERRCODE = '22023';
  END IF;
  INSERT INTO ${s}.budget_windows AS b (scope, period, window_start, window_end, limit_usd)
    VALUES (p_scope, p_period, p_start, p_end, p_configured) ON CONFLICT DO NOTHING;
  UPDATE ${s}.budget_windows AS b SET override_usd = p_usd, override_by = p_by
    WHERE b.scope = p_scope AND b.period = p_period AND b.window_start = p_start
    RETURNING coalesce(b.override_usd, b.limit_usd) INTO lim;
  PERFORM pg_notify(${budgets}, json_build_object('op', 'override', 'scope', p_scope, 'period', p_period,
    'start', (extract(epoch FROM p_start) * 1000)::bigint, 'usd', p_usd, 'limit', lim)::text);
  RETURN lim;
END $f$;

-- The configured limit of one budget's window (a replica started or reloaded its config); tells the others when it changed.
CREATE FUNCTION ${s}.budget_configure(p_scope text, p_period text, p_start timestamptz, p_end timestamptz, p_usd double precision)
  RETURNS void ${definer} AS $f$
DECLARE
  changed boolean;
BEGIN
  IF NOT (p_usd > 0) THEN
    RAISE EXCEPTION 'budget_configure: the limit must be > 0' USING ERRCODE = '22023';
  END IF;
  INSERT INTO ${s}.budget_windows AS b (scope, period, window_start, window_end, limit_usd)
    VALUES (p_scope, p_period, p_start, p_end, p_usd)
    ON CONFLICT (scope, period, window_start) DO UPDATE SET limit_usd = excluded.limit_usd WHERE b.limit_usd IS DISTINCT FROM excluded.limit_usd
    RETURNING true INTO changed;
  IF changed THEN
    PERFORM pg_notify(${budgets}, json_build_object('op', 'config', 'scope', p_scope, 'period', p_period,
      'start', (extract(epoch FROM p_start) * 1000)::bigint, 'usd', p_usd)::text);
  END IF;
END $f$;

CREATE TABLE ${s}.rate_windows (
  scope text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('requests', 'tokens')),
  PRIMARY KEY (scope, kind)
);
CREATE TABLE ${s}.rate_slots (
  scope text NOT NULL,
  kind text NOT NULL,
  second bigint NOT NULL,
  n double precision NOT NULL,
  PRIMARY KEY (scope, kind, second)
);
CREATE TABLE ${s}.rate_leases (
  scope text NOT NULL,
  replica text NOT NULL,
  outstanding bigint NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, replica)
);

-- Reports what a replica used per second (p_seconds, p_counts; for requests p_used of them came from its lease) and,
-- for requests, resizes its lease of unused admissions to p_want within what the sliding minute has left: the minute's
-- reported use plus every replica's unused lease never passes p_limit, so no minute admits more than p_limit.
-- Returns the replica's lease, the minute's use and the other replicas' leases, the seconds until a replica refused
-- more may try again, and the last 60 seconds' counts (oldest first) ending at second o_now.
CREATE FUNCTION ${s}.rate_sync(p_replica text, p_scope text, p_kind text, p_limit double precision, p_now bigint,
    p_seconds bigint[], p_counts double precision[], p_used bigint, p_want bigint, p_lease_ms integer)
  RETURNS TABLE (o_lease bigint, o_window double precision, o_others bigint, o_retry integer, o_slots double precision[], o_now bigint)
  ${definer} AS $f$
DECLARE
  now_sec bigint;
  mine bigint := 0;
  others bigint := 0;
  win double precision;
  room double precision;
  nxt bigint := 0;
  retry integer := 0;
  slots double precision[];
BEGIN
  -- Counts only grow: a caller cannot take back what was used or lease a negative amount.
  IF NOT (p_used >= 0 AND p_want >= 0 AND p_limit > 0 AND p_lease_ms BETWEEN 1000 AND 3600000
          AND coalesce(array_length(p_seconds, 1), 0) = coalesce(array_length(p_counts, 1), 0)
          AND NOT EXISTS (SELECT 1 FROM unnest(p_counts) AS c WHERE c < 0 OR c IS NULL)) THEN
    RAISE EXCEPTION 'rate_sync: counts must be >= 0, the limit > 0 and the lease 1 s to 1 h' USING ERRCODE = '22023';
  END IF;
  INSERT INTO ${s}.rate_windows AS r (scope, kind) VALUES (p_scope, p_kind) ON CONFLICT DO NOTHING;
  PERFORM 1 FROM ${s}.rate_windows AS r WHERE r.scope = p_scope AND r.kind = p_kind FOR UPDATE;
  IF coalesce(array_length(p_seconds, 1), 0) > 0 THEN
    INSERT INTO ${s}.rate_slots AS x (scope, kind, second, n)
      SELECT p_scope, p_kind, u.s, sum(u.c) FROM unnest(p_seconds, p_counts) AS u(s, c) GROUP BY u.s
      ON CONFLICT (scope, kind, second) DO UPDATE SET n = x.n + excluded.n;
  END IF;
  -- A replica's clock reading is taken before its round trip: a second another replica already reported is not in the
  -- future, so the minute ends at the latest second anyone reported (clock skew between replicas shifts it by as much).
  now_sec := greatest(p_now, coalesce((SELECT max(x.second) FROM ${s}.rate_slots AS x WHERE x.scope = p_scope AND x.kind = p_kind), p_now));
  DELETE FROM ${s}.rate_slots AS x WHERE x.scope = p_scope AND x.kind = p_kind AND x.second < now_sec - 120;
  SELECT array_agg(coalesce(x.n, 0) ORDER BY g.s) INTO slots
    FROM generate_series(now_sec - 59, now_sec) AS g(s)
    LEFT JOIN ${s}.rate_slots AS x ON x.scope = p_scope AND x.kind = p_kind AND x.second = g.s;
  win := (SELECT sum(v) FROM unnest(slots) AS v);
  IF p_kind = 'requests' THEN
    SELECT l.outstanding INTO mine FROM ${s}.rate_leases AS l WHERE l.scope = p_scope AND l.replica = p_replica AND l.expires_at > now();
    mine := greatest(coalesce(mine, 0) - p_used, 0);
    SELECT coalesce(sum(l.outstanding), 0) INTO others FROM ${s}.rate_leases AS l
      WHERE l.scope = p_scope AND l.replica <> p_replica AND l.expires_at > now();
    IF p_want <= mine THEN
      nxt := p_want;
    ELSE
      room := p_limit - win - others - mine;
      nxt := mine + greatest(0, least(floor(room)::bigint, p_want - mine));
    END IF;
    IF nxt > 0 THEN
      INSERT INTO ${s}.rate_leases AS l (scope, replica, outstanding, expires_at)
        VALUES (p_scope, p_replica, nxt, now() + p_lease_ms * interval '1 millisecond')
        ON CONFLICT (scope, replica) DO UPDATE SET outstanding = excluded.outstanding, expires_at = excluded.expires_at;
    ELSE
      DELETE FROM ${s}.rate_leases AS l WHERE l.scope = p_scope AND l.replica = p_replica;
    END IF;
    IF nxt < p_want THEN
      -- Leased admissions count as used now: they leave the minute last.
      retry := 60;
      FOR k IN 1..59 LOOP
        IF (SELECT coalesce(sum(v), 0) FROM unnest(slots[k + 1:60]) AS v) + others + nxt < p_limit THEN
          retry := k;
          EXIT;
        END IF;
      END LOOP;
    END IF;
  END IF;
  RETURN QUERY SELECT nxt, win, others, retry, slots, now_sec;
END $f$;

REVOKE ALL ON FUNCTION ${s}.budget_sync(text, text, text, timestamptz, timestamptz, double precision, double precision, double precision, double precision, double precision, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION ${s}.budget_override(text, text, timestamptz, timestamptz, double precision, double precision, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION ${s}.budget_configure(text, text, timestamptz, timestamptz, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION ${s}.rate_sync(text, text, text, double precision, bigint, bigint[], double precision[], bigint, bigint, integer) FROM PUBLIC;
`;
  },
};

/** Every migration, oldest first; the last one's version is the schema this code needs. */
export const MIGRATIONS: readonly Migration[] = [v1, v2];

/** The schema version this code reads and writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/**
 * The least-privilege grants for the role a gateway serves with, as SQL an operator runs as the owner (idempotent;
 * run again after an upgrade that adds tables): read the schema version; read and append audit records, never
 * change or remove them; read keys, create them and set revoked_at (no other column, no DELETE); read budget and
 * rate state and change it only through the owner's functions.
 */
export function grantsSql(schema: string, role: string): string {
  const s = ident(schema);
  const r = ident(role);
  return `GRANT USAGE ON SCHEMA ${s} TO ${r};
GRANT SELECT ON ${s}.schema_version TO ${r};
GRANT SELECT, INSERT ON ${s}.audit, ${s}.audit_chains TO ${r};
GRANT SELECT, INSERT ON ${s}.keys TO ${r};
GRANT UPDATE (revoked_at) ON ${s}.keys TO ${r};
GRANT SELECT ON ${s}.budget_windows, ${s}.budget_leases, ${s}.rate_slots, ${s}.rate_leases TO ${r};
GRANT EXECUTE ON FUNCTION ${s}.budget_sync(text, text, text, timestamptz, timestamptz, double precision, double precision, double precision, double precision, double precision, integer) TO ${r};
GRANT EXECUTE ON FUNCTION ${s}.budget_override(text, text, timestamptz, timestamptz, double precision, double precision, text) TO ${r};
GRANT EXECUTE ON FUNCTION ${s}.budget_configure(text, text, timestamptz, timestamptz, double precision) TO ${r};
GRANT EXECUTE ON FUNCTION ${s}.rate_sync(text, text, text, double precision, bigint, bigint[], double precision[], bigint, bigint, integer) TO ${r};
`;
}
