import { scopesOf } from './accounting/budgets';
import { USAGE_DAYS_KEPT, UsageIndex } from './accounting/usage-index';
import type { UsageRecord } from './accounting/usage-records';
import { UsageSum, type UsageGroupBy, type UsageTotals } from './accounting/usage-table';
import { utcDate, windowAt } from './accounting/windows';
import type { BudgetConfig } from './config/schema';
import { Emitter, type Disposable, type Event } from './events';
import type { CallInfo, SettledCall } from './gateway/call';
import type { Usage } from './streams/usage';

/** One settled model call as the editor shows it (no body, no key secret). */
export interface CallView {
  id: string;
  /** Start time, epoch ms. */
  t: number;
  keyId: string;
  team?: string;
  project?: string;
  profile: string;
  provider: string;
  model: string;
  status: string;
  httpStatus: number;
  latencyMs: number;
  ttfbMs?: number;
  usage: Usage;
  costUsd: number;
  countTokens: boolean;
}

/** Requests, tokens by kind and cost, summed. */
export interface Totals {
  requests: number;
  usage: Usage;
  costUsd: number;
}

/** Where one configured budget stands in its current UTC window. */
export interface BudgetView {
  scope: string;
  period: 'day' | 'week' | 'month';
  usd: number;
  spentUsd: number;
  remainingUsd: number;
  /** 0..1+ */
  fraction: number;
  resetsAt: string;
}

/** Everything the status bar, the Switch Provider picker and the dashboard read. */
export interface UsageSnapshot {
  generatedAt: number;
  today: string;
  inFlight: number;
  todayTotals: Totals;
  monthTotals: Totals;
  todayByModel: Record<string, Totals>;
  todayByProfile: Record<string, Totals>;
  monthByModel: Record<string, Totals>;
  monthByProject: Record<string, Totals>;
  /** The last 14 UTC days, oldest first. */
  days: Array<{ date: string } & Totals>;
  budgets: BudgetView[];
  /** Newest first. */
  recent: CallView[];
}

const DAY_MS = 86_400_000;
const RECENT_MAX = 100;

/** Turns a settled call into its editor view. */
export function toCallView(c: SettledCall): CallView {
  return {
    id: c.requestId,
    t: c.startedAt,
    keyId: c.key.id,
    team: c.key.team,
    project: c.project,
    profile: c.profile,
    provider: c.provider,
    model: c.responseModel ?? c.upstreamModel ?? c.requestedModel ?? 'unknown',
    status: c.status,
    httpStatus: c.httpStatus,
    latencyMs: Math.round(c.latencyMs),
    ttfbMs: c.ttfbMs === undefined ? undefined : Math.round(c.ttfbMs),
    usage: c.usage,
    costUsd: c.costUsd,
    countTokens: c.countTokens,
  };
}

/** The editor's totals: every call counts as a request, refused ones too. */
function toTotals(t: UsageTotals): Totals {
  return { requests: t.requests + t.rejected, usage: { input: t.input, output: t.output, cacheWrite5m: t.cacheWrite5m, cacheWrite1h: t.cacheWrite1h, cacheRead: t.cacheRead }, costUsd: t.costUsd };
}

/** A call view as the usage index counts it: at the time it settled, as its audit record is. */
function usageRecordOfView(c: CallView): UsageRecord {
  const u = c.usage;
  return {
    id: c.id,
    t: new Date(c.t + c.latencyMs).toISOString(),
    key: c.keyId,
    team: c.team,
    project: c.project,
    profile: c.profile,
    model: c.model,
    status: c.status,
    input: u.input ?? 0,
    output: u.output ?? 0,
    cacheWrite5m: u.cacheWrite5m ?? 0,
    cacheWrite1h: u.cacheWrite1h ?? 0,
    cacheRead: u.cacheRead ?? 0,
    costUsd: c.costUsd,
    priceKnown: true,
  };
}

/**
 * Today's and this month's usage for the editor, kept from the runtime's call events (or from a remote
 * gateway's event stream in a client window) and seeded from the audit log's daily files. The figures come from
 * the same usage index as GET /usage (UsageIndex: by day x model x key x team x project x profile), so the meter,
 * `usage` and the budgets agree; a call counts on the UTC day it settled. It never polls: `onDidChange` fires when a
 * call starts or settles, or the seed has read the files.
 */
export class UsageSummary implements Disposable {
  private readonly index: UsageIndex;
  /** The newest calls, oldest first. */
  private recent: CallView[] = [];
  private inFlight = new Set<string>();
  private budgets: BudgetConfig[] = [];
  private readonly _onDidChange = new Emitter<void>();
  /** A call started or settled, or the budgets changed. */
  readonly onDidChange: Event<void> = this._onDidChange.event;

  constructor(private readonly now: () => number = Date.now) {
    this.index = new UsageIndex(undefined, { now });
  }

  setBudgets(budgets: BudgetConfig[]): void {
    this.budgets = budgets;
    this._onDidChange.fire();
  }

  /**
   * Reads this month's (and the charted days') call records from the audit log folder, if there is one, in bounded
   * chunks that never block the extension host for long; resolves with the number read (never rejects).
   */
  async seedFromAudit(dir: string): Promise<number> {
    const tail: string[] = [];
    const loaded = await this.index.seed(dir, (text) => {
      tail.push(text);
      if (tail.length > RECENT_MAX * 2) tail.splice(0, RECENT_MAX);
    });
    const known = new Set(this.recent.map((c) => c.id));
    const views = tail.map(fromAuditLine).filter((v): v is CallView => v !== undefined && !known.has(v.id));
    this.recent = [...views, ...this.recent].slice(-RECENT_MAX);
    if (loaded) this._onDidChange.fire();
    return loaded;
  }

