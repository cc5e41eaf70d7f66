import type { GatewayConfig } from '../config/validate';
import { Errors } from '../errors';
import type { Disposable } from '../events';
import { settledCall, type Accountant, type Admission, type CallInfo, type CallOutcome, type SettledCall } from '../gateway/call';
import type { GatewayRuntime } from '../runtime';
import { totalTokens } from '../streams/usage';
import { AuditLog } from './audit-log';
import { BudgetLedger, formatUsd, isRefusal, scopesOf, type BudgetHold, type BudgetStatus } from './budgets';
import { GatewayMetrics } from './metrics';
import { PriceTable, reservationUsd } from './pricing';
import { isRateRefusal, RateLimiter, rateHeaders } from './rate-limits';
import { rebuildLedger } from './rebuild';
import { callRecord, scrubberFor, type Scrubber } from './records';
import { SecurityEventLog, securityEventOf, type SecurityRefusal } from './security-events';
import { SpendBook, type MissingSpend } from './spend-book';
import { UsageIndex } from './usage-index';
import { usageRecordOf } from './usage-records';
import type { UsageQuery, UsageReport } from './usage-report';
import { secondsUntil, type Period } from './windows';

/** Retry-after for a call refused because a budget's room is held by calls in flight (not spent): they settle within seconds. */
const BUDGET_HELD_RETRY_S = 2;

/** How the accountant met the log at start. */
export interface AccountingStart {
  records: number;
  ms: number;
  /** Set when the log was found short of its head (tampering): what is missing, said in a sentence. */
  tamper?: { reason: string; message: string; restored: MissingSpend[] };
}

/**
 * The real accountant: admits calls against budgets and rate limits, prices settled calls, appends one
 * audit record per call, feeds /metrics and fires the runtime's events. Everything on the hot path is
 * synchronous but the audit write: a call's record is queued and written with the others of its event-loop turn.
 */
export class Accounting implements Accountant, Disposable {
  prices: PriceTable;
  readonly ledger: BudgetLedger;
  readonly limiter: RateLimiter;
  readonly audit: AuditLog;
  readonly prometheus: GatewayMetrics;
  readonly started: AccountingStart;
  readonly usageIndex: UsageIndex;
  private scrubber?: Scrubber;
  /** Recent cost per model family (an exponential average): the reservation when it exceeds a call's bound. */
  private readonly estimates = new Map<string, number>();
  private readonly subscriptions: Disposable[] = [];
  private disposed = false;
  /** Spend written to the log per budgeted scope and day: what HEAD.json records. */
  private readonly spend: SpendBook;
  private readonly security: SecurityEventLog;
  /** Removes configured secrets and credential shapes from what security records keep of a request. */
  private securityScrubber: Scrubber;

  constructor(private readonly runtime: GatewayRuntime) {
    const config = runtime.config;
    const now = Date.now();
    this.prices = new PriceTable(config.prices);
    this.ledger = new BudgetLedger(config.budgets, now);
    this.limiter = new RateLimiter(config.rateLimits);
    this.scrubber = this.makeScrubber(config);
    this.prometheus = new GatewayMetrics(() => this.ledger.statuses());
    this.audit = new AuditLog(config.audit.dir, runtime.instanceId);
    // Usage by day x model x key x team x project x profile, read once from the files without blocking, then kept as calls settle.
    this.usageIndex = new UsageIndex(config.audit.dir, { flush: () => this.audit.flush() });
    void this.usageIndex.seed();
    this.spend = new SpendBook(config.budgets, now);
    this.audit.headSpend = () => (this.ledger.size ? this.spend.toJSON() : undefined);
    this.security = new SecurityEventLog((type, fields, at) => this.audit.appendSoon(type, fields, at));
    this.securityScrubber = scrubberFor('redacted', config, runtime);
    const t0 = performance.now();
    const r = this.audit.recovery;
    const upToHead = r.head?.spend ? new SpendBook(config.budgets, now) : undefined;
    const rebuilt = this.audit.failure
      ? { records: 0 }
      : rebuildLedger(config.audit.dir, this.ledger, config.budgets, now, { all: this.spend, upToHead, headSeq: r.head?.seq });
    const tamper = this.restoreMissingSpend(upToHead);
    this.started = { records: rebuilt.records, ms: performance.now() - t0, ...(tamper ? { tamper } : {}) };
    if (!tamper && r.unclean) {
      this.audit.append('gap', {
        reason: r.tornMovedTo ? 'torn_line' : 'unclean_shutdown',
        afterSeq: r.lastSeq,
        detail: 'the gateway stopped without recording a stop event (crash or kill); calls in flight at that moment were not recorded',
        ...(r.tornMovedTo ? { movedTo: r.tornMovedTo, bytes: r.tornBytes } : {}),
      });
    }
    this.audit.append('start', { instance: runtime.instanceId, version: runtime.version, pid: process.pid, rebuiltRecords: rebuilt.records });
    this.subscriptions.push(
      runtime.onDidChangeProfile((e) => this.audit.append('profile_switch', { key: e.keyId, profile: e.profile })),
      runtime.onDidChangeConfig((c) => this.reconfigure(c)),
    );
  }

