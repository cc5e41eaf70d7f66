import * as os from 'node:os';
import * as path from 'node:path';
import type { z } from 'zod';
import { configSchema, type BudgetConfig, type KeyConfig, type ProfileConfig, type ProviderName, type RateLimitConfig, type RawConfig } from './schema';
import { expandEnv, MissingEnvError, resolvePath } from './expand';

/** A profile after validation: defaults applied, non-secret `${env:…}` references expanded where possible. */
export interface Profile extends ProfileConfig {
  mode: 'native' | 'unified';
  credentials: 'gateway' | 'client';
  /** JSON path of this profile in its source, for error messages (`profiles[2]`). */
  jsonPath: string;
  /** Set when a non-secret field refers to an unset variable: the profile fails with this message when used. */
  unusable?: string;
}

/** The gateway's validated configuration. */
/** The `store` section: files on this machine, or a PostgreSQL database shared by replicas. */
export type StoreConfig = NonNullable<RawConfig['store']>;

export interface GatewayConfig {
  listen: { host: string; port: number };
  dataDir: string;
  activeProfile: string;
  logLevel: NonNullable<RawConfig['logLevel']>;
  profiles: Profile[];
  keys: KeyConfig[];
  budgets: BudgetConfig[];
  rateLimits: RateLimitConfig[];
  audit: { bodies: 'none' | 'redacted' | 'full'; dir: string; failOpen: boolean };
  prices: NonNullable<RawConfig['prices']>;
  /** The credential that may scrape /metrics besides admin keys (`token` may be `${env:…}`, expanded at use). */
  metrics: { token?: string; sha256?: string };
  /**
   * Upstream time limits: `timeoutMs` bounds the wait for response headers and any silence inside a response body (a stream
   * that stalls); unset, the HTTP client's own 10-minute limits apply. `credentialsTimeoutMs` bounds one AWS or Google
   * credential resolution.
   */
  upstream: { timeoutMs?: number; credentialsTimeoutMs: number };
  /** The store (default files); a postgres store's `url` and `auditKey` may still hold `${env:…}`, expanded at start. */
  store: StoreConfig;
  /** The file the config came from, if any. */
  source?: string;
}

/** How long one AWS or Google credential resolution may take (SSO, credential_process, a token endpoint) before the call fails. */
export const DEFAULT_CREDENTIALS_TIMEOUT_MS = 30_000;

