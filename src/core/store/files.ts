import { AuditLog } from '../accounting/audit-log';
import { BudgetLedger, formatUsd } from '../accounting/budgets';
import { RateLimiter } from '../accounting/rate-limits';
import { rebuildLedger } from '../accounting/rebuild';
import { SpendBook, type MissingSpend } from '../accounting/spend-book';
import { UsageIndex } from '../accounting/usage-index';
import { usageRecordOf } from '../accounting/usage-records';
import type { UsageQuery, UsageReport } from '../accounting/usage-report';
import type { GatewayConfig } from '../config/validate';
import { Errors } from '../errors';
import type { CallRecord } from '../accounting/records';
import type { GatewayStore } from './store';

/** How the file store met the log at start. */
export interface AccountingStart {
  records: number;
  ms: number;
  /** Set when the log was found short of its head (tampering): what is missing, said in a sentence. */
  tamper?: { reason: string; message: string; restored: MissingSpend[] };
}

/**
 * The embedded store: budgets and rate limits in memory, rebuilt from the hash-chained audit log under
 * `audit.dir` at start, and that log. Everything answers synchronously: the request path never waits on it.
 */
export class FileStore implements GatewayStore {
  readonly kind = 'files';
  readonly budgets: BudgetLedger;
  readonly rates: RateLimiter;
  readonly audit: AuditLog;
  readonly usageIndex: UsageIndex;
  readonly started: AccountingStart;
  /** Spend written to the log per budgeted scope and day: what HEAD.json records. */
  private readonly spend: SpendBook;
  private closed = false;

  constructor(
    private config: GatewayConfig,
    info: { instanceId: string; version: string },
  ) {
    const now = Date.now();
    this.budgets = new BudgetLedger(config.budgets, now);
    this.rates = new RateLimiter(config.rateLimits);
    this.audit = new AuditLog(config.audit.dir, info.instanceId);
    // Usage by day x model x key x team x project x profile, read once from the files without blocking, then kept as calls settle.
    this.usageIndex = new UsageIndex(config.audit.dir, { flush: () => this.audit.flush() });
    void this.usageIndex.seed();
    this.spend = new SpendBook(config.budgets, now);
    this.audit.headSpend = () => (this.budgets.size ? this.spend.toJSON() : undefined);
    const t0 = performance.now();
    const r = this.audit.recovery;
    const upToHead = r.head?.spend ? new SpendBook(config.budgets, now) : undefined;
    const rebuilt = this.audit.failure
      ? { records: 0 }
      : rebuildLedger(config.audit.dir, this.budgets, config.budgets, now, { all: this.spend, upToHead, headSeq: r.head?.seq });
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
    this.audit.append('start', { instance: info.instanceId, version: info.version, pid: process.pid, rebuiltRecords: rebuilt.records });
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
      this.budgets.record([m.scope], m.usd, Date.parse(`${m.day}T00:00:00.000Z`));
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

  get failOpen(): boolean {
    return this.config.audit.failOpen;
  }

  refusal(countTokens: boolean): Error | undefined {
    if (!this.audit.failure || countTokens || this.audit.probe()) return undefined;
    return new Errors.AuditUnavailable(
      `The gateway cannot write its audit log (${this.audit.failure?.code}), so it refuses model calls. Fix the folder's permissions or space, or set "audit.failOpen": true to serve without an audit trail.`,
    );
  }

  writeCall(record: Record<string, unknown>, scopes: readonly string[], costUsd: number, now: number): void {
    // The head's spend counts exactly the records that will be written (a dropped one is a gap, not spend it names).
    if (!this.audit.appendSoon('call', record, now)) return;
    if (costUsd && this.budgets.size) this.spend.add(scopes as string[], costUsd, now);
    this.usageIndex.add(usageRecordOf(record as unknown as CallRecord, new Date(now).toISOString()));
  }

  reconfigure(config: GatewayConfig): void {
    this.config = config;
    this.budgets.configure(config.budgets);
    this.rates.configure(config.rateLimits);
    this.spend.configure(config.budgets);
  }

  usage(q: UsageQuery): Promise<UsageReport> {
    return this.usageIndex.report(q);
  }

  health(): Record<string, unknown> {
    const f = this.audit.failure;
    return {
      // No path: /health answers without a key and names nothing of the machine.
      store: { kind: 'files' },
      audit: {
        writable: !f,
        failOpen: this.config.audit.failOpen,
        ...(f ? { error: f.code } : {}),
        pendingRecords: this.audit.pendingRecords,
        droppedRecords: this.audit.dropped,
        bodies: this.config.audit.bodies,
        ...(this.started.tamper ? { tamper: { reason: this.started.tamper.reason, message: this.started.tamper.message } } : {}),
      },
      budgets: this.budgets.size,
      rateLimits: this.rates.size,
    };
  }

  close(stop: Record<string, unknown>): Promise<void> {
    this.dispose(stop);
    return Promise.resolve();
  }

  dispose(stop?: Record<string, unknown>): void {
    if (this.closed) return;
    this.closed = true;
    this.usageIndex.close();
    if (stop) this.audit.append('stop', stop);
    this.audit.close();
  }
}
