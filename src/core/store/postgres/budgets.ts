import type { Pool } from 'pg';
import type { BudgetRefusal } from '../../accounting/budgets';
import { windowAt, type Period } from '../../accounting/windows';
import type { BudgetConfig } from '../../config/schema';
import { Emitter, type Disposable, type Event } from '../../events';
import { desiredFree, EXHAUSTED_MS, free, freshSlice, IDLE_RETURN_MS, LEASE_MARGIN_MS, LEASE_MS, statusOf, SYNC_CALLS, SYNC_MS, syncOneAtATime, type Slice, type StoreBudgetStatus } from './budget-slice';
import type { PgNotifier } from './notifier';
import { Reachability } from './reachability';
import { channelName, checkName, DEFAULT_SCHEMA, ident, StoreError } from './sql';

export { IDLE_RETURN_MS, LEASE_MS, SLICE_FRACTION, SYNC_CALLS, SYNC_MS, type StoreBudgetStatus } from './budget-slice';

/** The budgets a call was admitted under on this replica, holding its reservation until it settles. */
export interface StoreBudgetHold {
  slices: Slice[];
  reservedUsd: number;
}

/** A budget's limit changed (an override or a config change, made on any replica). */
export interface BudgetLimitChange {
  scope: string;
  period: Period;
  usd: number;
  overridden: boolean;
}

export interface PgBudgetOptions {
  schema?: string;
  /** This replica's id (its instance id): it names its leases. */
  replica: string;
  notifier?: PgNotifier;
  leaseMs?: number;
  syncMs?: number;
}

export function isStoreRefusal(r: StoreBudgetHold | BudgetRefusal): r is BudgetRefusal {
  return (r as BudgetRefusal).budget !== undefined;
}

/**
 * Budgets shared by every replica on one database, admitted without waiting on it in steady state. Each replica
 * leases a slice of each budget window's remaining room (a tenth of it, at least what the waiting calls need),
 * admits calls locally while their reservation fits its slice, sends settled spend in batches (every SYNC_MS, or at
 * once after SYNC_CALLS settles), asks for more before the slice runs out, and returns what it does not use after
 * IDLE_RETURN_MS without calls. The database (budget_sync, under the window's row lock) gives a slice only from room
 * that no spend and no other lease holds, and once the room is smaller than the call that waits, exactly that call.
 *
 * The bound: spend + every lease never passes the limit by more than one call's reservation, and settled spend never
 * passes spend + leases, so a window ends at most one call's reservation (its max_tokens cost) over its limit, however
 * many replicas and calls (while every replica reaches the database at least once per lease, and costs stay within
 * their reservations). A lease lasts LEASE_MS (60 s) from its last renewal: a killed replica's slice returns then.
 */
