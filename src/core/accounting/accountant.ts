import type { GatewayConfig } from '../config/validate';
import { Errors } from '../errors';
import { Emitter, type Disposable, type Event } from '../events';
import { settledCall, type Accountant, type Admission, type CallInfo, type CallOutcome, type SettledCall } from '../gateway/call';
import { FileStore, type AccountingStart } from '../store/files';
import { isStoreUnavailable, type GatewayStore, type StoreHold } from '../store/store';
import { totalTokens } from '../streams/usage';
import { formatUsd, scopesOf, type BudgetRefusal, type BudgetStatus } from './budgets';
import { GatewayMetrics } from './metrics';
import { PriceTable, reservationUsd } from './pricing';
import { isRateRefusal, rateHeaders, type RateHeadroom, type RateRefusal } from './rate-limits';
import { callRecord, scrubberFor, type Scrubber } from './records';
import { SecurityEventLog, securityEventOf, type SecurityRefusal } from './security-events';
import type { AuditLog } from './audit-log';
import type { UsageIndex } from './usage-index';
import type { UsageQuery, UsageReport } from './usage-report';
import { secondsUntil, type Period } from './windows';

/** Retry-after for a call refused because a budget's room is held by calls in flight (not spent): they settle within seconds. */
const BUDGET_HELD_RETRY_S = 2;

export type { AccountingStart } from '../store/files';

/**
 * What the accountant needs of the gateway that hosts it (the runtime gives it itself): the config and its changes,
 * who it is, and the secrets its scrubbers remove. Accounting answers with its own events (settled, budgets
 * changed), which the runtime re-exposes; it never calls back into the runtime.
 */
export interface AccountingHost {
  readonly config: GatewayConfig;
  readonly instanceId: string;
  readonly version: string;
  readonly callsInFlight: number;
  /** Someone listens to budget changes (computing every budget's state per call is wasted otherwise). */
  readonly budgetsWatched: boolean;
  readonly env: NodeJS.ProcessEnv;
  readonly heldSecrets: Parameters<typeof scrubberFor>[2]['heldSecrets'];
  readonly keys: Parameters<typeof scrubberFor>[2]['keys'];
  readonly apiKeys: Parameters<typeof scrubberFor>[2]['apiKeys'];
  readonly onDidChangeProfile: Event<{ keyId?: string; profile: string }>;
  readonly onDidChangeConfig: Event<GatewayConfig>;
}

/**
 * The real accountant: admits calls against budgets and rate limits, prices settled calls, appends one audit record
 * per call, feeds /metrics and fires its events, all through the store (files by default, or the one it is given).
 * With a store that answers synchronously (files, and PostgreSQL while its slices have room) nothing on the hot path
 * waits: a call's record is queued and written with the others of its event-loop turn.
 */
export class Accounting implements Accountant, Disposable {
  prices: PriceTable;
  readonly store: GatewayStore;
  readonly prometheus: GatewayMetrics;
  private scrubber?: Scrubber;
  /** Recent cost per model family (an exponential average): the reservation when it exceeds a call's bound. */
  private readonly estimates = new Map<string, number>();
  private readonly subscriptions: Disposable[] = [];
  private disposed = false;
  private closing?: Promise<void>;
  private readonly security: SecurityEventLog;
  /** Removes configured secrets and credential shapes from what security records keep of a request. */
  private securityScrubber: Scrubber;
  private readonly _onDidSettleCall = new Emitter<SettledCall>();
  private readonly _onDidChangeBudgets = new Emitter<BudgetStatus[]>();
  /** A model call settled (or was refused by a budget or rate limit): usage, cost and status are known. */
  readonly onDidSettleCall: Event<SettledCall> = this._onDidSettleCall.event;
  /** Budget spend or limits changed (a priced call settled, an override, a config reload, here or on another replica). */
  readonly onDidChangeBudgets: Event<BudgetStatus[]> = this._onDidChangeBudgets.event;

  constructor(
    private readonly host: AccountingHost,
    store?: GatewayStore,
  ) {
    const config = host.config;
    this.prices = new PriceTable(config.prices);
    this.store = store ?? new FileStore(config, { instanceId: host.instanceId, version: host.version });
    this.scrubber = this.makeScrubber(config);
    this.prometheus = new GatewayMetrics(() => this.store.budgets.statuses());
    this.security = new SecurityEventLog((type, fields, at) => this.store.audit.appendSoon(type, fields, at));
    this.securityScrubber = scrubberFor('redacted', config, host);
    this.subscriptions.push(
      host.onDidChangeProfile((e) => this.store.audit.append('profile_switch', { key: e.keyId, profile: e.profile })),
      host.onDidChangeConfig((c) => this.reconfigure(c)),
    );
    if (this.store.onDidChangeBudgets) this.subscriptions.push(this.store.onDidChangeBudgets(() => this.publishBudgets()));
  }

  /** How the file store met its log at start (a database store rebuilds nothing). */
  get started(): AccountingStart {
    return this.store instanceof FileStore ? this.store.started : { records: 0, ms: 0 };
  }