/** A configuration that cannot be used, with one message per problem (`<json path>: <what is wrong>`). */
export class ConfigError extends Error {
  constructor(readonly problems: string[], readonly source?: string) {
    super(`${source ? `${source}: ` : ''}invalid configuration\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export const DEFAULT_PORT = 4747;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_HOME_DIR = '~/.claude-code-gateway';

/** Fields each provider understands, beyond name/provider/description/mode/models. */
const PROVIDER_FIELDS: Record<ProviderName, readonly (keyof ProfileConfig)[]> = {
  anthropic: ['baseUrl', 'apiKey', 'apiKeyFile', 'apiKeyHelper', 'apiKeyHelperTtlMs', 'credentials', 'allowUnmetered'],
  litellm: ['baseUrl', 'apiKey', 'apiKeyFile', 'apiKeyHelper', 'apiKeyHelperTtlMs', 'keyHeader', 'allowUnmetered'],
  bedrock: ['region', 'awsProfile', 'endpoint', 'bearerToken'],
  vertex: ['projectId', 'region', 'credentials', 'keyFile', 'endpoint'],
};
const COMMON_FIELDS: readonly string[] = ['name', 'provider', 'description', 'mode', 'models'];
const REQUIRED_FIELDS: Record<ProviderName, readonly (keyof ProfileConfig)[]> = {
  anthropic: [],
  litellm: ['baseUrl'],
  bedrock: ['region'],
  vertex: ['projectId', 'region'],
};
/** Secret-bearing fields are never expanded ahead of use, so they never sit expanded in memory dumps of the config. */
const SECRET_FIELDS = new Set(['apiKey', 'bearerToken', 'apiKeyHelper']);
const URL_FIELDS = new Set(['baseUrl', 'endpoint']);

export interface ParseOptions {
  source?: string;
  env?: NodeJS.ProcessEnv;
  /** Base for relative paths (the config file's folder). */
  baseDir?: string;
  homeDir?: string;
}

/** Validates raw JSON into a GatewayConfig or throws a ConfigError listing every problem by JSON path. */
export function parseConfig(raw: unknown, opts: ParseOptions = {}): GatewayConfig {
  const env = opts.env ?? process.env;
  const home = opts.homeDir ?? os.homedir();
  const baseDir = opts.baseDir ?? process.cwd();
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(formatZodIssues(result.error.issues, raw), opts.source);
  const cfg = result.data;
  const problems: string[] = [];

  const names = new Set<string>();
  const profiles = cfg.profiles.map((p, i) => {
    const jsonPath = `profiles[${i}]`;
    if (names.has(p.name)) problems.push(`${jsonPath}.name: duplicate profile name "${p.name}"`);
    names.add(p.name);
    return normaliseProfile(p, jsonPath, problems, env, baseDir, home);
  });

  const activeProfile = cfg.activeProfile ?? profiles[0].name;
  if (!names.has(activeProfile)) problems.push(`activeProfile: no profile named "${activeProfile}" (profiles: ${[...names].join(', ')})`);

  const keyIds = new Set<string>();
  (cfg.keys ?? []).forEach((k, i) => {
    const at = `keys[${i}]`;
    if (keyIds.has(k.id)) problems.push(`${at}.id: duplicate key id "${k.id}"`);
    keyIds.add(k.id);
    if ((k.key === undefined) === (k.sha256 === undefined)) problems.push(`${at}: set exactly one of "key" or "sha256"`);
    if (k.profile && !names.has(k.profile)) problems.push(`${at}.profile: no profile named "${k.profile}"`);
  });
  if (cfg.metrics?.token !== undefined && cfg.metrics.sha256 !== undefined) problems.push('metrics: set only one of "token" or "sha256"');
  const checkScope = (scope: string, at: string) => {
    const [kind, name] = scope.split(':');
    if (kind === 'profile' && !names.has(name)) problems.push(`${at}.scope: no profile named "${name}"`);
    // A PostgreSQL store's keys live in its table, not in the config: their ids are not known here.
    if (kind === 'key' && !keyIds.has(name) && name !== 'local' && cfg.store?.kind !== 'postgres') problems.push(`${at}.scope: no key with id "${name}"`);
  };
  (cfg.budgets ?? []).forEach((b, i) => checkScope(b.scope, `budgets[${i}]`));
  (cfg.rateLimits ?? []).forEach((r, i) => checkScope(r.scope, `rateLimits[${i}]`));

  const host = cfg.listen?.host ?? DEFAULT_HOST;
  const port = cfg.listen?.port ?? DEFAULT_PORT;
  const dataDir = resolvePath(cfg.dataDir ?? path.join(DEFAULT_HOME_DIR, 'data'), baseDir, home);
  if (problems.length) throw new ConfigError(problems, opts.source);
  return {
    listen: { host, port },
    dataDir,
    activeProfile,
    logLevel: cfg.logLevel ?? 'warn',
    profiles,
    keys: cfg.keys ?? [],
    budgets: cfg.budgets ?? [],
    rateLimits: cfg.rateLimits ?? [],
    audit: {
      bodies: cfg.audit?.bodies ?? 'none',
      dir: resolvePath(cfg.audit?.dir ?? path.join(dataDir, 'audit'), baseDir, home),
      failOpen: cfg.audit?.failOpen ?? false,
    },
    prices: cfg.prices ?? {},
    metrics: { token: cfg.metrics?.token, sha256: cfg.metrics?.sha256?.toLowerCase() },
    upstream: { timeoutMs: cfg.upstream?.timeoutMs, credentialsTimeoutMs: cfg.upstream?.credentialsTimeoutMs ?? DEFAULT_CREDENTIALS_TIMEOUT_MS },
    store: cfg.store ?? { kind: 'files' },
    source: opts.source,
  };
}

function normaliseProfile(
  p: ProfileConfig,
  jsonPath: string,
  problems: string[],
  env: NodeJS.ProcessEnv,
  baseDir: string,
  home: string,
): Profile {
  const allowed = new Set<string>([...COMMON_FIELDS, ...PROVIDER_FIELDS[p.provider]]);
  for (const field of Object.keys(p)) {
    if (!allowed.has(field)) problems.push(`${jsonPath}.${field}: not used by provider "${p.provider}" (it takes ${[...PROVIDER_FIELDS[p.provider]].join(', ')})`);
  }
  for (const field of REQUIRED_FIELDS[p.provider]) {
    if (p[field] === undefined) problems.push(`${jsonPath}.${field}: required for provider "${p.provider}"`);
  }
  const sources = (['apiKey', 'apiKeyFile', 'apiKeyHelper'] as const).filter((f) => p[f] !== undefined);
  if (sources.length > 1) problems.push(`${jsonPath}: set only one of ${sources.join(', ')}`);
  const credentials = p.credentials ?? 'gateway';
  if (credentials === 'client' && sources.length) {
    problems.push(`${jsonPath}.${sources[0]}: not used with credentials "client" (the client's own credentials pass through)`);
  }

  const out: Profile = { ...p, mode: p.mode ?? 'native', credentials, jsonPath };
  const usedBy = `profile "${p.name}"`;
  for (const [field, value] of Object.entries(p)) {
    if (typeof value !== 'string' || SECRET_FIELDS.has(field)) continue;
    try {
      const expanded = expandEnv(value, `${jsonPath}.${field}`, usedBy, env);
      (out as unknown as Record<string, unknown>)[field] = expanded;
      if (URL_FIELDS.has(field)) {
        let url: URL | undefined;
        try {
          url = new URL(expanded);
        } catch {
          url = undefined;
        }
        if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
          problems.push(`${jsonPath}.${field}: must be an http(s) URL, got "${value}"`);
        } else if (url.search || url.hash || url.username || url.password) {
          problems.push(`${jsonPath}.${field}: must not carry a query, fragment or credentials`);
        }
      }
      if (field === 'apiKeyFile' || field === 'keyFile') {
        (out as unknown as Record<string, unknown>)[field] = resolvePath(expanded, baseDir, home);
      }
    } catch (err) {
      if (!(err instanceof MissingEnvError)) throw err;
      out.unusable = err.message;
    }
  }
  return out;
}

/** Turns zod issues into `path: message` lines, with a "did you mean" for misspelt keys. */
export function formatZodIssues(issues: z.core.$ZodIssue[], raw: unknown): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const at = formatPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(issue.path, raw);
      for (const key of issue.keys) {
        const hint = closest(key, known);
        lines.push(`${joinPath(at, key)}: unknown key${hint ? ` (did you mean "${hint}"?)` : ''}`);
      }
      continue;
    }
    if (issue.code === 'invalid_type' && issue.input === undefined) {
      lines.push(`${at || '(root)'}: required`);
      continue;
    }
    lines.push(`${at || '(root)'}: ${issue.message}`);
  }
  return lines;
}

