import type { BudgetConfig } from '../config/schema';
import { windowAt, type Period, type Window } from './windows';

/** Where one budget stands in its current window. */
export interface BudgetStatus {
  scope: string;
  period: Period;
  usd: number;
  /** Cost of settled calls in the current window. */
  spentUsd: number;
  /** Reservations of calls still in flight: the most each can cost (see Accounting's estimate), released when it settles. */
  reservedUsd: number;
  /**
   * The limit less settled spend (never below 0): what is left to spend. Reservations are not taken off (they are upper
   * bounds, mostly released), so it does not jump by a call's `max_tokens` while that call runs; a call is admitted
   * while spent + reserved is below the limit.
   */
  remainingUsd: number;
  /** ISO time the window resets. */
  resetsAt: string;
  /** True when the limit comes from a budget override rather than config. */
  overridden?: boolean;
}

/** A refusal: the first budget without room. */
export interface BudgetRefusal {
  budget: BudgetStatus;
  retryAfterMs: number;
}

/** The budgets a call was admitted under, holding its reservation until it settles. */
export interface BudgetHold {
  entries: LedgerEntry[];
  reservedUsd: number;
}

interface LedgerEntry {
  scope: string;
  period: Period;
  usd: number;
  /** The limit the config gives (what `usd` returns to when an override ends). */
  configuredUsd: number;
  overridden: boolean;
  window: Window;
  spent: number;
  reserved: number;
}

/**
 * Spend per budget in its UTC window, with reservations for calls in flight. A call is admitted while
 * settled spend plus reservations is below the limit, however large its own reservation; it then holds that
 * reservation (the most it can cost) until it settles with the real cost. So while reservations bound the real costs,
 * spend passes a budget by at most one call: the last one admitted.
 */
export class BudgetLedger {
  private entries: LedgerEntry[] = [];
  private byScope = new Map<string, LedgerEntry[]>();
  /** Overrides by `scope|period`: a limit for the budget's window that ends at `windowEnd`. */
  private overrides = new Map<string, { usd: number; windowEnd: number }>();

  constructor(budgets: BudgetConfig[], now = Date.now()) {
    this.configure(budgets, now);
  }

  /** Replaces the configured budgets (config reload), keeping spend already counted for the same scope and period. */
  configure(budgets: BudgetConfig[], now = Date.now()): void {
    const old = new Map(this.entries.map((e) => [`${e.scope}|${e.period}`, e]));
    this.entries = budgets.map((b) => {
      const id = `${b.scope}|${b.period}`;
      const prev = old.get(id);
      const window = prev?.window ?? windowAt(b.period, now);
      let override = this.overrides.get(id);
      if (override && override.windowEnd !== window.end) {
        this.overrides.delete(id);
        override = undefined;
      }
      return {
        scope: b.scope,
        period: b.period,
        usd: override?.usd ?? b.usd,
        configuredUsd: b.usd,
        overridden: override !== undefined,
        window,
        spent: prev?.spent ?? 0,
        reserved: prev?.reserved ?? 0,
      };
    });
    this.index();
  }

  /**
   * Sets (or with `usd` undefined, clears) the limit of one budget for its window at `at` (a day budget's override
   * holds until midnight UTC, then the configured limit applies again). Config reloads keep it. Returns false
   * when no such budget is configured (nothing is kept). An override of a window already over (replayed from the
   * audit log at start) changes nothing.
   */
  override(scope: string, period: Period, usd: number | undefined, at = Date.now()): boolean {
    const e = this.entries.find((x) => x.scope === scope && x.period === period);
    if (!e) return false;
    this.roll(e, at);
    const windowEnd = windowAt(period, at).end;
    if (windowEnd <= e.window.start) return true;
    const id = `${scope}|${period}`;
    if (usd === undefined) this.overrides.delete(id);
    else this.overrides.set(id, { usd, windowEnd });
    e.usd = usd ?? e.configuredUsd;
    e.overridden = usd !== undefined;
    return true;
  }

  get size(): number {
    return this.entries.length;
  }

  /** Admits a call in `scopes` with a reservation of `estimateUsd`, or names the budget without room. */
  reserve(scopes: readonly string[], estimateUsd: number, now: number): BudgetHold | BudgetRefusal {
    const held: LedgerEntry[] = [];
    for (const scope of scopes) {
      const list = this.byScope.get(scope);
      if (!list) continue;
      for (const e of list) {
        this.roll(e, now);
        if (e.spent + e.reserved >= e.usd) return { budget: this.status(e), retryAfterMs: e.window.end - now };
        held.push(e);
      }
    }
    for (const e of held) e.reserved += estimateUsd;
    return { entries: held, reservedUsd: estimateUsd };
  }

  /** Releases a hold and counts the real cost (at `at`) in every budget of the call's scopes. */
  settle(hold: BudgetHold, scopes: readonly string[], costUsd: number, at: number): void {
    for (const e of hold.entries) e.reserved = Math.max(0, e.reserved - hold.reservedUsd);
    this.record(scopes, costUsd, at);
  }

  /** Counts a cost without a reservation (rebuilding from the audit log). */
  record(scopes: readonly string[], costUsd: number, at: number): void {
    if (costUsd === 0) return;
    for (const scope of scopes) {
      const list = this.byScope.get(scope);
      if (!list) continue;
      for (const e of list) {
        this.roll(e, at);
        if (at >= e.window.start && at < e.window.end) e.spent += costUsd;
      }
    }
  }

  /** Every budget's state, rolled to `now`. */
  statuses(now = Date.now()): BudgetStatus[] {
    return this.entries.map((e) => {
      this.roll(e, now);
      return this.status(e);
    });
  }

  /** True when some budget's window ended since it was last looked at. */
  private roll(e: LedgerEntry, now: number): void {
    if (now < e.window.end) return;
    e.window = windowAt(e.period, now);
    // Reservations of calls in flight carry over; their cost lands in the window they settle in.
    e.spent = 0;
    if (e.overridden) {
      // An override was for the window that just ended.
      this.overrides.delete(`${e.scope}|${e.period}`);
      e.usd = e.configuredUsd;
      e.overridden = false;
    }
  }

  private status(e: LedgerEntry): BudgetStatus {
    return {
      scope: e.scope,
      period: e.period,
      usd: e.usd,
      spentUsd: e.spent,
      reservedUsd: e.reserved,
      remainingUsd: Math.max(0, e.usd - e.spent),
      resetsAt: new Date(e.window.end).toISOString(),
      ...(e.overridden ? { overridden: true } : {}),
    };
  }

  private index(): void {
    this.byScope = new Map();
    for (const e of this.entries) {
      const list = this.byScope.get(e.scope) ?? [];
      list.push(e);
      this.byScope.set(e.scope, list);
    }
  }
}

export function isRefusal(r: BudgetHold | BudgetRefusal): r is BudgetRefusal {
  return (r as BudgetRefusal).budget !== undefined;
}

/** Formats USD for messages: cents, or more digits for amounts under a cent. */
export function formatUsd(usd: number): string {
  if (usd === 0 || Math.abs(usd) >= 0.01) return usd.toFixed(2);
  return usd.toPrecision(2).replace(/0+$/, '');
}

/** The scopes a call belongs to, in the order budgets and limits are checked. */
export function scopesOf(c: { key: { id: string; team?: string }; project?: string; profile: string }): string[] {
  const scopes = ['global', `key:${c.key.id}`];
  if (c.key.team) scopes.push(`team:${c.key.team}`);
  if (c.project) scopes.push(`project:${c.project}`);
  scopes.push(`profile:${c.profile}`);
  return scopes;
}
