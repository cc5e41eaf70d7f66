import { generateKey } from '../core/gateway/keys';
import { LOCAL_KEY_ID } from '../core/gateway/local-secrets';
import { FileKeyError, FileKeyStore } from '../core/store/file-keys';
import { PgKeyStore, type StoredKey } from '../core/store/postgres/keys';
import { StoreError } from '../core/store/postgres/sql';
import { loadCliConfig, type CliContext } from './context';
import { UsageError } from './serve';
import { openCliPgStore } from './store-context';

export interface KeysOptions {
  config?: string;
}

export interface KeysCreateOptions extends KeysOptions {
  id: string;
  team?: string;
  project?: string;
  admin?: boolean;
}

export interface KeysListOptions extends KeysOptions {
  json?: boolean;
}

/** One key as `keys list` shows it: never the key, never its hash. */
export interface ListedKey {
  id: string;
  /** "store": made with `keys create` (revocable with `keys revoke`); "config": in the config's keys[]. */
  source: 'store' | 'config';
  team?: string;
  project?: string;
  profile?: string;
  admin: boolean;
  revoked: boolean;
  createdAt?: string;
  revokedAt?: string;
}

/** The keys part of the configured store, opened for one command. */
interface CliKeys {
  /** Where the keys live, for messages: the file, or the database without its password. */
  where: string;
  create(k: { id: string; secret: string; team?: string; project?: string; admin?: boolean }): Promise<StoredKey>;
  list(): Promise<StoredKey[]>;
  get(id: string): Promise<StoredKey | undefined>;
  revoke(id: string): Promise<StoredKey | undefined>;
  close(): Promise<void>;
}

async function openKeys(ctx: CliContext): Promise<CliKeys> {
  const { store } = ctx.config;
  if (store.kind === 'files') {
    const file = new FileKeyStore(ctx.config.dataDir);
    const sync = <T>(f: () => T): Promise<T> => {
      try {
        return Promise.resolve(f());
      } catch (err) {
        return Promise.reject(err instanceof FileKeyError ? new UsageError(err.message) : err);
      }
    };
    return {
      where: file.file,
      create: (k) => sync(() => file.create(k)),
      list: () => sync(() => file.list()),
      get: (id) => sync(() => file.get(id)),
      revoke: (id) => sync(() => file.revoke(id)),
      close: async () => undefined,
    };
  }
  const pg = await openCliPgStore(store);
  const keys = new PgKeyStore(pg.pool, pg.schema);
  const usage = <T>(p: Promise<T>): Promise<T> =>
    p.catch((err: unknown) => {
      throw err instanceof StoreError && err.code.startsWith('CCGW_STORE_KEY') ? new UsageError(err.message) : err;
    });
  return {
    where: `the PostgreSQL store at ${pg.where}`,
    create: (k) => usage(keys.create(k)),
    list: () => keys.list(),
    get: (id) => keys.get(id),
    revoke: (id) => keys.revoke(id),
    close: async () => {
      keys.dispose();
      await pg.close();
    },
  };
}

async function withKeys<T>(ctx: CliContext, run: (keys: CliKeys) => Promise<T>): Promise<T> {
  const keys = await openKeys(ctx);
  try {
    return await run(keys);
  } finally {
    await keys.close();
  }
}

/**
 * `claude-code-gateway keys create`: generates a key, stores only its SHA-256 in the configured store and returns the
 * key, which the caller prints once on stdout; `note` (for stderr) says where it went. A running gateway on the same
 * store accepts it within 2 s, without a restart.
 */