  /** Subscribes to a runtime's (or an event stream's) call events. */
  follow(source: { onDidStartCall: Event<CallInfo>; onDidSettleCall: Event<SettledCall> }): Disposable {
    const a = source.onDidStartCall((c) => this.started(c.requestId));
    const b = source.onDidSettleCall((c) => this.settled(toCallView(c)));
    return { dispose: () => (a.dispose(), b.dispose()) };
  }

  started(id: string): void {
    this.inFlight.add(id);
    this._onDidChange.fire();
  }

  settled(call: CallView): void {
    this.inFlight.delete(call.id);
    if (!this.recent.some((c) => c.id === call.id) && this.index.add(usageRecordOfView(call))) {
      this.recent.push(call);
      if (this.recent.length > RECENT_MAX) this.recent.shift();
    }
    this._onDidChange.fire();
  }

  /** Forgets calls in flight (their gateway went away; the new one's stream reports what settles). */
  clearInFlight(): void {
    if (!this.inFlight.size) return;
    this.inFlight.clear();
    this._onDidChange.fire();
  }

  get callsInFlight(): number {
    return this.inFlight.size;
  }

  /** Cost of today's calls on a profile. */
  todaySpend(profile?: string): number {
    const today = utcDate(this.now());
    return this.sum(today, today, profile ? (s) => s.includes(`profile:${profile}`) : undefined).result.totals.costUsd;
  }

  budgetViews(): BudgetView[] {
    const now = this.now();
    return this.budgets.map((b) => {
      const w = windowAt(b.period, now);
      const spent = this.sum(utcDate(w.start), utcDate(w.end - 1), (scopes) => scopes.includes(b.scope)).result.totals.costUsd;
      return { scope: b.scope, period: b.period, usd: b.usd, spentUsd: spent, remainingUsd: Math.max(0, b.usd - spent), fraction: spent / b.usd, resetsAt: new Date(w.end).toISOString() };
    });
  }

  snapshot(): UsageSnapshot {
    const now = this.now();
    const today = utcDate(now);
    const month = utcDate(windowAt('month', now).start);
    const grouped = (from: string, by: UsageGroupBy) => {
      const groups: Record<string, Totals> = {};
      for (const g of this.sum(from, today, undefined, by).result.groups ?? []) groups[by === 'model' && g.group === '(none)' ? 'unknown' : g.group] = toTotals(g);
      return groups;
    };
    const days: UsageSnapshot['days'] = [];
    for (let i = USAGE_DAYS_KEPT - 1; i >= 0; i--) {
      const date = utcDate(windowAt('day', now).start - i * DAY_MS);
      days.push({ date, ...toTotals(this.sum(date, date).result.totals) });
    }
    return {
      generatedAt: now,
      today,
      inFlight: this.inFlight.size,
      todayTotals: toTotals(this.sum(today, today).result.totals),
      monthTotals: toTotals(this.sum(month, today).result.totals),
      todayByModel: grouped(today, 'model'),
      todayByProfile: grouped(today, 'profile'),
      monthByModel: grouped(month, 'model'),
      monthByProject: grouped(month, 'project'),
      days,
      budgets: this.budgetViews(),
      recent: this.recent.slice().reverse(),
    };
  }

  /** Usage of the UTC days `from` to `to` (inclusive), of the buckets whose scopes `inScope` accepts. */
  private sum(from: string, to: string, inScope?: (scopes: string[]) => boolean, by?: UsageGroupBy): UsageSum {
    const sum = new UsageSum(by);
    for (const date of this.index.table.dates()) {
      if (date < from || date > to) continue;
      for (const b of this.index.table.day(date)!.buckets.values()) {
        if (inScope && !inScope(scopesOf({ key: { id: b.key ?? '', team: b.team }, project: b.project, profile: b.profile ?? '' }))) continue;
        sum.add(b);
      }
    }
    return sum;
  }

  dispose(): void {
    this._onDidChange.dispose();
  }
}

/** Reads a `call` line of the audit log (see accounting/records.ts) into a view. */
function fromAuditLine(line: string): CallView | undefined {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (r.type !== 'call' || typeof r.id !== 'string') return undefined;
  const t = typeof r.t === 'string' ? Date.parse(r.t) : NaN;
  if (!Number.isFinite(t)) return undefined;
  const latencyMs = Number(r.latencyMs ?? 0);
  const usage = { input: 0, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, ...(r.usage as Partial<Usage> | undefined) };
  return {
    id: r.id,
    // The record's time is when the call settled; a view's is when it started.
    t: Math.round(t - latencyMs),
    keyId: String(r.key ?? ''),
    team: r.team as string | undefined,
    project: r.project as string | undefined,
    profile: String(r.profile ?? ''),
    provider: String(r.provider ?? ''),
    model: String(r.responseModel ?? r.upstreamModel ?? r.requestedModel ?? 'unknown'),
    status: String(r.status ?? ''),
    httpStatus: Number(r.httpStatus ?? 0),
    latencyMs: Math.round(latencyMs),
    ttfbMs: r.ttfbMs === undefined ? undefined : Math.round(Number(r.ttfbMs)),
    usage,
    costUsd: Number(r.costUsd ?? 0),
    countTokens: r.countTokens === true,
  };
}