  /**
   * Compares the log with its head: spend the head recorded that the records up to its seq no longer hold was in
   * records that were removed (or edited), so it is counted again in the budgets and written into the chain with the
   * `tamper` record (the next start reads it back from there). Says so loudly: on stderr through the CLI, in /health.
   */
  private restoreMissingSpend(upToHead: SpendBook | undefined): AccountingStart['tamper'] {
    const r = this.audit.recovery;
    const missing = upToHead && r.head ? upToHead.missingFrom(r.head.spend) : [];
    for (const m of missing) {
      this.ledger.record([m.scope], m.usd, Date.parse(`${m.day}T00:00:00.000Z`));
      this.spend.addOne(m.scope, m.day, m.usd);
    }
    const pending = this.audit.pendingTamper;
    let reason: string;
    let message: string;
    if (pending && r.tamper) {
      if (missing.length) pending.restored = missing;
      reason = r.tamper.reason;
      message = r.tamper.message;
    } else if (missing.length && r.head) {
      reason = 'spend_missing';
      message = `the log holds less spend than HEAD.json recorded up to seq ${r.head.seq}: records before it were removed or edited`;
      this.audit.append('tamper', { reason, detail: message, expected: { seq: r.head.seq, hash: r.head.hash }, found: { seq: r.lastSeq }, restored: missing });
    } else return undefined;
    if (missing.length) {
      const byScope = new Map<string, number>();
      for (const m of missing) byScope.set(m.scope, (byScope.get(m.scope) ?? 0) + m.usd);
      message += `; the budgets keep what the head says the missing records cost (${[...byScope].map(([scope, usd]) => `${scope} $${formatUsd(usd)}`).join(', ')})`;
    }
    return { reason, message: `the audit log in ${this.audit.dir} was tampered with: ${message}`, restored: missing };
  }

  /** Records a refusal by authentication or path confinement, without secrets (rate-limited; see SecurityEventLog). */
  recordSecurity(refusal: SecurityRefusal): void {
    this.security.record(() => securityEventOf(refusal, this.securityScrubber), Date.now(), refusal.code);
  }

  admit(call: CallInfo): Admission {
    const now = call.startedAt;
    const config = this.runtime.config;
    if (this.audit.failure && !config.audit.failOpen && !call.countTokens && !this.audit.probe()) {
      throw new Errors.AuditUnavailable(
        `The gateway cannot write its audit log (${this.audit.failure?.code}), so it refuses model calls. Fix the folder's permissions or space, or set "audit.failOpen": true to serve without an audit trail.`,
      );
    }
    const scopes = scopesOf(call);
    let hold: BudgetHold | undefined;
    let headers: Record<string, string> | undefined;
    if (!call.countTokens) {
      if (this.ledger.size) {
        const r = this.ledger.reserve(scopes, this.estimate(call), now);
        if (isRefusal(r)) {
          const b = r.budget;
          if (b.spentUsd < b.usd) {
            // Not spent: held by the reservations of calls in flight (each reserves its max_tokens), which settle for less
            // as a rule. A retryable 429, so Claude Code waits a moment and tries again instead of giving up the turn.
            const message = `${b.scope} budget of $${formatUsd(b.usd)} per ${b.period} is held by calls in flight ($${formatUsd(b.spentUsd)} spent, $${formatUsd(b.reservedUsd)} reserved for their max_tokens); retry in ${BUDGET_HELD_RETRY_S} s`;
            this.reject(call, 'budget_held', message);
            throw Object.assign(new Errors.RateLimited(message), { headers: { 'retry-after': String(BUDGET_HELD_RETRY_S) } });
          }
          const held = b.reservedUsd > 0 ? `, $${formatUsd(b.reservedUsd)} held by calls in flight` : '';
          const message = `${b.scope} budget of $${formatUsd(b.usd)} per ${b.period} reached ($${formatUsd(b.spentUsd)} spent${held}); resets ${b.resetsAt}`;
          this.reject(call, 'billing_error', message);
          throw Object.assign(new Errors.BudgetExceeded(message), { headers: { 'retry-after': String(secondsUntil(Date.parse(b.resetsAt), now)) } });
        }
        hold = r;
      }
      const room = this.limiter.admit(scopes, now);
      if (isRateRefusal(room)) {
        if (hold) this.ledger.settle(hold, [], 0, now);
        const message = `${room.scope} rate limit of ${room.limit} ${room.kind} per minute reached; retry in ${room.retryAfterSeconds} s`;
        this.reject(call, 'rate_limit_error', message);
        const prefix = `x-gateway-ratelimit-${room.kind}`;
        throw Object.assign(new Errors.RateLimited(message), {
          headers: { 'retry-after': String(room.retryAfterSeconds), [`${prefix}-limit`]: String(room.limit), [`${prefix}-remaining`]: '0' },
        });
      }
      headers = rateHeaders(room);
    }
    return { headers, settle: (outcome) => this.settle(call, scopes, hold, outcome) };
  }

