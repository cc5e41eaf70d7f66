import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { GatewayConfig } from '../config/validate';
import { HeldSecrets } from '../credentials/held-secrets';
import { expandEnv } from '../config/expand';
import type { SettledCall } from '../gateway/call';
import type { Usage } from '../streams/usage';

/** One model call as the audit log stores it (before `seq`, `t`, `type`, `prev`, `hash`). */
export interface CallRecord {
  id: string;
  key: string;
  team?: string;
  project?: string;
  session?: string;
  agent?: string;
  profile: string;
  provider: string;
  route: string;
  method: string;
  path: string;
  requestedModel?: string;
  upstreamModel?: string;
  responseModel?: string;
  streaming: boolean;
  countTokens: boolean;
  status: string;
  httpStatus: number;
  upstreamStatus?: number;
  latencyMs: number;
  ttfbMs?: number;
  usage: Usage;
  costUsd: number;
  priceKnown: boolean;
  /** Forwarded without metering: an endpoint the profile's `allowUnmetered` lets through (its cost is not in costUsd). */
  unmetered?: true;
  /** The call ended before the upstream's final usage: output is estimated from what was streamed (never below what was reported). */
  estimated?: true;
  family?: string;
  stopReason?: string;
  errorType?: string;
  /** What went wrong, in a line (a gateway error's message, the upstream's error message, or the cut's cause), for calls that were not ok. */
  error?: string;
  request?: { headers?: Record<string, string>; body?: string };
}

const round = (n: number | undefined) => (n === undefined ? undefined : Math.round(n * 1000) / 1000);

/**
 * The audit record of a settled call; `scrub` (audit bodies on) decides whether the (scrubbed) request is kept.
 * `lineScrub` removes credentials from the error line when bodies are off (a helper's stderr can repeat a key).
 */
export function callRecord(c: SettledCall, family: string | undefined, scrub?: Scrubber, lineScrub?: Scrubber): CallRecord {
  return {
    id: c.requestId,
    key: c.key.id,
    team: c.key.team,
    project: c.project,
    session: c.sessionId,
    agent: c.agentId,
    profile: c.profile,
    provider: c.provider,
    route: c.route,
    method: c.method,
    path: c.path,
    requestedModel: c.requestedModel,
    upstreamModel: c.upstreamModel,
    responseModel: c.responseModel,
    streaming: c.streaming,
    countTokens: c.countTokens,
    status: c.status,
    httpStatus: c.httpStatus,
    upstreamStatus: c.upstreamStatus,
    latencyMs: round(c.latencyMs)!,
    ttfbMs: round(c.ttfbMs),
    usage: c.usage,
    costUsd: c.costUsd,
    priceKnown: c.priceKnown,
    unmetered: c.unmetered ? true : undefined,
    estimated: c.estimated ? true : undefined,
    family,
    stopReason: c.stopReason,
    errorType: c.errorType,
    error: c.status !== 'ok' && c.errorMessage ? errorLine(c.errorMessage, scrub ?? lineScrub) : undefined,
    request: scrub && (c.requestBody || c.requestHeaders) ? { headers: c.requestHeaders && scrub.headers(c.requestHeaders), body: c.requestBody && scrub.text(c.requestBody.toString('utf8')) } : undefined,
  };
}

/** An error message as one short line (credential shapes removed when bodies are scrubbed). */
function errorLine(message: string, scrub?: Scrubber): string {
  const line = message.replace(/\s+/g, ' ').slice(0, 300);
  return scrub ? scrub.text(line) : line;
}

/** Headers that carry credentials: never stored, in any mode. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'x-api-key', 'proxy-authorization', 'cookie', 'x-goog-api-key', 'x-amz-security-token', 'x-amz-date']);

/** Shapes of credentials removed from stored bodies in "redacted" mode, whatever their source. */
const CREDENTIAL_PATTERNS = [
  /sk-ant-[A-Za-z0-9_-]{8,}/g,
  /ccgw-[A-Za-z0-9_-]{16,}/g,
  /ccgwt1\.[A-Za-z0-9_.-]+/g,
  /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g,
  /\bya29\.[A-Za-z0-9_-]+/g,
  /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi,
];

/** What a scrubber learns at run time: secrets resolved since start, and the gateway's keys (found by their hashes). */
export interface LiveSecrets {
  /** Secrets the credential resolvers handed out (helper output, key files, AWS and Google credentials); `revision` changes when one is added. */
  held?: Iterable<string> & { readonly revision: number };
  /** The key ring: the secrets it holds (the token secret, the keys it knows by value) and the tokens it signed in a text. */
  keys?: { heldSecrets(): string[]; tokensIn(text: string): string[]; readonly revision: number };
}

/**
 * Removes credentials from what the audit log stores: credential headers always; every secret the gateway holds
 * (configured and resolved provider credentials, the token secret, every gateway key and token) wherever it appears,
 * also JSON-escaped; in "redacted" mode also anything shaped like a key.
 */
export class Scrubber {
  /** The secrets to remove, longest first, each with its first characters. */
  private secrets: Array<{ secret: string; prefix: string }> = [];
  private revision = '';