  /** The file store's audit log (tests renew its lock by hand), if the store is files. */
  get audit(): AuditLog | undefined {
    return this.store instanceof FileStore ? this.store.audit : undefined;
  }

  /** The file store's usage index (benchmarks seed it), if the store is files. */
  get usageIndex(): UsageIndex | undefined {
    return this.store instanceof FileStore ? this.store.usageIndex : undefined;
  }

  /** Records a refusal by authentication or path confinement, without secrets (rate-limited; see SecurityEventLog). */
  recordSecurity(refusal: SecurityRefusal): void {
    this.security.record(() => securityEventOf(refusal, this.securityScrubber), Date.now(), refusal.code);
  }

  /**
   * Admits a call: the store must be reachable (unless failOpen), then its budgets and rate limits must have room.
   * Returns the admission itself when the store answers at once (always for files), a Promise only when it must
   * ask its database first (a slice must grow).
   */
  admit(call: CallInfo): Admission | Promise<Admission> {
    const store = this.store;
    if (!store.failOpen) {
      const refused = store.refusal(call.countTokens);
      if (refused) throw refused;
    }
    const scopes = scopesOf(call);
    if (call.countTokens) return { headers: undefined, settle: (outcome) => this.settle(call, scopes, undefined, outcome) };
    const now = call.startedAt;
    if (!store.budgets.size) return this.admitRates(call, scopes, undefined, now);
    const r = store.budgets.reserve(scopes, this.estimate(call), now);
    if (r instanceof Promise) {
      return r.then(
        (x) => this.admitBudget(call, scopes, x, now),
        (err: unknown) => this.admitRates(call, scopes, this.storeAway(err), now),
      );
    }
    return this.admitBudget(call, scopes, r, now);
  }

  /** A store that failed while admitting: the 503 naming it, or nothing held when failOpen lets the call through. */
  private storeAway(err: unknown): undefined {
    if (!isStoreUnavailable(err)) throw err;
    if (this.store.failOpen) return undefined;
    throw this.store.refusal(false) ?? new Errors.StoreUnavailable((err as Error).message);
  }

  private admitBudget(call: CallInfo, scopes: string[], r: StoreHold | BudgetRefusal, now: number): Admission | Promise<Admission> {
    if ((r as BudgetRefusal).budget !== undefined) {
      const b = (r as BudgetRefusal).budget;
      if (b.spentUsd < b.usd) {
        // Not spent: held by the reservations of calls in flight (each reserves its max_tokens), which settle for less
        // as a rule. A retryable 429, so Claude Code waits a moment and tries again instead of giving up the turn.
        const message = `${b.scope} budget of $${formatUsd(b.usd)} per ${b.period} is held by calls in flight ($${formatUsd(b.spentUsd)} spent, $${formatUsd(b.reservedUsd)} reserved for their max_tokens); retry in ${BUDGET_HELD_RETRY_S} s`;
        this.reject(call, scopes, 'budget_held', message);
        throw Object.assign(new Errors.RateLimited(message), { headers: { 'retry-after': String(BUDGET_HELD_RETRY_S) } });
      }
      const held = b.reservedUsd > 0 ? `, $${formatUsd(b.reservedUsd)} held by calls in flight` : '';
      const message = `${b.scope} budget of $${formatUsd(b.usd)} per ${b.period} reached ($${formatUsd(b.spentUsd)} spent${held}); resets ${b.resetsAt}`;
      this.reject(call, scopes, 'billing_error', message);
      throw Object.assign(new Errors.BudgetExceeded(message), { headers: { 'retry-after': String(secondsUntil(Date.parse(b.resetsAt), now)) } });
    }
    return this.admitRates(call, scopes, r, now);
  }

  private admitRates(call: CallInfo, scopes: string[], hold: StoreHold | undefined, now: number): Admission | Promise<Admission> {
    const room = this.store.rates.admit(scopes, now);
    if (room instanceof Promise) {
      return room.then(
        (x) => this.admitted(call, scopes, hold, x, now),
        (err: unknown) => {
          try {
            return this.admitted(call, scopes, hold, this.storeAway(err), now);
          } catch (e) {
            if (hold) this.store.budgets.settle(hold, [], 0, now);
            throw e;
          }
        },
      );
    }
    return this.admitted(call, scopes, hold, room, now);
  }

  private admitted(call: CallInfo, scopes: string[], hold: StoreHold | undefined, room: RateHeadroom | RateRefusal | undefined, now: number): Admission {
    if (room && isRateRefusal(room)) {
      if (hold) this.store.budgets.settle(hold, [], 0, now);
      const message = `${room.scope} rate limit of ${room.limit} ${room.kind} per minute reached; retry in ${room.retryAfterSeconds} s`;
      this.reject(call, scopes, 'rate_limit_error', message);
      const prefix = `x-gateway-ratelimit-${room.kind}`;
      throw Object.assign(new Errors.RateLimited(message), {
        headers: { 'retry-after': String(room.retryAfterSeconds), [`${prefix}-limit`]: String(room.limit), [`${prefix}-remaining`]: '0' },
      });
    }
    return { headers: room ? rateHeaders(room) : undefined, settle: (outcome) => this.settle(call, scopes, hold, outcome) };
  }

