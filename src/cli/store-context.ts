import { Pool } from 'pg';
import { expandEnv, MissingEnvError } from '../core/config/expand';
import type { GatewayConfig, StoreConfig } from '../core/config/validate';
import type { ChainKey } from '../core/store/postgres/audit-chain';
import { migrate } from '../core/store/postgres/migrate';
import { DEFAULT_SCHEMA, StoreError } from '../core/store/postgres/sql';
import { redactUrl } from '../core/store/postgres/store';
import { UsageError } from './serve';

/** The config's `store` section when it is PostgreSQL. */
export type PgStoreConfig = Extract<StoreConfig, { kind: 'postgres' }>;

/** A CLI command's connection to the configured PostgreSQL store: one small pool, ended with `close()`. */
export interface CliPgStore {
  pool: Pool;
  schema: string;
  /** The URL without its password, for messages. */
  where: string;
  close(): Promise<void>;
}

/** The store's URL with `${env:…}` expanded; a missing variable is a usage error naming it. */
export function storeUrl(store: PgStoreConfig): string {
  return expandConfigValue(store.url, 'store.url', 'the PostgreSQL store');
}

/** The audit chain key (`store.auditKey`, UTF-8 bytes of the expanded value), or undefined for plain SHA-256 chains. */
export function storeAuditKey(store: PgStoreConfig): ChainKey {
  return store.auditKey === undefined ? undefined : Buffer.from(expandConfigValue(store.auditKey, 'store.auditKey', 'audit verify'), 'utf8');
}

function expandConfigValue(value: string, jsonPath: string, usedBy: string): string {
  try {
    return expandEnv(value, jsonPath, usedBy);
  } catch (err) {
    if (err instanceof MissingEnvError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * Opens a pool on the configured store and checks its schema (`migrate`, which for the serving role on a current
 * schema only reads the version), so that a missing schema or missing grants fail here with the store's own message.
 */
export async function openCliPgStore(store: PgStoreConfig, opts: { url?: string; check?: boolean } = {}): Promise<CliPgStore> {
  const url = opts.url ?? storeUrl(store);
  const schema = store.schema ?? DEFAULT_SCHEMA;
  const pool = new Pool({ connectionString: url, max: 2, connectionTimeoutMillis: store.connectTimeoutMs ?? 5000 });
  pool.on('error', () => undefined);
  const close = () => pool.end().catch(() => undefined);
  if (opts.check !== false) {
    try {
      await migrate(pool, { schema });
    } catch (err) {
      await close();
      throw storeFailure(err, url);
    }
  }
  return { pool, schema, where: `${redactUrl(url)} (schema "${schema}")`, close };
}

/** A StoreError as it is, anything else (unreachable, refused) as an error naming the store without its password. */
export function storeFailure(err: unknown, url: string): Error {
  if (err instanceof StoreError) return err;
  const e = err as { code?: string; message?: string };
  return new StoreError(`the store (PostgreSQL at ${redactUrl(url)}) cannot be reached: ${e.message ?? e.code}`, 'CCGW_STORE_UNAVAILABLE', { cause: err });
}

/** The configured PostgreSQL store, or a usage error saying that this command needs one. */
export function requirePgStore(config: GatewayConfig, file: string, command: string): PgStoreConfig {
  if (config.store.kind !== 'postgres') {
    throw new UsageError(`${command} works on a PostgreSQL store, and ${file} has the file store: add "store": { "kind": "postgres", "url": "\${env:CLAUDE_CODE_GATEWAY_DATABASE_URL}" } (see docs/team.md)`);
  }
  return config.store;
}