function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of p) out = typeof seg === 'number' ? `${out}[${seg}]` : joinPath(out, String(seg));
  return out;
}

function joinPath(base: string, key: string): string {
  return base ? `${base}.${key}` : key;
}

/** The keys the schema allows at a path, used only for suggestions. */
function knownKeysAt(p: readonly PropertyKey[], _raw: unknown): string[] {
  let schema: unknown = configSchema;
  for (const seg of p) {
    schema = unwrap(schema);
    const def = (schema as { def?: { type?: string; shape?: Record<string, unknown>; element?: unknown } }).def;
    if (!def) return [];
    if (def.type === 'array') schema = def.element;
    else if (def.type === 'object' && def.shape) schema = def.shape[String(seg)];
    else return [];
    if (typeof seg === 'number' && def.type !== 'array') return [];
  }
  schema = unwrap(schema);
  const shape = (schema as { def?: { shape?: Record<string, unknown> } }).def?.shape;
  return shape ? Object.keys(shape) : [];
}

function unwrap(schema: unknown): unknown {
  let s = schema as { def?: { type?: string; innerType?: unknown; in?: unknown } } | undefined;
  while (s?.def && (s.def.type === 'optional' || s.def.type === 'default' || s.def.type === 'pipe')) {
    s = (s.def.innerType ?? s.def.in) as typeof s;
  }
  return s;
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) {
      bestDist = d;
      best = c;
    }
  }
  return bestDist <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}