  constructor(
    private readonly mode: 'redacted' | 'full',
    private readonly fixed: string[],
    private readonly live: LiveSecrets = {},
  ) {}

  headers(h: Record<string, string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name in h) if (!CREDENTIAL_HEADERS.has(name.toLowerCase())) out[name] = this.text(h[name]);
    return out;
  }

  text(s: string): string {
    // One search per group of secrets that begin alike (generated keys all begin "ccgw-"), then each secret of a group found.
    const present = new Map<string, boolean>();
    for (const { secret, prefix } of this.current()) {
      let found = present.get(prefix);
      if (found === undefined) present.set(prefix, (found = s.includes(prefix)));
      if (found && s.includes(secret)) s = s.split(secret).join('[redacted]');
    }
    if (this.live.keys) for (const token of this.live.keys.tokensIn(s)) s = s.split(token).join('[redacted]');
    if (this.mode === 'redacted') for (const re of CREDENTIAL_PATTERNS) s = s.replace(re, '[redacted]');
    return s;
  }

  /** The secrets to remove, rebuilt when a resolver has learnt a new one. */
  private current(): Array<{ secret: string; prefix: string }> {
    const revision = `${this.live.held?.revision ?? 0}.${this.live.keys?.revision ?? 0}`;
    if (revision === this.revision) return this.secrets;
    this.revision = revision;
    const all = new Set<string>();
    for (const secret of [...this.fixed, ...(this.live.held ?? []), ...(this.live.keys?.heldSecrets() ?? [])]) {
      if (secret.length < 6) continue;
      all.add(secret);
      // As a JSON string in a body ("\n" in a PEM line, a quote or backslash in a key).
      const escaped = JSON.stringify(secret).slice(1, -1);
      if (escaped !== secret) all.add(escaped);
    }
    // Longest first, so a secret containing another is removed whole.
    this.secrets = [...all].sort((a, b) => b.length - a.length).map((secret) => ({ secret, prefix: secret.slice(0, 5) }));
    return this.secrets;
  }
}

/** Secrets in files the config names, read ahead of use (best effort): key files, service-account keys, AWS shared credentials. */
function fileSecrets(config: GatewayConfig, env: NodeJS.ProcessEnv): string[] {
  const held = new HeldSecrets();
  const read = (file: string | undefined): string | undefined => {
    if (!file) return undefined;
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
  };
  let aws = false;
  for (const p of config.profiles) {
    held.add(read(p.apiKeyFile));
    if (p.keyFile) {
      try {
        const json = JSON.parse(read(p.keyFile) ?? 'null') as { private_key?: string; refresh_token?: string; client_secret?: string } | null;
        held.addPem(json?.private_key);
        held.add(json?.refresh_token);
        held.add(json?.client_secret);
      } catch {
        // Not JSON: google-auth-library will say so when the profile is used.
      }
    }
    if (p.provider === 'bedrock' && p.bearerToken === undefined) aws = true;
  }
  if (aws) {
    // Every profile's secrets in the file, not only the one the gateway uses: a tool that prints the file shows them all.
    const file = read(env.AWS_SHARED_CREDENTIALS_FILE || path.join(os.homedir(), '.aws', 'credentials')) ?? '';
    for (const m of file.matchAll(/^\s*aws_(?:secret_access_key|session_token)\s*=\s*(\S+)/gim)) held.add(m[1]);
  }
  return [...held];
}

/** Secret values the config refers to (expanded from the environment, or in the files it names), for the scrubber. */
export function configuredSecrets(config: GatewayConfig, env: NodeJS.ProcessEnv, extra: string[] = []): string[] {
  const out = [...extra, ...fileSecrets(config, env)];
  const add = (v: string | undefined, at: string) => {
    if (!v) return;
    try {
      out.push(expandEnv(v, at, at, env));
    } catch {
      // An unset variable holds no secret to remove.
    }
  };
  config.profiles.forEach((p, i) => {
    add(p.apiKey, `profiles[${i}].apiKey`);
    add(p.bearerToken, `profiles[${i}].bearerToken`);
  });
  config.keys.forEach((k, i) => add(k.key, `keys[${i}].key`));
  add(config.metrics.token, 'metrics.token');
  for (const name of ['ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_BEARER_TOKEN_BEDROCK']) add(env[name], name);
  return out;
}

/** The scrubber of a gateway runtime: what its config names, what its resolvers learn as they run, and its key ring. */
export function scrubberFor(
  mode: 'redacted' | 'full',
  config: GatewayConfig,
  runtime: { env: NodeJS.ProcessEnv; heldSecrets: LiveSecrets['held']; keys: LiveSecrets['keys']; apiKeys: { stored(p: GatewayConfig['profiles'][number]): string | undefined } },
): Scrubber {
  // The editor's stored provider keys, including those of profiles not used yet.
  const stored = config.profiles.map((p) => runtime.apiKeys.stored(p)).filter((v): v is string => !!v);
  return new Scrubber(mode, configuredSecrets(config, runtime.env, stored), { held: runtime.heldSecrets, keys: runtime.keys });
}
