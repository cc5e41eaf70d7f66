import type { Pool } from 'pg';
import type { RateHeadroom, RateRefusal } from '../../accounting/rate-limits';
import type { RateLimitConfig } from '../../config/schema';
import type { Disposable } from '../../events';
import { EXHAUSTED_MS, IDLE_RETURN_MS, LEASE_MARGIN_MS, LEASE_MS, SYNC_MS, syncOneAtATime, type Synced } from './budget-slice';
import { Reachability } from './reachability';
import { checkName, DEFAULT_SCHEMA, ident, StoreError } from './sql';

/** A replica asks for this share of a minute's remaining admissions at a time (at least one, and what waits). */
export const RATE_SLICE_FRACTION = 0.1;
const SLOTS = 60;

/** One rate limit on this replica. */
interface Limit extends Synced {
  scope: string;
  config: RateLimitConfig;
  /** Admissions leased and not yet used. */
  lease: number;
  leaseUntil: number;
  /** Admissions used per second, not yet reported (and those in the report in flight). */
  used: Map<number, number>;
  sendingUsed: Map<number, number>;
  /** The minute's reported admissions (all replicas) and the other replicas' leases, at the last sync. */
  window: number;
  others: number;
  exhaustedUntil: number;
  /** When the shared minute will have room again, as the database last said (this replica's clock). */
  retryAt: number;
  /** Tokens per second, not yet reported, and the shared minute's counts (oldest first) ending at `tokenSlotsAt`. */
  tokens: Map<number, number>;
  sendingTokens: Map<number, number>;
  tokenSlots: number[];
  tokenSlotsAt: number;
  waiting: number;
  lastActivity: number;
}

export interface PgRateOptions {
  schema?: string;
  /** This replica's id (its instance id): it names its leases. */
  replica: string;
  leaseMs?: number;
  syncMs?: number;
  /** The clock whose seconds the sliding minute counts (tests move it). */
  clock?: () => number;
}

interface SyncRow {
  o_lease: string;
  o_window: number;
  o_others: string;
  o_retry: number;
  o_slots: number[];
  o_now: string;
}

/**
 * Requests and tokens per minute shared by every replica, over the same sliding minute of one-second slots as the
 * single-process RateLimiter, admitted without waiting on the database in steady state.
 *
 * Requests: a replica leases a few admissions (a tenth of what the minute has left, at least what waits), admits
 * locally while it holds one, and reports each second's admissions in batches. The database (rate_sync, under the
 * limit's row lock) gives admissions only while the minute's reported admissions plus every replica's unused lease
 * stay within the limit; since an admission is either reported (in the second it happened) or still counted in its
 * lease, no sliding minute admits more than the limit across all replicas. Slack: the admissions a killed replica
 * used but had not reported (at most its lease), and seconds misread by clock skew between replicas.
 *
 * Tokens count when calls settle, as in the RateLimiter: each replica reports them in batches and reads the shared
 * minute back, so a replica refuses once the minute's tokens as last read plus its own reach the limit. Slack: what
 * other replicas settled since this one's last sync (SYNC_MS while busy).
 */