export class PgBudgetLedger extends Reachability implements Disposable {
  private slices: Slice[] = [];
  private byScope = new Map<string, Slice[]>();
  private retiring: Slice[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly subscriptions: Disposable[] = [];
  private readonly changes = new Emitter<BudgetLimitChange>();
  private readonly leaseMs: number;
  private readonly syncMs: number;
  private readonly fn: string;
  private readonly channel: string;
  private closed = false;
  /** Fires when a budget's limit changed on any replica (after this replica applied it). */
  readonly onDidChangeLimit: Event<BudgetLimitChange> = this.changes.event;

  constructor(
    private readonly pool: Pool,
    budgets: readonly BudgetConfig[],
    private readonly options: PgBudgetOptions,
  ) {
    // Its failure: the database cannot be reached for a batch or a lease.
    super('budgets');
    const schema = checkName(options.schema ?? DEFAULT_SCHEMA, 'store.schema');
    this.fn = ident(schema);
    this.channel = channelName(schema, 'budgets');
    this.leaseMs = options.leaseMs ?? LEASE_MS;
    this.syncMs = options.syncMs ?? SYNC_MS;
    this.apply(budgets, Date.now());
    this.timer = setInterval(() => this.tick(), this.syncMs);
    this.timer.unref();
    if (options.notifier) {
      this.subscriptions.push(
        options.notifier.onNotice((n) => {
          if (n.channel === this.channel) this.heard(n.payload);
        }),
        options.notifier.onDidConnect((c) => {
          // Notices may have been missed while the connection was away: read every budget again.
          if (c.reconnect) for (const s of this.slices) void this.sync(s).catch(() => undefined);
        }),
      );
    }
  }

  /** The topic's channel, for the notifier to listen on. */
  static channel(schema = DEFAULT_SCHEMA): string {
    return channelName(schema, 'budgets');
  }

  get size(): number {
    return this.slices.length;
  }

  /**
   * Replaces the configured budgets (at start and on a config reload), keeping the state of the same scope and period,
   * and writes each limit to the database, which tells the other replicas when it changed: replicas should share one
   * config, and the last one to start or reload sets the limits for all. Resolves when written (a failure is kept in
   * `failure`).
   */
  configure(budgets: readonly BudgetConfig[], now = Date.now()): Promise<void> {
    this.apply(budgets, now);
    return Promise.all(
      this.slices.map((s) =>
        this.pool
          .query(`SELECT ${this.fn}.budget_configure($1, $2, $3, $4, $5)`, [s.scope, s.period, new Date(s.window.start), new Date(s.window.end), s.configuredUsd])
          .catch((err) => this.fail(err)),
      ),
    ).then(() => undefined);
  }

  /** The configured budgets, here only. */
  private apply(budgets: readonly BudgetConfig[], now: number): void {
    const old = new Map(this.slices.map((s) => [`${s.scope}|${s.period}`, s]));
    this.slices = budgets.map((b) => {
      const prev = old.get(`${b.scope}|${b.period}`);
      old.delete(`${b.scope}|${b.period}`);
      if (prev) {
        if (!prev.overridden) prev.limit = b.usd;
        prev.configuredUsd = b.usd;
        return prev;
      }
      return freshSlice(b.scope, b.period, b.usd, now);
    });
    for (const gone of old.values()) this.retire(gone);
    this.byScope = new Map();
    for (const s of this.slices) {
      const list = this.byScope.get(s.scope) ?? [];
      list.push(s);
      this.byScope.set(s.scope, list);
    }
  }

  /**
   * Admits a call in `scopes` with a reservation of `estimateUsd` (its max_tokens cost), or names the budget without
   * room. Synchronous while every budget's slice has room; a Promise when some slice must first ask the database
   * (rejecting with a StoreError when it cannot be reached).
   */
  reserve(scopes: readonly string[], estimateUsd: number, now: number): StoreBudgetHold | BudgetRefusal | Promise<StoreBudgetHold | BudgetRefusal> {
    const slices = this.slicesOf(scopes, now);
    let ask: Slice[] | undefined;
    for (const s of slices) {
      if (this.fits(s, estimateUsd, now)) continue;
      if (s.exhaustedUntil > now) return this.refusal(s, now);
      (ask ??= []).push(s);
    }
    if (!ask) return this.take(slices, estimateUsd, now);
    return this.reserveSlow(slices, ask, estimateUsd, now);
  }

  private async reserveSlow(slices: Slice[], ask: Slice[], estimateUsd: number, now: number): Promise<StoreBudgetHold | BudgetRefusal> {
    for (const s of ask) {
      s.waiting += estimateUsd;
      s.need = Math.max(s.need, estimateUsd);
    }
    try {
      for (const s of ask) {
        // A few rounds at most: a round that gives nothing new means the window has no room.
        for (let round = 0; !this.fits(s, estimateUsd, Date.now()); round++) {
          if (s.exhaustedUntil > Date.now() || round >= 4) return this.refusal(s, Date.now());
          const before = free(s);
          const ok = await this.sync(s);
          if (!ok) throw new StoreError(`the store (PostgreSQL) cannot be reached to lease budget room for ${s.scope} (${this.failure?.code ?? 'error'})`, 'CCGW_STORE_UNAVAILABLE');
          if (free(s) <= before && !this.fits(s, estimateUsd, Date.now())) {
            s.exhaustedUntil = Date.now() + EXHAUSTED_MS;
            return this.refusal(s, Date.now());
          }
        }
      }
      for (const s of slices) if (!this.fits(s, estimateUsd, Date.now())) return this.refusal(s, Date.now());
      return this.take(slices, estimateUsd, now);
    } finally {
      for (const s of ask) s.waiting = Math.max(0, s.waiting - estimateUsd);
    }
  }

  private fits(s: Slice, usd: number, now: number): boolean {
    return now < s.leaseUntil && free(s) >= usd;
  }

  private take(slices: Slice[], usd: number, now: number): StoreBudgetHold {
    for (const s of slices) {
      s.reserved += usd;
      s.lastActivity = now;
      // Ask for more before the slice runs out, so that the next calls do not wait.
      if (!s.syncing && free(s) < desiredFree(s) / 2) void this.sync(s).catch(() => undefined);
    }
    return { slices, reservedUsd: usd };
  }

  /** Releases a hold and counts the real cost (at `at`) in every budget of the call's scopes; sent with the next batch. */
  settle(hold: StoreBudgetHold, scopes: readonly string[], costUsd: number, at: number): void {
    for (const s of hold.slices) s.reserved = Math.max(0, s.reserved - hold.reservedUsd);
    this.record(scopes, costUsd, at);
  }

  /** Counts a cost without a reservation. */
  record(scopes: readonly string[], costUsd: number, at: number): void {
    for (const s of this.slicesOf(scopes, at)) {
      s.lastActivity = at;
      if (costUsd === 0) continue;
      s.unflushed += costUsd;
      if (++s.settles >= SYNC_CALLS && !s.syncing) void this.sync(s).catch(() => undefined);
    }
  }

  /**
   * Sets (or with `usd` undefined, clears) one budget's limit for its current window, on every replica (the database
   * tells them). False when no such budget is configured here.
   */
  async override(scope: string, period: Period, usd: number | undefined, at = Date.now(), by?: string): Promise<boolean> {
    const s = this.slices.find((x) => x.scope === scope && x.period === period);
    if (!s) return false;
    this.roll(s, at);
    const r = await this.pool
      .query<{ lim: number }>(`SELECT ${this.fn}.budget_override($1, $2, $3, $4, $5, $6, $7) AS lim`, [
        scope,
        period,
        new Date(s.window.start),
        new Date(s.window.end),
        s.configuredUsd,
        usd ?? null,
        by ?? null,
      ])
      .catch((err: unknown) => {
        this.fail(err);
        throw new StoreError(`the store (PostgreSQL) cannot be reached to override the ${scope} budget (${this.failure?.code ?? 'error'})`, 'CCGW_STORE_UNAVAILABLE', { cause: err });
      });
    this.applyLimit(s, r.rows[0].lim, usd !== undefined);
    return true;
  }

  /** Every budget's state as this replica knows it (spend read at the last batch, plus its own unsent spend). */
  statuses(now = Date.now()): StoreBudgetStatus[] {
    return this.slices.map((s) => {
      this.roll(s, now);
      return statusOf(s);
    });
  }

  /** Sends every batch now and reads every budget's spend again (for GET /budgets and usage). */
  async refresh(now = Date.now()): Promise<StoreBudgetStatus[]> {
    await Promise.all(this.slices.map((s) => (this.roll(s, now), this.sync(s))));
    await this.flushRetiring();
    return this.statuses(now);
  }

  private slicesOf(scopes: readonly string[], now: number): Slice[] {
    const out: Slice[] = [];
    for (const scope of scopes) {
      const list = this.byScope.get(scope);
      if (!list) continue;
      for (const s of list) {
        this.roll(s, now);
        out.push(s);
      }
    }
    return out;
  }

  /** A new window: the old one's unsent spend and lease are settled there; the new one starts from nothing leased. */
  private roll(s: Slice, now: number): void {
    if (now < s.window.end) return;
    this.retire({ ...s, reserved: 0, syncing: undefined, nextSync: undefined });
    s.window = windowAt(s.period, now);
    Object.assign(s, { granted: 0, unflushed: 0, sending: 0, settles: 0, spent: 0, others: 0, leaseUntil: 0, exhaustedUntil: 0 });
    s.limit = s.configuredUsd;
    s.overridden = false;
  }

  private retire(s: Slice): void {
    if (s.unflushed + s.sending > 0 || s.granted > 0) this.retiring.push({ ...s, unflushed: s.unflushed + s.sending, sending: 0, reserved: 0, waiting: 0, giveBack: true });
  }

  /** One budget_sync for a slice (one in flight per slice; a call while one is in flight waits for it, then sends another). */
  private sync(s: Slice): Promise<boolean> {
    return syncOneAtATime(s, (x) => this.syncNow(x));
  }

  private async syncNow(s: Slice): Promise<boolean> {
    const delta = s.unflushed;
    s.unflushed = 0;
    s.settles = 0;
    s.sending = delta;
    const floor = s.reserved;
    const now = Date.now();
    const idle = s.waiting === 0 && now - s.lastActivity > IDLE_RETURN_MS;
    const want = s.giveBack || idle || this.closed ? floor : floor + desiredFree(s);
    const need = s.waiting > 0 ? s.need : 0;
    const giveBack = s.giveBack;
    s.giveBack = false;
    // Room being returned is given up here first, so that no call is admitted from it while the sync is in flight.
    s.granted = Math.min(s.granted, want + delta);
    try {
      const r = await this.pool.query<{ o_granted: number; o_limit: number; o_spent: number; o_others: number; o_overridden: boolean }>(
        `SELECT * FROM ${this.fn}.budget_sync($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [this.options.replica, s.scope, s.period, new Date(s.window.start), new Date(s.window.end), s.configuredUsd, delta, floor, want, need, this.leaseMs],
      );
      const row = r.rows[0];
      s.sending = 0;
      s.granted = row.o_granted;
      s.spent = row.o_spent;
      s.others = row.o_others;
      if (s.limit !== row.o_limit || s.overridden !== row.o_overridden) this.applyLimit(s, row.o_limit, row.o_overridden);
      s.leaseUntil = now + this.leaseMs - Math.min(LEASE_MARGIN_MS, this.leaseMs / 4);
      if (s.waiting === 0) s.need = 0;
      this.recovered();
      return true;
    } catch (err) {
      // Unknown whether it committed: the spend is sent again (counted twice at worst, never lost).
      s.unflushed += s.sending;
      s.sending = 0;
      s.giveBack ||= giveBack;
      this.fail(err);
      return false;
    }
  }

  private applyLimit(s: Slice, limit: number, overridden: boolean): void {
    const lowered = limit < s.limit;
    s.limit = limit;
    s.overridden = overridden;
    s.exhaustedUntil = 0;
    if (lowered) s.giveBack = true;
    this.changes.fire({ scope: s.scope, period: s.period, usd: limit, overridden });
  }

  private heard(payload: string): void {
    let msg: { op?: string; scope?: string; period?: string; start?: number; usd?: number | null; limit?: number };
    try {
      msg = JSON.parse(payload);
    } catch {
      return;
    }
    const s = this.slices.find((x) => x.scope === msg.scope && x.period === msg.period);
    if (!s || s.window.start !== Number(msg.start)) return;
    if (msg.op === 'override' && typeof msg.limit === 'number') this.applyLimit(s, msg.limit, msg.usd !== null);
    else if (msg.op === 'config' && typeof msg.usd === 'number' && !s.overridden) this.applyLimit(s, msg.usd, false);
    if (s.giveBack) void this.sync(s).catch(() => undefined);
  }

  /** Sends due batches, returns idle slices, renews leases, settles retired windows, and probes after a failure. */
  private tick(): void {
    const now = Date.now();
    if (this.failure && !this.probing) {
      // Nothing else may be due (the failure refuses the calls that would be): ask the database whether it is back.
      this.probing = true;
      const probe = this.slices[0] ? this.sync(this.slices[0]) : this.pool.query('SELECT 1').then(() => (this.recovered(), true));
      void probe.catch((err: unknown) => this.fail(err)).finally(() => (this.probing = false));
    }
    for (const s of this.slices) {
      if (s.syncing) continue;
      const idle = s.waiting === 0 && now - s.lastActivity > IDLE_RETURN_MS && s.granted > s.reserved;
      const renew = s.granted > 0 && now > s.leaseUntil - this.leaseMs / 2;
      if (s.unflushed > 0 || s.giveBack || idle || renew) void this.sync(s).catch(() => undefined);
    }
    if (this.retiring.length) void this.flushRetiring();
  }

  private async flushRetiring(): Promise<void> {
    const list = this.retiring;
    this.retiring = [];
    for (const s of list) if (!(await this.syncNow(s))) this.retiring.push(s);
  }

  private refusal(s: Slice, now: number): BudgetRefusal {
    const status = this.statuses(now).find((x) => x.scope === s.scope && x.period === s.period)!;
    return { budget: { ...status, reservedUsd: status.reservedUsd + s.others }, retryAfterMs: s.window.end - now };
  }

  dispose(): void {
    void this.close();
  }

  /** Sends the last batches and returns every unused slice (what calls still in flight hold stays leased until it expires). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (const sub of this.subscriptions.reverse()) sub.dispose();
    await Promise.all(this.slices.map((s) => this.sync(s)));
    await this.flushRetiring();
    this.changes.dispose();
    this.recoveries.dispose();
  }
}
