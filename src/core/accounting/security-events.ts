import type { Scrubber } from './records';

/** A request the gateway refused for who sent it or where it tried to reach: one `security` audit record. */
export interface SecurityEvent {
  /** The gateway error code (CCGW_UNKNOWN_KEY, CCGW_UNSAFE_PATH, ...). */
  code: string;
  status: number;
  method: string;
  /** The request path, without its query string. */
  path: string;
  /** The peer address of the connection. */
  remote?: string;
  /** The gateway key id, when the request was from a known key (never the key or token itself). */
  key?: string;
}

/** A refusal as the error handler sees it (the request's raw parts, before anything is removed). */
export interface SecurityRefusal {
  code: string;
  status: number;
  method: string;
  /** The request target as received (its query and any credential in it are removed). */
  url: string;
  remote?: string;
  key?: string;
  headers: Record<string, string | string[] | undefined>;
}

/** The record of a refusal: path without query or credentials, method bounded, never a key, token or header value. */
export function securityEventOf(r: SecurityRefusal, scrubber?: Scrubber): SecurityEvent {
  return {
    code: r.code,
    status: r.status,
    method: r.method.slice(0, 16),
    path: recordablePath(r.url, presentedCredentials(r.headers), scrubber),
    ...(r.remote ? { remote: r.remote } : {}),
    ...(r.key ? { key: r.key } : {}),
  };
}

/** Security records written one by one per minute, at most (a token bucket: a burst of this many, then this rate). */
export const SECURITY_EVENTS_PER_MINUTE = 60;

/** Longest path kept in a security record (a path can be as long as the client likes). */
const MAX_PATH = 256;

const MINUTE_MS = 60_000;

/** True for the gateway's refusals that are security events: authentication and authorisation (401, 403), and confinement. */
export function isSecurityRefusal(status: number, code: string | undefined): boolean {
  return status === 401 || status === 403 || code === 'CCGW_UNSAFE_PATH';
}

/** The credentials a request presented (gateway keys, tokens, whatever it sent), to keep them out of its record. */
export function presentedCredentials(headers: Record<string, string | string[] | undefined>): string[] {
  const out: string[] = [];
  for (const name of ['authorization', 'proxy-authorization', 'x-api-key']) {
    const v = headers[name];
    for (const raw of Array.isArray(v) ? v : v ? [v] : []) {
      const value = raw.trim();
      if (!value) continue;
      out.push(value);
      const sp = value.indexOf(' ');
      if (sp !== -1 && value.slice(sp + 1).trim()) out.push(value.slice(sp + 1).trim());
    }
  }
  return out.filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
}

/** A request path fit for the audit log: no query, no fragment, no presented credential or configured secret, bounded. */
export function recordablePath(url: string, presented: string[], scrubber?: Scrubber): string {
  let p = url;
  const q = p.search(/[?#]/);
  if (q !== -1) p = p.slice(0, q);
  for (const secret of presented) {
    if (p.includes(secret)) p = p.split(secret).join('[redacted]');
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret && p.includes(encoded)) p = p.split(encoded).join('[redacted]');
  }
  if (scrubber) p = scrubber.text(p);
  return p.length > MAX_PATH ? `${p.slice(0, MAX_PATH)}...` : p;
}

/**
 * Writes security events to the audit log without letting a flood fill the disk: a token bucket lets
 * SECURITY_EVENTS_PER_MINUTE through one by one (a burst of that many, refilled at that rate); beyond it events are
 * counted, per code, and one `security_suppressed` record per minute says how many were left out.
 */
export class SecurityEventLog {
  private tokens: number;
  private refilledAt: number;
  private suppressed = 0;
  private suppressedCodes: Record<string, number> = {};
  private suppressedSince = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly write: (type: string, fields: Record<string, unknown>, now: number) => void,
    private readonly perMinute = SECURITY_EVENTS_PER_MINUTE,
    now = Date.now(),
  ) {
    this.tokens = perMinute;
    this.refilledAt = now;
  }

  /**
   * Records one event, or counts it (by `code`) in the next summary when the bucket is empty. `event` may be a
   * function that builds it, so that a flood past the bound costs no scrubbing.
   */
  record(event: SecurityEvent | (() => SecurityEvent), now = Date.now(), code = typeof event === 'function' ? undefined : event.code): void {
    this.tokens = Math.min(this.perMinute, this.tokens + ((now - this.refilledAt) * this.perMinute) / MINUTE_MS);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens--;
      this.write('security', { ...(typeof event === 'function' ? event() : event) }, now);
      return;
    }
    if (this.suppressed === 0) {
      this.suppressedSince = now;
      this.timer = setTimeout(() => this.summarise(), MINUTE_MS);
      this.timer.unref();
    }
    this.suppressed++;
    const c = code ?? (typeof event === 'function' ? event().code : event.code);
    this.suppressedCodes[c] = (this.suppressedCodes[c] ?? 0) + 1;
  }

  /** Writes the summary of the events left out since the last one (nothing when none were). */
  summarise(now = Date.now()): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed === 0) return;
    this.write(
      'security_suppressed',
      { count: this.suppressed, codes: this.suppressedCodes, since: new Date(this.suppressedSince).toISOString(), perMinute: this.perMinute },
      now,
    );
    this.suppressed = 0;
    this.suppressedCodes = {};
  }

  dispose(): void {
    this.summarise();
  }
}
