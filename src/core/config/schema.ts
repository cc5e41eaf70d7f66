import { z } from 'zod';

/** Providers a profile can point at. */
export const PROVIDERS = ['anthropic', 'bedrock', 'vertex', 'litellm'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

const nonEmpty = z.string().min(1, 'must not be empty');

/** Model pins and the requested → upstream id map of a profile. */
export const modelsSchema = z.strictObject({
  default: nonEmpty.optional(),
  opus: nonEmpty.optional(),
  sonnet: nonEmpty.optional(),
  haiku: nonEmpty.optional(),
  map: z.record(z.string(), nonEmpty).optional(),
});

/** One upstream: the same shape in the CLI config file and in the `claudeGateway.profiles` setting. */
export const profileSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit'),
  provider: z.enum(PROVIDERS),
  description: z.string().optional(),
  mode: z.enum(['native', 'unified']).optional(),
  credentials: z.enum(['gateway', 'client']).optional(),
  baseUrl: nonEmpty.optional(),
  endpoint: nonEmpty.optional(),
  apiKey: nonEmpty.optional(),
  apiKeyFile: nonEmpty.optional(),
  apiKeyHelper: nonEmpty.optional(),
  apiKeyHelperTtlMs: z.int().min(0).optional(),
  keyHeader: z.string().regex(/^[A-Za-z0-9-]+$/, 'must be an HTTP header name').optional(),
  region: nonEmpty.optional(),
  awsProfile: nonEmpty.optional(),
  bearerToken: nonEmpty.optional(),
  projectId: nonEmpty.optional(),
  keyFile: nonEmpty.optional(),
  models: modelsSchema.optional(),
  /** Passthrough endpoints the gateway cannot meter that this profile forwards anyway (recorded as unmetered). */
  allowUnmetered: z
    .array(z.string().regex(/^(\*|GET|POST|PUT|PATCH|DELETE) \/[A-Za-z0-9_*./-]*$/, 'must be "METHOD /path" (METHOD or *; * matches one path segment, a final /** any rest), e.g. "POST /v1/messages/batches"'))
    .optional(),
});
export type ProfileConfig = z.infer<typeof profileSchema>;

export const keySchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'must be 1-64 letters, digits, ".", "_", "@" or "-"'),
  key: nonEmpty.optional(),
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be the 64-character hex SHA-256 of the key').optional(),
  team: nonEmpty.optional(),
  project: nonEmpty.optional(),
  /** Projects the key may charge through the x-claude-code-gateway-project header ("*": any), besides its own `project`. */
  projects: z.union([z.literal('*'), z.array(z.string().regex(/^[^\s:]+$/, 'must be a project name (no spaces or ":")'))]).optional(),
  profile: nonEmpty.optional(),
  admin: z.boolean().optional(),
  revoked: z.boolean().optional(),
});
export type KeyConfig = z.infer<typeof keySchema>;

const scope = z
  .string()
  .regex(/^(global|(key|team|project|profile):[^\s:]+)$/, 'must be "global" or one of key:<id>, team:<name>, project:<name>, profile:<name>');

export const budgetSchema = z.strictObject({
  scope,
  usd: z.number().positive('must be a positive amount in USD'),
  period: z.enum(['day', 'week', 'month']),
});
export type BudgetConfig = z.infer<typeof budgetSchema>;

export const rateLimitSchema = z
  .strictObject({
    scope,
    requestsPerMinute: z.int().positive().optional(),
    tokensPerMinute: z.int().positive().optional(),
  })
  .refine((r) => r.requestsPerMinute !== undefined || r.tokensPerMinute !== undefined, {
    message: 'set requestsPerMinute, tokensPerMinute or both',
  });
export type RateLimitConfig = z.infer<typeof rateLimitSchema>;

const priceSchema = z.strictObject({
  input: z.number().min(0),
  output: z.number().min(0),
  cacheWrite5m: z.number().min(0).optional(),
  cacheWrite1h: z.number().min(0).optional(),
  cacheRead: z.number().min(0).optional(),
  models: z.array(nonEmpty).optional(),
});

export const configSchema = z.strictObject({
  $schema: z.string().optional(),
  listen: z
    .strictObject({
      host: nonEmpty.optional(),
      port: z.int().min(0).max(65535).optional(),
    })
    .optional(),
  dataDir: nonEmpty.optional(),
  activeProfile: nonEmpty.optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  profiles: z.array(profileSchema).min(1, 'at least one profile is required'),
  keys: z.array(keySchema).optional(),
  budgets: z.array(budgetSchema).optional(),
  rateLimits: z.array(rateLimitSchema).optional(),
  audit: z
    .strictObject({
      bodies: z.enum(['none', 'redacted', 'full']).optional(),
      dir: nonEmpty.optional(),
      failOpen: z.boolean().optional(),
    })
    .optional(),
  prices: z.record(z.string(), priceSchema).optional(),
  /** Who may scrape GET /metrics besides admin keys: a bearer token that opens /metrics and nothing else. */
  metrics: z
    .strictObject({
      token: nonEmpty.optional(),
      sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be the 64-character hex SHA-256 of the token').optional(),
    })
    .optional(),
  /** Where keys, budgets, rate-limit windows and the audit log live: files on this machine (default), or PostgreSQL shared by replicas. */
  store: z
    .discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('files') }),
      z.strictObject({
        kind: z.literal('postgres'),
        /** postgres://role@host:port/database; `${env:NAME}` expanded at start (it may carry a password). */
        url: nonEmpty,
        schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL identifier').optional(),
        poolSize: z.int().min(1).max(100).optional(),
        connectTimeoutMs: z.int().min(100, 'must be at least 100 (milliseconds)').optional(),
        queryTimeoutMs: z.int().min(100, 'must be at least 100 (milliseconds)').optional(),
        /** Serve model calls while the store is away (unmetered, audit records queued in memory); default false: 503. */
        failOpen: z.boolean().optional(),
        /** A secret (`${env:NAME}`) that keys the audit chain (HMAC), so that the database's owner cannot recompute it. */
        auditKey: nonEmpty.optional(),
      }),
    ])
    .optional(),
  upstream: z
    .strictObject({
      timeoutMs: z.int().min(100, 'must be at least 100 (milliseconds)').optional(),
      credentialsTimeoutMs: z.int().min(100, 'must be at least 100 (milliseconds)').optional(),
    })
    .optional(),
});
export type RawConfig = z.infer<typeof configSchema>;