  private settle(call: CallInfo, scopes: string[], hold: BudgetHold | undefined, outcome: CallOutcome): void {
    const now = Date.now();
    const priced = call.countTokens ? { usd: 0, family: undefined, priceKnown: true } : this.prices.cost(outcome.usage, outcome.responseModel, call.upstreamModel, call.requestedModel);
    if (hold) this.ledger.settle(hold, scopes, priced.usd, now);
    else if (priced.usd) this.ledger.record(scopes, priced.usd, now);
    this.limiter.settle(scopes, totalTokens(outcome.usage), now);
    if (priced.usd > 0 && priced.family) {
      const prev = this.estimates.get(priced.family);
      this.estimates.set(priced.family, prev === undefined ? priced.usd : prev * 0.8 + priced.usd * 0.2);
    }
    const settled = settledCall(call, outcome, priced.usd, priced.priceKnown);
    this.write(settled, priced.family);
    this.prometheus.observe(settled);
    this.runtime.publishSettled(settled);
    if (this.ledger.size && priced.usd > 0 && this.runtime.budgetsWatched) this.runtime.publishBudgets(this.ledger.statuses(now));
  }

  /** Records a call refused by a budget or rate limit (it cost nothing and never reached the upstream). */
  private reject(call: CallInfo, errorType: string, message: string): void {
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
    this.write(settled, undefined);
    this.prometheus.observe(settled);
    this.runtime.publishSettled(settled);
  }

  private write(c: SettledCall, family: string | undefined): void {
    const now = Date.now();
    // The head's spend counts exactly the records that will be written (a dropped one is a gap, not spend it names).
    const record = callRecord(c, family, this.scrubber, this.securityScrubber);
    if (!this.audit.appendSoon('call', record as unknown as Record<string, unknown>, now)) return;
    if (c.costUsd && this.ledger.size) this.spend.add(scopesOf(c), c.costUsd, now);
    this.usageIndex.add(usageRecordOf(record, new Date(now).toISOString()));
  }

  /** GET /usage: from the in-memory usage index (whole days), or the files read in bounded chunks. */
  usage(q: UsageQuery): Promise<UsageReport> {
    return this.usageIndex.report(q);
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
    this.audit.flush();
  }

  metrics(): Promise<string> {
    return this.prometheus.text();
  }

  budgets(): BudgetStatus[] {
    return this.ledger.statuses();
  }

  health(): Record<string, unknown> {
    const f = this.audit.failure;
    return {
      audit: {
        writable: !f,
        failOpen: this.runtime.config.audit.failOpen,
        ...(f ? { error: f.code } : {}),
        pendingRecords: this.audit.pendingRecords,
        droppedRecords: this.audit.dropped,
        bodies: this.runtime.config.audit.bodies,
        ...(this.started.tamper ? { tamper: { reason: this.started.tamper.reason, message: this.started.tamper.message } } : {}),
      },
      budgets: this.ledger.size,
      rateLimits: this.limiter.size,
    };
  }

  /** Overrides one budget's limit for its current window (or clears the override); recorded in the audit log. */
  overrideBudget(scope: string, period: Period, usd: number | undefined, by?: string): boolean {
    const ok = this.ledger.override(scope, period, usd);
    if (ok) {
      this.audit.append('budget_override', { scope, period, usd: usd ?? null, by });
      this.runtime.publishBudgets(this.ledger.statuses());
    }
    return ok;
  }

  private reconfigure(config: GatewayConfig): void {
    this.prices = new PriceTable(config.prices);
    this.ledger.configure(config.budgets);
    this.limiter.configure(config.rateLimits);
    this.scrubber = this.makeScrubber(config);
    this.spend.configure(config.budgets);
    this.securityScrubber = scrubberFor('redacted', config, this.runtime);
    this.audit.append('config_reload', { source: config.source, budgets: config.budgets.length, rateLimits: config.rateLimits.length, activeProfile: config.activeProfile });
    this.runtime.publishBudgets(this.ledger.statuses());
  }

  private makeScrubber(config: GatewayConfig): Scrubber | undefined {
    return config.audit.bodies === 'none' ? undefined : scrubberFor(config.audit.bodies, config, this.runtime);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of this.subscriptions.reverse()) s.dispose();
    this.security.dispose();
    this.usageIndex.close();
    this.audit.append('stop', { instance: this.runtime.instanceId, callsInFlight: this.runtime.callsInFlight });
    this.audit.close();
  }
}
