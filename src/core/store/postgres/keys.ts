import { hash } from 'node:crypto';
import type { Pool } from 'pg';
import { Emitter, type Disposable, type Event } from '../../events';
import type { PgNotifier } from './notifier';
import { channelName, checkName, DEFAULT_SCHEMA, ident, sqlState, StoreError } from './sql';

/** A gateway key as the store keeps it: its SHA-256 (hex), never the key. */
export interface StoredKey {
  id: string;
  sha256: string;
  team?: string;
  project?: string;
  profile?: string;
  admin: boolean;
  /** ISO times. */
  createdAt: string;
  revokedAt?: string;
}

/** What to store for a new key: its secret (hashed here, never stored) or its SHA-256. */
export interface NewKey {
  id: string;
  secret?: string;
  sha256?: string;
  team?: string;
  project?: string;
  profile?: string;
  admin?: boolean;
}

/** A change to the keys table, as every replica hears it. `reload` follows a reconnect: the whole table, read again. */
export type KeyChange = { kind: 'upsert'; key: StoredKey } | { kind: 'delete'; id: string } | { kind: 'reload'; keys: StoredKey[] };

interface KeyRow {
  id: string;
  sha256: string;
  team: string | null;
  project: string | null;
  profile: string | null;
  admin: boolean;
  created_at: Date | string;
  revoked_at: Date | string | null;
}

const COLUMNS = 'id, sha256, team, project, profile, admin, created_at, revoked_at';

/**
 * The keys table: create, list and revoke, and a change feed. Every insert, update or delete notifies the schema's
 * keys channel (a trigger sends the row, which holds the key's hash only), and the store's one listening connection
 * passes it on, so a key created or revoked through any replica is known to all within the notice time (measured in
 * the tests: milliseconds). After that connection comes back from a break, the whole table is read again and sent as
 * one `reload`, so a change made while it was away is not missed.
 */
export class PgKeyStore implements Disposable {
  private readonly table: string;
  private readonly changes = new Emitter<KeyChange>();
  private readonly subscriptions: Disposable[] = [];
  /** Fires for every change heard; see KeyChange. */
  readonly onDidChange: Event<KeyChange> = this.changes.event;
  /** Set when a reload after a reconnect failed (it is tried again at the next reconnect). */
  reloadError?: Error;
  /** Notifications heard while a reload reads the table. */
  private deferred?: string[];

  constructor(
    private readonly pool: Pool,
    schema = DEFAULT_SCHEMA,
    notifier?: PgNotifier,
  ) {
    this.table = `${ident(checkName(schema, 'store.schema'))}.keys`;
    const channel = channelName(schema, 'keys');
    if (notifier) {
      this.subscriptions.push(
        notifier.onNotice((n) => {
          if (n.channel === channel) this.heard(n.payload);
        }),
        notifier.onDidConnect((c) => {
          if (c.reconnect) void this.reload();
        }),
      );
    }
  }

  /** The topic's channel, for the notifier to listen on. */
  static channel(schema = DEFAULT_SCHEMA): string {
    return channelName(schema, 'keys');
  }

  /** Stores a new key (the caller generated it and shows it once); returns what was stored, which holds nothing secret. */
  async create(k: NewKey): Promise<StoredKey> {
    const digest = k.sha256?.toLowerCase() ?? (k.secret !== undefined ? hash('sha256', k.secret, 'hex') : undefined);
    if (!digest || !/^[0-9a-f]{64}$/.test(digest)) throw new StoreError(`key "${k.id}": give its secret or the 64-character hex SHA-256 of it`, 'CCGW_STORE_KEY');
    try {
      const r = await this.pool.query<KeyRow>(
        `INSERT INTO ${this.table} (id, sha256, team, project, profile, admin) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
        [k.id, digest, k.team ?? null, k.project ?? null, k.profile ?? null, k.admin === true],
      );
      return toKey(r.rows[0]);
    } catch (err) {
      if (sqlState(err) === '23505') {
        const byId = (err as { constraint?: string }).constraint === 'keys_pkey';
        throw new StoreError(byId ? `a key with id "${k.id}" already exists (revoke it, or choose another id)` : `that key is already stored under another id`, 'CCGW_STORE_KEY_EXISTS', { cause: err });
      }
      if (sqlState(err) === '23514') throw new StoreError(`key id "${k.id}" must be 1-64 letters, digits, ".", "_", "@" or "-"`, 'CCGW_STORE_KEY', { cause: err });
      throw err;
    }
  }

  async list(): Promise<StoredKey[]> {
    const r = await this.pool.query<KeyRow>(`SELECT ${COLUMNS} FROM ${this.table} ORDER BY id`);
    return r.rows.map(toKey);
  }

  async get(id: string): Promise<StoredKey | undefined> {
    const r = await this.pool.query<KeyRow>(`SELECT ${COLUMNS} FROM ${this.table} WHERE id = $1`, [id]);
    return r.rows[0] ? toKey(r.rows[0]) : undefined;
  }

  /** Revokes a key (from now on, on every replica); undefined when there is no such key. Revoking twice keeps the first time. */
  async revoke(id: string): Promise<StoredKey | undefined> {
    const r = await this.pool.query<KeyRow>(`UPDATE ${this.table} SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`, [id]);
    return r.rows[0] ? toKey(r.rows[0]) : undefined;
  }

  /**
   * Reads the whole table and sends it as one `reload` (after a reconnect; also usable at start). Changes heard while
   * it reads are sent again after it, since the table may have been read before them.
   */
  async reload(): Promise<StoredKey[] | undefined> {
    const deferred = (this.deferred ??= []);
    try {
      const keys = await this.list();
      this.reloadError = undefined;
      this.deferred = undefined;
      this.changes.fire({ kind: 'reload', keys });
      return keys;
    } catch (err) {
      this.reloadError = err as Error;
      this.deferred = undefined;
      return undefined;
    } finally {
      for (const payload of deferred) this.heard(payload);
    }
  }

  private heard(payload: string): void {
    if (this.deferred) {
      this.deferred.push(payload);
      return;
    }
    let msg: { op?: string; id?: string; key?: KeyRow };
    try {
      msg = JSON.parse(payload);
    } catch {
      return;
    }
    if (msg.op === 'upsert' && msg.key) this.changes.fire({ kind: 'upsert', key: toKey(msg.key) });
    else if (msg.op === 'delete' && typeof msg.id === 'string') this.changes.fire({ kind: 'delete', id: msg.id });
    else if (msg.op === 'reload') void this.reload();
  }

  dispose(): void {
    for (const s of this.subscriptions.reverse()) s.dispose();
    this.changes.dispose();
  }
}

function iso(v: Date | string): string {
  return (v instanceof Date ? v : new Date(v)).toISOString();
}

function toKey(r: KeyRow): StoredKey {
  return {
    id: r.id,
    sha256: r.sha256,
    ...(r.team !== null ? { team: r.team } : {}),
    ...(r.project !== null ? { project: r.project } : {}),
    ...(r.profile !== null ? { profile: r.profile } : {}),
    admin: r.admin,
    createdAt: iso(r.created_at),
    ...(r.revoked_at !== null ? { revokedAt: iso(r.revoked_at) } : {}),
  };
}