  private settle(call: CallInfo, scopes: string[], hold: StoreHold | undefined, outcome: CallOutcome): void {
    const now = Date.now();
    const store = this.store;
    const priced = call.countTokens ? { usd: 0, family: undefined, priceKnown: true } : this.prices.cost(outcome.usage, outcome.responseModel, call.upstreamModel, call.requestedModel);
    if (hold) store.budgets.settle(hold, scopes, priced.usd, now);
    else if (priced.usd) store.budgets.record(scopes, priced.usd, now);
    store.rates.settle(scopes, totalTokens(outcome.usage), now);
    if (priced.usd > 0 && priced.family) {
      const prev = this.estimates.get(priced.family);
      this.estimates.set(priced.family, prev === undefined ? priced.usd : prev * 0.8 + priced.usd * 0.2);
    }
    const settled = settledCall(call, outcome, priced.usd, priced.priceKnown);
    this.write(settled, priced.family, scopes);
    this.prometheus.observe(settled);
    this._onDidSettleCall.fire(settled);
    if (store.budgets.size && priced.usd > 0 && this.host.budgetsWatched) this._onDidChangeBudgets.fire(store.budgets.statuses(now));
  }

  /** Records a call refused by a budget or rate limit (it cost nothing and never reached the upstream). */
  private reject(call: CallInfo, scopes: string[], errorType: string, message: string): void {
    const settled: SettledCall = {
      ...call,
      status: 'rejected',
      httpStatus: 429,
      latencyMs: Date.now() - call.startedAt,
      usage: { input: 0, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0 },
      errorType,
      errorMessage: message,
      costUsd: 0,
      priceKnown: true,
    };
    this.write(settled, undefined, scopes);
    this.prometheus.observe(settled);
    this._onDidSettleCall.fire(settled);
  }

  private write(c: SettledCall, family: string | undefined, scopes: readonly string[]): void {
    const record = callRecord(c, family, this.scrubber, this.securityScrubber);
    this.store.writeCall(record as unknown as Record<string, unknown>, scopes, c.costUsd, Date.now());
  }

  /** GET /usage: from the store (the file store's in-memory index, or the database). */
  usage(q: UsageQuery): Promise<UsageReport> {
    return this.store.usage(q);
  }

  /**
   * The reservation for a call: the most it can cost (its `max_tokens` and body size at its model's list price, an
   * unknown model at the top price), or its family's recent average cost when that is more (cache writes are not in
   * the bound). So a cheap call first cannot make the next ones look cheap.
   */
  private estimate(call: CallInfo): number {
    const { family } = this.prices.resolve(call.upstreamModel, call.requestedModel);
    const bound = reservationUsd(this.prices.price(family), call.maxTokens, call.requestBytes);
    const recent = this.estimates.get(family);
    return recent !== undefined && recent > bound ? recent : bound;
  }

  flush(): void {
    this.store.audit.flush();
  }

  metrics(): Promise<string> {
    return this.prometheus.text();
  }

  budgets(): BudgetStatus[] {
    return this.store.budgets.statuses();
  }

  health(): Record<string, unknown> {
    return this.store.health();
  }

  /**
   * Overrides one budget's limit for its current window (or clears the override); recorded in the audit log. Through
   * the store: a database store writes it and every replica hears it, so the answer is then a Promise.
   */
  overrideBudget(scope: string, period: Period, usd: number | undefined, by?: string): boolean | Promise<boolean> {
    const done = (ok: boolean) => {
      if (ok) {
        this.store.audit.append('budget_override', { scope, period, usd: usd ?? null, by });
        this.publishBudgets();
      }
      return ok;
    };
    const r = this.store.budgets.override(scope, period, usd, Date.now(), by);
    return r instanceof Promise ? r.then(done) : done(r);
  }

  private publishBudgets(): void {
    if (!this.disposed) this._onDidChangeBudgets.fire(this.store.budgets.statuses());
  }

  private reconfigure(config: GatewayConfig): void {
    this.prices = new PriceTable(config.prices);
    this.store.reconfigure(config);
    this.scrubber = this.makeScrubber(config);
    this.securityScrubber = scrubberFor('redacted', config, this.host);
    this.store.audit.append('config_reload', { source: config.source, budgets: config.budgets.length, rateLimits: config.rateLimits.length, activeProfile: config.activeProfile });
    this.publishBudgets();
  }

  private makeScrubber(config: GatewayConfig): Scrubber | undefined {
    return config.audit.bodies === 'none' ? undefined : scrubberFor(config.audit.bodies, config, this.host);
  }

  /** Records the stop event and closes the store (a database store writes what is queued and returns its leases first). */
  close(): Promise<void> {
    if (!this.closing) {
      this.disposed = true;
      for (const s of this.subscriptions.reverse()) s.dispose();
      this.security.dispose();
      this.closing = this.store.close({ instance: this.host.instanceId, callsInFlight: this.host.callsInFlight });
      this._onDidSettleCall.dispose();
      this._onDidChangeBudgets.dispose();
    }
    return this.closing;
  }

  dispose(): void {
    void this.close();
  }
}
