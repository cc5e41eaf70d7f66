import type { GatewayConfig } from '../config/validate';
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

/** The audit record of a settled call; `bodies` decides whether the (scrubbed) request is kept. */
export function callRecord(c: SettledCall, family: string | undefined, scrub?: Scrubber): CallRecord {
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
    error: c.status !== 'ok' && c.errorMessage ? errorLine(c.errorMessage, scrub) : undefined,
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

/**
 * Removes credentials from what the audit log stores: credential headers always; every configured secret
 * (provider keys, gateway keys) wherever it appears; in "redacted" mode also anything shaped like a key.
 */
export class Scrubber {
  private readonly secrets: string[];

  constructor(
    private readonly mode: 'redacted' | 'full',
    secrets: string[],
  ) {
    // Longest first, so a secret containing another is removed whole.
    this.secrets = [...new Set(secrets.filter((s) => s.length >= 6))].sort((a, b) => b.length - a.length);
  }

  headers(h: Record<string, string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name in h) if (!CREDENTIAL_HEADERS.has(name.toLowerCase())) out[name] = this.text(h[name]);
    return out;
  }

  text(s: string): string {
    for (const secret of this.secrets) if (s.includes(secret)) s = s.split(secret).join('[redacted]');
    if (this.mode === 'redacted') for (const re of CREDENTIAL_PATTERNS) s = s.replace(re, '[redacted]');
    return s;
  }
}

/** Secret values the config refers to (expanded from the environment), for the scrubber. */
export function configuredSecrets(config: GatewayConfig, env: NodeJS.ProcessEnv, extra: string[] = []): string[] {
  const out = [...extra];
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
  for (const name of ['ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_BEARER_TOKEN_BEDROCK']) add(env[name], name);
  return out;
}
