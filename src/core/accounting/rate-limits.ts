import type { RateLimitConfig } from '../config/schema';

const SLOTS = 60;

/** Counts per second over the last minute for one scope. */
class MinuteCounter {
  private readonly slots = new Float64Array(SLOTS);
  private sum = 0;
  private second = 0;

  private advance(nowSec: number): void {
    if (nowSec <= this.second) return;
    if (nowSec - this.second >= SLOTS) {
      this.slots.fill(0);
      this.sum = 0;
    } else {
      for (let s = this.second + 1; s <= nowSec; s++) {
        const i = s % SLOTS;
        this.sum -= this.slots[i];
        this.slots[i] = 0;
      }
    }
    this.second = nowSec;
  }

  total(nowSec: number): number {
    this.advance(nowSec);
    return this.sum;
  }

  add(nowSec: number, n: number): void {
    this.advance(nowSec);
    this.slots[nowSec % SLOTS] += n;
    this.sum += n;
  }

  /** Seconds until the total drops below `limit` as old seconds leave the window. */
  secondsUntilBelow(nowSec: number, limit: number): number {
    this.advance(nowSec);
    let total = this.sum;
    for (let k = 1; k <= SLOTS; k++) {
      // The slot written k-1 seconds after the oldest one leaves the window k seconds from now.
      total -= this.slots[(nowSec + k) % SLOTS];
      if (total < limit) return k;
    }
    return SLOTS;
  }
}

interface Limit {
  config: RateLimitConfig;
  requests: MinuteCounter;
  tokens: MinuteCounter;
}

/** A refusal by a rate limit. */
export interface RateRefusal {
  scope: string;
  kind: 'requests' | 'tokens';
  limit: number;
  retryAfterSeconds: number;
}

/** Headroom across the limits a call falls under, for response headers. */
export interface RateHeadroom {
  requestsLimit?: number;
  requestsRemaining?: number;
  tokensLimit?: number;
  tokensRemaining?: number;
}

/**
 * Requests and tokens per minute per scope, over a sliding minute of one-second slots. Requests count when
 * admitted; tokens (input, output and cache tokens) count when the call settles, as the issue asks.
 */
export class RateLimiter {
  private byScope = new Map<string, Limit[]>();

  constructor(limits: RateLimitConfig[]) {
    this.configure(limits);
  }

  configure(limits: RateLimitConfig[]): void {
    const old = this.byScope;
    this.byScope = new Map();
    for (const config of limits) {
      const prev = old.get(config.scope)?.find((l) => l.config.requestsPerMinute === config.requestsPerMinute && l.config.tokensPerMinute === config.tokensPerMinute);
      const list = this.byScope.get(config.scope) ?? [];
      list.push({ config, requests: prev?.requests ?? new MinuteCounter(), tokens: prev?.tokens ?? new MinuteCounter() });
      this.byScope.set(config.scope, list);
    }
  }

  get size(): number {
    return this.byScope.size;
  }

  /** Admits one request in `scopes` (counting it) or names the limit it would break. */
  admit(scopes: readonly string[], now: number): RateHeadroom | RateRefusal {
    if (this.byScope.size === 0) return {};
    const sec = Math.floor(now / 1000);
    const hit: Limit[] = [];
    for (const scope of scopes) {
      const list = this.byScope.get(scope);
      if (!list) continue;
      for (const l of list) {
        const rpm = l.config.requestsPerMinute;
        if (rpm !== undefined && l.requests.total(sec) >= rpm) {
          return { scope, kind: 'requests', limit: rpm, retryAfterSeconds: l.requests.secondsUntilBelow(sec, rpm) };
        }
        const tpm = l.config.tokensPerMinute;
        if (tpm !== undefined && l.tokens.total(sec) >= tpm) {
          return { scope, kind: 'tokens', limit: tpm, retryAfterSeconds: l.tokens.secondsUntilBelow(sec, tpm) };
        }
        hit.push(l);
      }
    }
    const room: RateHeadroom = {};
    for (const l of hit) {
      l.requests.add(sec, 1);
      const rpm = l.config.requestsPerMinute;
      if (rpm !== undefined) {
        const left = Math.max(0, rpm - l.requests.total(sec));
        if (room.requestsRemaining === undefined || left < room.requestsRemaining) [room.requestsLimit, room.requestsRemaining] = [rpm, left];
      }
      const tpm = l.config.tokensPerMinute;
      if (tpm !== undefined) {
        const left = Math.max(0, tpm - l.tokens.total(sec));
        if (room.tokensRemaining === undefined || left < room.tokensRemaining) [room.tokensLimit, room.tokensRemaining] = [tpm, left];
      }
    }
    return room;
  }

  /** Counts a settled call's tokens in every limit of its scopes. */
  settle(scopes: readonly string[], tokens: number, now: number): void {
    if (tokens === 0 || this.byScope.size === 0) return;
    const sec = Math.floor(now / 1000);
    for (const scope of scopes) for (const l of this.byScope.get(scope) ?? []) if (l.config.tokensPerMinute !== undefined) l.tokens.add(sec, tokens);
  }
}

export function isRateRefusal(r: RateHeadroom | RateRefusal): r is RateRefusal {
  return (r as RateRefusal).kind !== undefined;
}

/** Response headers describing rate-limit headroom (gateway-prefixed so the upstream's own `anthropic-ratelimit-*` pass unchanged). */
export function rateHeaders(room: RateHeadroom): Record<string, string> | undefined {
  const h: Record<string, string> = {};
  if (room.requestsLimit !== undefined) {
    h['x-gateway-ratelimit-requests-limit'] = String(room.requestsLimit);
    h['x-gateway-ratelimit-requests-remaining'] = String(room.requestsRemaining);
  }
  if (room.tokensLimit !== undefined) {
    h['x-gateway-ratelimit-tokens-limit'] = String(room.tokensLimit);
    h['x-gateway-ratelimit-tokens-remaining'] = String(room.tokensRemaining);
  }
  return Object.keys(h).length ? h : undefined;
}