export async function keysCreateCommand(opts: KeysCreateOptions): Promise<{ key: string; note: string }> {
  const ctx = loadCliConfig(opts.config);
  const inConfig = ctx.config.keys.find((k) => k.id === opts.id);
  if (inConfig) throw new UsageError(`--id: the config's keys[] in ${ctx.file} already has a key "${opts.id}"; choose another id`);
  if (opts.id === LOCAL_KEY_ID) throw new UsageError(`--id: "${LOCAL_KEY_ID}" is the id of the key \`serve\` generates when the config has no keys; choose another id`);
  for (const [flag, v] of [['--team', opts.team], ['--project', opts.project]] as const) {
    if (v !== undefined && !/^[^\s:]+$/.test(v)) throw new UsageError(`${flag}: must be a name without spaces or ":" (it is used in budget scopes), got "${v}"`);
  }
  const key = generateKey();
  const stored = await withKeys(ctx, (keys) => keys.create({ id: opts.id, secret: key, team: opts.team, project: opts.project, admin: opts.admin }));
  const who = [stored.team && `team ${stored.team}`, stored.project && `project ${stored.project}`, stored.admin && 'admin'].filter(Boolean).join(', ');
  const where = ctx.config.store.kind === 'files' ? ctx.config.dataDir : 'the store';
  return {
    key,
    note: `Created key "${stored.id}"${who ? ` (${who})` : ''} in ${where}; only its SHA-256 is stored. This is the only time the key is shown: give it to its user now. Gateways on this store accept it within 2 s.`,
  };
}

/** `claude-code-gateway keys list`: the store's keys and the config's, without keys or hashes. */
export async function keysListCommand(opts: KeysListOptions): Promise<string> {
  const ctx = loadCliConfig(opts.config);
  const { stored, where } = await withKeys(ctx, async (keys) => ({ stored: await keys.list(), where: keys.where }));
  const listed: ListedKey[] = [
    ...ctx.config.keys.map(
      (k): ListedKey => ({ id: k.id, source: 'config', team: k.team, project: k.project, profile: k.profile, admin: k.admin === true, revoked: k.revoked === true }),
    ),
    ...stored.map(
      (k): ListedKey => ({
        id: k.id,
        source: 'store',
        team: k.team,
        project: k.project,
        profile: k.profile,
        admin: k.admin,
        revoked: k.revokedAt !== undefined,
        createdAt: k.createdAt,
        revokedAt: k.revokedAt,
      }),
    ),
  ];
  if (opts.json) return JSON.stringify({ keys: listed.map((k) => JSON.parse(JSON.stringify(k)) as ListedKey) }, null, 2);
  return formatKeys(listed, ctx.file, where);
}

/** `claude-code-gateway keys revoke ID`: revokes a key made with `keys create` (never one of the config's keys[]). */
export async function keysRevokeCommand(id: string, opts: KeysOptions): Promise<string> {
  const ctx = loadCliConfig(opts.config);
  if (ctx.config.keys.some((k) => k.id === id)) {
    throw new UsageError(
      `key "${id}" is in the config's keys[] (${ctx.file}), which \`keys revoke\` does not change: set "revoked": true on it there and restart the gateway. \`keys revoke\` revokes keys made with \`keys create\`.`,
    );
  }
  return withKeys(ctx, async (keys) => {
    const before = await keys.get(id);
    if (!before) throw new UsageError(`no key "${id}" in ${keys.where} (see \`keys list\`)`);
    if (before.revokedAt) return `key "${id}" was already revoked at ${before.revokedAt}; nothing changed.`;
    const after = await keys.revoke(id);
    return `Revoked key "${id}" at ${after?.revokedAt ?? new Date().toISOString()}. Gateways on this store refuse it within 2 s.`;
  });
}

const COLUMNS: Array<[string, (k: ListedKey) => string]> = [
  ['id', (k) => k.id],
  ['source', (k) => k.source],
  ['team', (k) => k.team ?? ''],
  ['project', (k) => k.project ?? ''],
  ['admin', (k) => (k.admin ? 'yes' : '')],
  ['created (UTC)', (k) => shortTime(k.createdAt)],
  ['revoked (UTC)', (k) => (k.revokedAt ? shortTime(k.revokedAt) : k.revoked ? 'yes' : '')],
];

/** A plain-text table, one row per key. */
export function formatKeys(keys: ListedKey[], configFile: string, where: string): string {
  const title = `Keys of ${where} ("store") and of ${configFile} ("config"; revoke those in the config)`;
  if (keys.length === 0) return `${title}\nnone: create one with \`keys create --id ID\``;
  const head = COLUMNS.map(([h]) => h);
  const rows = keys.map((k) => COLUMNS.map(([, cell]) => cell(k)));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [title, line(head), ...rows.map(line)].join('\n');
}

function shortTime(iso: string | undefined): string {
  return iso ? iso.slice(0, 16).replace('T', ' ') : '';
}
