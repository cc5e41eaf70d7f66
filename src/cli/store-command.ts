import { grantsSql, SCHEMA_VERSION } from '../core/store/postgres/schema';
import { migrate } from '../core/store/postgres/migrate';
import { checkName, DEFAULT_SCHEMA, StoreError } from '../core/store/postgres/sql';
import { loadCliConfig } from './context';
import { UsageError } from './serve';
import { openCliPgStore, requirePgStore, storeFailure, storeUrl } from './store-context';

export interface StoreMigrateOptions {
  config?: string;
  /** The owner's database URL, when the config's is the serving role's. */
  url?: string;
}

export interface StoreGrantsOptions {
  config?: string;
  role?: string;
  schema?: string;
}

/**
 * `claude-code-gateway store migrate`: creates or upgrades the store's schema, under the migration lock (so it is
 * safe while replicas start). Meant for the owner role: `--url` gives its URL when the config's is the serving role's.
 */
export async function storeMigrateCommand(opts: StoreMigrateOptions): Promise<string> {
  const ctx = loadCliConfig(opts.config);
  const store = requirePgStore(ctx.config, ctx.file, '`store migrate`');
  if (opts.url !== undefined && !/^postgres(ql)?:\/\//.test(opts.url)) throw new UsageError('--url: expected a PostgreSQL URL like postgres://owner@host:5432/database');
  const url = opts.url ?? storeUrl(store);
  const pg = await openCliPgStore(store, { url, check: false });
  try {
    const r = await migrate(pg.pool, { schema: pg.schema }).catch((err: unknown) => {
      throw storeFailure(err, url);
    });
    const done = r.applied.length ? `migrated to version ${r.version} (applied ${r.applied.join(', ')})` : `already at version ${r.version}, nothing to do`;
    return `${pg.where}: ${done}. Grant the serving role its rights with \`store grants --role ROLE${pg.schema === DEFAULT_SCHEMA ? '' : ` --schema ${pg.schema}`}\` (run the SQL it prints as the owner).`;
  } finally {
    await pg.close();
  }
}

/** `claude-code-gateway store grants`: the least-privilege GRANT statements for the serving role, to run as the owner. */
export function storeGrantsCommand(opts: StoreGrantsOptions): string {
  if (!opts.role) throw new UsageError('--role: name the role the gateways serve with (e.g. --role ccgw_gateway)');
  let schema = opts.schema;
  if (schema === undefined && opts.config !== undefined) {
    const { config } = loadCliConfig(opts.config);
    if (config.store.kind === 'postgres') schema = config.store.schema;
  }
  try {
    const s = checkName(schema ?? DEFAULT_SCHEMA, '--schema');
    return `-- Least-privilege grants for role ${JSON.stringify(opts.role)} on schema ${JSON.stringify(s)} (version ${SCHEMA_VERSION}); run as the owner, again after an upgrade.\n${grantsSql(s, checkName(opts.role, '--role')).trimEnd()}`;
  } catch (err) {
    if (err instanceof StoreError) throw new UsageError(err.message);
    throw err;
  }
}
