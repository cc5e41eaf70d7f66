import type { Pool, PoolClient } from 'pg';
import { MIGRATIONS, SCHEMA_VERSION, grantsSql, type Migration } from './schema';
import { checkName, DEFAULT_SCHEMA, ident, migrationLockKey, sqlState, StoreError } from './sql';

/** What migrate() found and did. */
export interface MigrateResult {
  schema: string;
  /** The version the schema is at now. */
  version: number;
  /** Versions this call applied (empty when the schema was already current, e.g. another replica migrated it). */
  applied: number[];
}

export interface MigrateOptions {
  /** The schema to use (default "ccgw"); quoted everywhere, so any 1-63 byte name without "$" works. */
  schema?: string;
  /** Apply migrations only up to this version (tests of upgrades); default: all. */
  upTo?: number;
}

/**
 * Brings the store's schema to the version this code needs, once however many replicas start together: every caller
 * takes the same advisory lock (per schema) on one connection, reads `schema_version`, and only the first applies what
 * is missing (each migration in its own transaction, recorded in `schema_version`); the others then find it current.
 *
 * Run by the owner role it creates and upgrades the schema. Run by the serving role on a current schema it checks the
 * version and does nothing; on an older one (or none) it fails with a StoreError naming the owner role and what to run,
 * and on a newer one it fails asking for a newer gateway. The lock is a session lock, so a replica killed while
 * migrating releases it with its connection (and its open transaction rolls back).
 */
export async function migrate(pool: Pool, options: MigrateOptions = {}): Promise<MigrateResult> {
  const schema = checkName(options.schema ?? DEFAULT_SCHEMA, 'store.schema');
  const target = options.upTo ?? SCHEMA_VERSION;
  const client = await pool.connect();
  let locked = false;
  try {
    await client.query('SELECT pg_advisory_lock($1::bigint)', [migrationLockKey(schema)]);
    locked = true;
    const found = await schemaState(client, schema);
    if (found.version > SCHEMA_VERSION) {
      throw new StoreError(
        `The store's schema ${ident(schema)} is at version ${found.version}, newer than this gateway's ${SCHEMA_VERSION}: upgrade this gateway to the version the other replicas run.`,
        'CCGW_STORE_SCHEMA_NEWER',
      );
    }
    if (found.version >= target) return { schema, version: found.version, applied: [] };
    const pending = MIGRATIONS.filter((m) => m.version > found.version && m.version <= target);
    await checkCanMigrate(client, schema, found);
    const applied: number[] = [];
    for (const m of pending) {
      await apply(client, schema, m, found.version === 0 && applied.length === 0);
      applied.push(m.version);
    }
    return { schema, version: pending[pending.length - 1].version, applied };
  } finally {
    if (locked) await client.query('SELECT pg_advisory_unlock($1::bigint)', [migrationLockKey(schema)]).catch(() => undefined);
    client.release();
  }
}

interface SchemaState {
  /** 0: no schema_version table yet. */
  version: number;
  exists: boolean;
  owner?: string;
  user: string;
}

async function schemaState(client: PoolClient, schema: string): Promise<SchemaState> {
  const r = await client.query<{ owner: string | null; user: string; has_table: boolean; usage: boolean | null }>(
    `SELECT pg_get_userbyid(n.nspowner) AS owner, current_user AS user, has_schema_privilege(n.oid, 'USAGE') AS usage,
            EXISTS (SELECT 1 FROM pg_class AS c WHERE c.relnamespace = n.oid AND c.relname = 'schema_version') AS has_table
       FROM (SELECT 1) AS one LEFT JOIN pg_namespace AS n ON n.nspname = $1`,
    [schema],
  );
  const row = r.rows[0];
  const state: SchemaState = { version: 0, exists: row.owner !== null, owner: row.owner ?? undefined, user: row.user };
  if (!row.has_table) return state;
  try {
    if (row.usage === false) throw Object.assign(new Error(`permission denied for schema ${schema}`), { code: '42501' });
    const v = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${ident(schema)}.schema_version`);
    state.version = v.rows[0].v ?? 0;
  } catch (err) {
    if (sqlState(err) === '42501') {
      throw new StoreError(
        `Role "${row.user}" may not read ${ident(schema)}.schema_version: the grants for the serving role are missing. As the owner role ("${row.owner}"), run the grants in docs/team.md (grantsSql(${JSON.stringify(schema)}, ${JSON.stringify(row.user)})).`,
        'CCGW_STORE_GRANTS',
        { cause: err },
      );
    }
    throw err;
  }
  return state;
}

/** Fails early, naming what to run, when this role cannot create or alter the schema (the serving role, typically). */
async function checkCanMigrate(client: PoolClient, schema: string, found: SchemaState): Promise<void> {
  const ok = found.exists
    ? (await client.query<{ ok: boolean }>('SELECT pg_has_role(current_user, $1::name, $2) AS ok', [found.owner, 'USAGE'])).rows[0].ok
    : (await client.query<{ ok: boolean }>(`SELECT has_database_privilege(current_database(), 'CREATE') AS ok`)).rows[0].ok;
  if (ok) return;
  const needs = `this gateway needs version ${SCHEMA_VERSION}`;
  const what = found.exists ? `is at version ${found.version} (${needs})` : `does not exist (${needs})`;
  throw new StoreError(
    `The store's schema ${ident(schema)} ${what}, and role "${found.user}" may not ${found.exists ? 'change it' : 'create it'}: ` +
      `run the migrations once as the owner role${found.owner ? ` ("${found.owner}")` : ''} (start one gateway, or \`claude-code-gateway store migrate\`, with the owner's database URL), then the grants in docs/team.md for "${found.user}".`,
    'CCGW_STORE_SCHEMA_OLD',
  );
}

async function apply(client: PoolClient, schema: string, m: Migration, first: boolean): Promise<void> {
  const s = ident(schema);
  await client.query('BEGIN');
  try {
    if (first) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${s}.schema_version (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    }
    await client.query(m.sql(schema));
    await client.query(`INSERT INTO ${s}.schema_version (version, name) VALUES ($1, $2)`, [m.version, m.name]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw new StoreError(`Migrating the store's schema ${s} to version ${m.version} (${m.name}) failed: ${(err as Error).message}`, 'CCGW_STORE_MIGRATE', { cause: err });
  }
}

/** Grants `role` what a serving gateway needs on the schema and nothing more (see grantsSql); run by the owner. */
export async function grantServingRole(pool: Pool, role: string, schema = DEFAULT_SCHEMA): Promise<void> {
  await pool.query(grantsSql(checkName(schema, 'store.schema'), checkName(role, 'role')));
}