export class PgRateLimiter extends Reachability implements Disposable {
  private byScope = new Map<string, Limit[]>();
  private limits: Limit[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly fn: string;
  private readonly leaseMs: number;
  private readonly clock: () => number;
  private closed = false;
  /** Limits dropped by a config reload whose counts and lease are still to be reported and returned. */
  private retired: Limit[] = [];

  constructor(
    private readonly pool: Pool,
    limits: readonly RateLimitConfig[],
    private readonly options: PgRateOptions,
  ) {
    // Its failure: the database cannot be reached for a report or a lease.
    super('rate limits');
    this.fn = ident(checkName(options.schema ?? DEFAULT_SCHEMA, 'store.schema'));
    this.leaseMs = options.leaseMs ?? LEASE_MS;
    this.clock = options.clock ?? Date.now;
    this.configure(limits);
    this.timer = setInterval(() => this.tick(), options.syncMs ?? SYNC_MS);
    this.timer.unref();
  }

  /** Replaces the limits (config reload), keeping the state of unchanged ones; a dropped limit's unused lease is returned. */
  configure(limits: readonly RateLimitConfig[]): void {
    const old = this.byScope;
    const before = this.limits;
    this.byScope = new Map();
    this.limits = [];
    for (const config of limits) {
      const prev = old.get(config.scope)?.find((l) => l.config.requestsPerMinute === config.requestsPerMinute && l.config.tokensPerMinute === config.tokensPerMinute);
      const l = prev ?? {
        scope: config.scope,
        config,
        lease: 0,
        leaseUntil: 0,
        used: new Map(),
        sendingUsed: new Map(),
        window: 0,
        others: 0,
        exhaustedUntil: 0,
        retryAt: 0,
        tokens: new Map(),
        sendingTokens: new Map(),
        tokenSlots: new Array<number>(SLOTS).fill(0),
        tokenSlotsAt: 0,
        waiting: 0,
        lastActivity: 0,
      };
      const list = this.byScope.get(config.scope) ?? [];
      list.push(l);
      this.byScope.set(config.scope, list);
      this.limits.push(l);
    }
    for (const l of before) if (!this.limits.includes(l)) this.retired.push(l);
  }

  get size(): number {
    return this.byScope.size;
  }

  /**
   * Admits one request in `scopes` (counting it) or names the limit it would break, with `retryAfterSeconds` from the
   * shared minute. Synchronous while this replica holds a leased admission for every limit; a Promise when one must
   * be asked of the database (rejecting with a StoreError when it cannot be reached).
   */
  admit(scopes: readonly string[], now = this.clock()): RateHeadroom | RateRefusal | Promise<RateHeadroom | RateRefusal> {
    if (this.limits.length === 0) return {};
    const hit = this.limitsOf(scopes);
    let ask: Limit[] | undefined;
    for (const l of hit) {
      const refused = this.tokenRefusal(l, now);
      if (refused) return refused;
      if (l.config.requestsPerMinute === undefined || this.holds(l, now)) continue;
      if (l.exhaustedUntil > now) return this.requestRefusal(l, now);
      (ask ??= []).push(l);
    }
    if (!ask) return this.take(hit, now);
    return this.admitSlow(hit, ask, now);
  }

  private async admitSlow(hit: Limit[], ask: Limit[], now: number): Promise<RateHeadroom | RateRefusal> {
    for (const l of ask) l.waiting++;
    try {
      for (const l of ask) {
        for (let round = 0; !this.holds(l, this.clock()); round++) {
          if (l.exhaustedUntil > this.clock() || round >= 4) return this.requestRefusal(l, this.clock());
          const before = l.lease;
          if (!(await this.sync(l))) {
            throw new StoreError(`the store (PostgreSQL) cannot be reached to lease rate-limit room for ${l.scope} (${this.failure?.code ?? 'error'})`, 'CCGW_STORE_UNAVAILABLE');
          }
          if (l.lease <= before && !this.holds(l, this.clock())) return this.requestRefusal(l, this.clock());
        }
      }
      for (const l of hit) if (l.config.requestsPerMinute !== undefined && !this.holds(l, this.clock())) return this.requestRefusal(l, this.clock());
      return this.take(hit, now);
    } finally {
      for (const l of ask) l.waiting--;
    }
  }

  private holds(l: Limit, now: number): boolean {
    return l.lease >= 1 && now < l.leaseUntil;
  }

  private take(hit: Limit[], now: number): RateHeadroom {
    const sec = Math.floor(now / 1000);
    const room: RateHeadroom = {};
    for (const l of hit) {
      l.lastActivity = now;
      const rpm = l.config.requestsPerMinute;
      if (rpm !== undefined) {
        l.lease--;
        l.used.set(sec, (l.used.get(sec) ?? 0) + 1);
        const left = Math.max(0, rpm - l.window - l.others - count(l.used) - count(l.sendingUsed));
        if (room.requestsRemaining === undefined || left < room.requestsRemaining) [room.requestsLimit, room.requestsRemaining] = [rpm, left];
        if (!l.syncing && l.lease < this.desiredFree(l) / 2) void this.sync(l).catch(() => undefined);
      }
      const tpm = l.config.tokensPerMinute;
      if (tpm !== undefined) {
        const left = Math.max(0, tpm - this.tokenTotal(l, sec));
        if (room.tokensRemaining === undefined || left < room.tokensRemaining) [room.tokensLimit, room.tokensRemaining] = [tpm, left];
      }
    }
    return room;
  }

  /** Counts a settled call's tokens in every limit of its scopes (reported with the next batch). */
  settle(scopes: readonly string[], tokens: number, now = this.clock()): void {
    if (tokens === 0 || this.limits.length === 0) return;
    const sec = Math.floor(now / 1000);
    for (const l of this.limitsOf(scopes)) if (l.config.tokensPerMinute !== undefined) l.tokens.set(sec, (l.tokens.get(sec) ?? 0) + tokens);
  }

  private limitsOf(scopes: readonly string[]): Limit[] {
    const out: Limit[] = [];
    for (const scope of scopes) for (const l of this.byScope.get(scope) ?? []) out.push(l);
    return out;
  }

  private desiredFree(l: Limit): number {
    const rpm = l.config.requestsPerMinute ?? 0;
    const left = Math.max(0, rpm - l.window - l.others - count(l.used) - count(l.sendingUsed));
    return Math.max(l.waiting, Math.ceil(left * RATE_SLICE_FRACTION), 1);
  }

  /** Tokens in the shared minute at `sec`: the counts last read (still in the minute) plus this replica's unreported ones. */
  private tokenTotal(l: Limit, sec: number): number {
    let total = 0;
    for (let i = 0; i < SLOTS; i++) {
      const at = l.tokenSlotsAt - (SLOTS - 1) + i;
      if (at > sec - SLOTS && at <= sec) total += l.tokenSlots[i];
    }
    for (const m of [l.tokens, l.sendingTokens]) for (const [at, n] of m) if (at > sec - SLOTS && at <= sec) total += n;
    return total;
  }

  private tokenRefusal(l: Limit, now: number): RateRefusal | undefined {
    const tpm = l.config.tokensPerMinute;
    if (tpm === undefined) return undefined;
    const sec = Math.floor(now / 1000);
    let total = this.tokenTotal(l, sec);
    if (total < tpm) return undefined;
    // Seconds until enough of the minute's oldest tokens leave it.
    const perSecond = new Map<number, number>();
    for (let i = 0; i < SLOTS; i++) perSecond.set(l.tokenSlotsAt - (SLOTS - 1) + i, l.tokenSlots[i]);
    for (const m of [l.tokens, l.sendingTokens]) for (const [at, n] of m) perSecond.set(at, (perSecond.get(at) ?? 0) + n);
    let retry = SLOTS;
    for (let k = 1; k <= SLOTS; k++) {
      total -= perSecond.get(sec - SLOTS + k) ?? 0;
      if (total < tpm) {
        retry = k;
        break;
      }
    }
    return { scope: l.scope, kind: 'tokens', limit: tpm, retryAfterSeconds: retry };
  }

  private requestRefusal(l: Limit, now: number): RateRefusal {
    return { scope: l.scope, kind: 'requests', limit: l.config.requestsPerMinute!, retryAfterSeconds: Math.max(1, Math.ceil((l.retryAt - now) / 1000)) };
  }

  private sync(l: Limit): Promise<boolean> {
    return syncOneAtATime(l, (x) => this.syncNow(x));
  }

  private async syncNow(l: Limit): Promise<boolean> {
    const now = this.clock();
    const sec = Math.floor(now / 1000);
    l.sendingUsed = l.used;
    l.used = new Map();
    l.sendingTokens = l.tokens;
    l.tokens = new Map();
    try {
      const rpm = l.config.requestsPerMinute;
      if (rpm !== undefined) {
        const idle = l.waiting === 0 && now - l.lastActivity > IDLE_RETURN_MS;
        // Never below what is held (admissions may be taken from it while the sync is in flight), unless returning it: then
        // it is given up here first, so that nothing is admitted from room on its way back.
        const want = this.closed || idle || this.retired.includes(l) ? 0 : Math.max(this.desiredFree(l), l.lease);
        l.lease = Math.min(l.lease, want);
        const [seconds, counts] = arrays(l.sendingUsed);
        const sentAt = this.clock();
        const r = await this.call(l.scope, 'requests', rpm, sec, seconds, counts, count(l.sendingUsed), want);
        // Leased admissions used while the sync was in flight came out of the old lease: they are in `used` now.
        const usedMeanwhile = count(l.used);
        l.lease = Math.max(0, Number(r.o_lease) - usedMeanwhile);
        l.leaseUntil = sentAt + this.leaseMs - Math.min(LEASE_MARGIN_MS, this.leaseMs / 4);
        l.window = r.o_window;
        l.others = Number(r.o_others);
        l.retryAt = now + r.o_retry * 1000;
        l.exhaustedUntil = Number(r.o_lease) === 0 && want > 0 ? now + Math.min(EXHAUSTED_MS, r.o_retry * 1000) : 0;
        l.sendingUsed = new Map();
      }
      const tpm = l.config.tokensPerMinute;
      if (tpm !== undefined) {
        const [seconds, counts] = arrays(l.sendingTokens);
        const r = await this.call(l.scope, 'tokens', tpm, sec, seconds, counts, 0, 0);
        l.tokenSlots = r.o_slots.map(Number);
        l.tokenSlotsAt = Number(r.o_now);
        l.sendingTokens = new Map();
      }
      this.recovered();
      return true;
    } catch (err) {
      // Unknown whether it committed: reported again (counted twice at worst, never lost).
      merge(l.used, l.sendingUsed);
      merge(l.tokens, l.sendingTokens);
      l.sendingUsed = new Map();
      l.sendingTokens = new Map();
      this.fail(err);
      return false;
    }
  }

  private async call(scope: string, kind: 'requests' | 'tokens', limit: number, sec: number, seconds: number[], counts: number[], used: number, want: number): Promise<SyncRow> {
    const r = await this.pool.query<SyncRow>(`SELECT * FROM ${this.fn}.rate_sync($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, [
      this.options.replica,
      scope,
      kind,
      limit,
      sec,
      seconds,
      counts,
      used,
      want,
      this.leaseMs,
    ]);
    return r.rows[0];
  }

  /** Reports due counts, returns idle leases and renews held ones. */
  private tick(): void {
    const now = this.clock();
    if (this.failure && !this.probing && this.limits[0]) {
      // Nothing else may be due (the failure refuses the calls that would be): ask the database whether it is back.
      this.probing = true;
      void this.sync(this.limits[0]).finally(() => (this.probing = false));
    }
    for (const l of this.retired) {
      if (!l.syncing) {
        void this.sync(l).then((ok) => {
          if (ok) this.retired = this.retired.filter((x) => x !== l);
        });
      }
    }
    for (const l of this.limits) {
      if (l.syncing) continue;
      const idle = l.waiting === 0 && now - l.lastActivity > IDLE_RETURN_MS && l.lease > 0;
      const renew = l.lease > 0 && now > l.leaseUntil - this.leaseMs / 2;
      const tokensDue = l.config.tokensPerMinute !== undefined && (l.tokens.size > 0 || now - l.tokenSlotsAt * 1000 > 1000);
      if (l.used.size > 0 || l.tokens.size > 0 || idle || renew || (tokensDue && now - l.lastActivity < 60_000)) void this.sync(l).catch(() => undefined);
    }
  }

  /** Reports every count now and reads the shared minutes back. */
  async flush(): Promise<void> {
    await Promise.all([...this.limits, ...this.retired].map((l) => this.sync(l)));
  }

  dispose(): void {
    void this.close();
  }

  /** Reports the last counts and returns every unused lease. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.flush();
    this.recoveries.dispose();
  }
}

function count(m: Map<number, number>): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}

function arrays(m: Map<number, number>): [number[], number[]] {
  return [[...m.keys()], [...m.values()]];
}

function merge(into: Map<number, number>, from: Map<number, number>): void {
  for (const [k, v] of from) into.set(k, (into.get(k) ?? 0) + v);
}
