import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BudgetConfig } from './config/schema';
import { Emitter, type Disposable, type Event } from './events';
import type { CallInfo, SettledCall } from './gateway/call';
import { emptyUsage, type Usage } from './streams/usage';

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
const DAYS_SHOWN = 14;

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

function emptyTotals(): Totals {
  return { requests: 0, usage: emptyUsage(), costUsd: 0 };
}

function add(t: Totals, c: CallView): void {
  t.requests++;
  t.costUsd += c.costUsd;
  for (const k of Object.keys(t.usage) as Array<keyof Usage>) t.usage[k] += c.usage[k] ?? 0;
}

function bucket(map: Record<string, Totals>, key: string, c: CallView): void {
  add((map[key] ??= emptyTotals()), c);
}

function utcDay(t: number): string {
  return new Date(t).toISOString().slice(0, 10);
}

/** The UTC calendar window of a budget period (Monday-based ISO weeks), as the accounting ledger uses. */
export function periodWindow(period: BudgetView['period'], t: number): { start: number; end: number } {
  const d = new Date(t);
  const dayStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  if (period === 'day') return { start: dayStart, end: dayStart + DAY_MS };
  if (period === 'week') {
    const start = dayStart - ((d.getUTCDay() + 6) % 7) * DAY_MS;
    return { start, end: start + 7 * DAY_MS };
  }
  return { start: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
}

/** True when a call counts against a budget scope (`global`, `key:`, `team:`, `project:`, `profile:`). */
export function inScope(scope: string, c: Pick<CallView, 'keyId' | 'team' | 'project' | 'profile'>): boolean {
  if (scope === 'global') return true;
  const i = scope.indexOf(':');
  const kind = scope.slice(0, i);
  const name = scope.slice(i + 1);
  if (kind === 'key') return c.keyId === name;
  if (kind === 'team') return c.team === name;
  if (kind === 'project') return c.project === name;
  if (kind === 'profile') return c.profile === name;
  return false;
}

/**
 * Today's and this month's usage for the editor, kept from the runtime's call events (or from a remote
 * gateway's event stream in a client window) and seeded from the audit log's daily files. It never polls:
 * `onDidChange` fires when a call starts or settles.
 */
export class UsageSummary implements Disposable {
  private calls: CallView[] = [];
  private inFlight = new Set<string>();
  private budgets: BudgetConfig[] = [];
  private readonly _onDidChange = new Emitter<void>();
  /** A call started or settled, or the budgets changed. */
  readonly onDidChange: Event<void> = this._onDidChange.event;

  constructor(private readonly now: () => number = Date.now) {}

  setBudgets(budgets: BudgetConfig[]): void {
    this.budgets = budgets;
    this._onDidChange.fire();
  }

  /** Loads this month's (and the charted days') call records from the audit log folder, if there is one. */
  seedFromAudit(dir: string): number {
    const now = this.now();
    const from = Math.min(periodWindow('month', now).start, periodWindow('day', now).start - (DAYS_SHOWN - 1) * DAY_MS);
    const firstDate = utcDay(from);
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return 0;
    }
    const seen = new Set(this.calls.map((c) => c.id));
    const loaded: CallView[] = [];
    for (const name of names.filter((n) => /^audit-\d{4}-\d{2}-\d{2}\.jsonl$/.test(n) && n.slice(6, 16) >= firstDate).sort()) {
      let text: string;
      try {
        text = fs.readFileSync(path.join(dir, name), 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n')) {
        if (!line.includes('"type":"call"')) continue;
        try {
          const r = JSON.parse(line) as Record<string, unknown>;
          const view = fromAuditRecord(r);
          if (view && !seen.has(view.id)) loaded.push(view);
        } catch {
          // A torn line: the audit verifier reports it; the meter skips it.
        }
      }
    }
    this.calls = [...loaded, ...this.calls].sort((a, b) => a.t - b.t);
    this.prune();
    if (loaded.length) this._onDidChange.fire();
    return loaded.length;
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
    if (!this.calls.some((c) => c.id === call.id)) this.calls.push(call);
    this.prune();
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
    const start = periodWindow('day', this.now()).start;
    return this.calls.filter((c) => c.t >= start && (!profile || c.profile === profile)).reduce((s, c) => s + c.costUsd, 0);
  }

  budgetViews(): BudgetView[] {
    const now = this.now();
    return this.budgets.map((b) => {
      const w = periodWindow(b.period, now);
      const spent = this.calls.filter((c) => c.t >= w.start && c.t < w.end && inScope(b.scope, c)).reduce((s, c) => s + c.costUsd, 0);
      return { scope: b.scope, period: b.period, usd: b.usd, spentUsd: spent, remainingUsd: Math.max(0, b.usd - spent), fraction: spent / b.usd, resetsAt: new Date(w.end).toISOString() };
    });
  }

  snapshot(): UsageSnapshot {
    const now = this.now();
    const dayStart = periodWindow('day', now).start;
    const monthStart = periodWindow('month', now).start;
    const s: UsageSnapshot = {
      generatedAt: now,
      today: utcDay(now),
      inFlight: this.inFlight.size,
      todayTotals: emptyTotals(),
      monthTotals: emptyTotals(),
      todayByModel: {},
      todayByProfile: {},
      monthByModel: {},
      monthByProject: {},
      days: [],
      budgets: this.budgetViews(),
      recent: this.calls.slice(-RECENT_MAX).reverse(),
    };
    const days = new Map<string, { date: string } & Totals>();
    for (let i = DAYS_SHOWN - 1; i >= 0; i--) {
      const date = utcDay(dayStart - i * DAY_MS);
      days.set(date, { date, ...emptyTotals() });
    }
    for (const c of this.calls) {
      const day = days.get(utcDay(c.t));
      if (day) add(day, c);
      if (c.t >= monthStart) {
        add(s.monthTotals, c);
        bucket(s.monthByModel, c.model, c);
        bucket(s.monthByProject, c.project ?? '(none)', c);
      }
      if (c.t >= dayStart) {
        add(s.todayTotals, c);
        bucket(s.todayByModel, c.model, c);
        bucket(s.todayByProfile, c.profile, c);
      }
    }
    s.days = [...days.values()];
    return s;
  }

  /** Keeps what the month, the charted days and the recent table need. */
  private prune(): void {
    const now = this.now();
    const from = Math.min(periodWindow('month', now).start, periodWindow('week', now).start, periodWindow('day', now).start - (DAYS_SHOWN - 1) * DAY_MS);
    if (this.calls.length && this.calls[0].t < from) this.calls = this.calls.filter((c) => c.t >= from);
  }

  dispose(): void {
    this._onDidChange.dispose();
  }
}

/** Reads a `call` record of the audit log (see accounting/records.ts) into a view. */
function fromAuditRecord(r: Record<string, unknown>): CallView | undefined {
  if (r.type !== 'call' || typeof r.id !== 'string') return undefined;
  const t = typeof r.t === 'string' ? Date.parse(r.t) : typeof r.t === 'number' ? r.t : NaN;
  if (!Number.isFinite(t)) return undefined;
  const usage = { ...emptyUsage(), ...(r.usage as Partial<Usage> | undefined) };
  return {
    id: r.id,
    t,
    keyId: String(r.key ?? ''),
    team: r.team as string | undefined,
    project: r.project as string | undefined,
    profile: String(r.profile ?? ''),
    provider: String(r.provider ?? ''),
    model: String(r.responseModel ?? r.upstreamModel ?? r.requestedModel ?? 'unknown'),
    status: String(r.status ?? ''),
    httpStatus: Number(r.httpStatus ?? 0),
    latencyMs: Number(r.latencyMs ?? 0),
    ttfbMs: r.ttfbMs === undefined ? undefined : Number(r.ttfbMs),
    usage,
    costUsd: Number(r.costUsd ?? 0),
    countTokens: r.countTokens === true,
  };
}
