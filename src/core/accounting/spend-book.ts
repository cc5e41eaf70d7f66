import type { BudgetConfig } from '../config/schema';
import type { ScopeDaySpend } from './audit-files';
import { utcDate, windowAt, type Period } from './windows';

const DAY_MS = 86_400_000;

/** Spend the head promised that the log no longer holds, for one scope and UTC day. */
export interface MissingSpend {
  scope: string;
  day: string;
  usd: number;
}

/**
 * Cost of the calls written to the audit log, per budgeted scope and UTC day, over the days the current budget
 * windows cover. `HEAD.json` carries it, so a start that finds records missing knows what they cost; summed per day,
 * it gives every budget window (day, week or month) of its scope.
 */
export class SpendBook {
  private scopes = new Set<string>();
  private periods: Period[] = [];
  private fromDay = '';
  private readonly book = new Map<string, Map<string, number>>();
  private day = '';
  private dayStart = 0;

  constructor(budgets: readonly BudgetConfig[], now = Date.now()) {
    this.configure(budgets, now);
  }

  /** The budgets changed (config reload): spend of scopes still budgeted is kept, the rest dropped. */
  configure(budgets: readonly BudgetConfig[], now = Date.now()): void {
    this.scopes = new Set(budgets.map((b) => b.scope));
    this.periods = [...new Set(budgets.map((b) => b.period))];
    this.fromDay = '9999-12-31';
    for (const scope of [...this.book.keys()]) if (!this.scopes.has(scope)) this.book.delete(scope);
    this.roll(now);
  }

  /** Counts a call's cost in each of its scopes that has a budget. */
  add(scopes: readonly string[], usd: number, at: number): void {
    if (!usd) return;
    if (at < this.dayStart || at >= this.dayStart + DAY_MS) {
      this.day = utcDate(at);
      this.dayStart = Date.parse(`${this.day}T00:00:00.000Z`);
    }
    if (this.day < this.fromDay) return;
    for (const scope of scopes) if (this.scopes.has(scope)) this.addOne(scope, this.day, usd);
  }

  /** Counts spend restored to one scope on one day. */
  addOne(scope: string, day: string, usd: number): void {
    if (!this.scopes.has(scope) || day < this.fromDay || !usd) return;
    let days = this.book.get(scope);
    if (!days) this.book.set(scope, (days = new Map()));
    days.set(day, (days.get(day) ?? 0) + usd);
  }

  /** What the head records (days before the oldest current budget window are left out). */
  toJSON(now = Date.now()): ScopeDaySpend {
    this.roll(now);
    const out: ScopeDaySpend = {};
    for (const [scope, days] of this.book) {
      const d: Record<string, number> = {};
      for (const [day, usd] of days) d[day] = usd;
      out[scope] = d;
    }
    return out;
  }

  /**
   * Where a head's spend exceeds this book's (the spend of the records found up to the head's seq): the cost of the
   * records that were removed, per scope and day. Only scopes budgeted now and days budgets still look at count.
   */
  missingFrom(head: ScopeDaySpend | undefined): MissingSpend[] {
    const out: MissingSpend[] = [];
    if (!head || typeof head !== 'object') return out;
    for (const scope of Object.keys(head).sort()) {
      if (!this.scopes.has(scope)) continue;
      const days = head[scope];
      if (!days || typeof days !== 'object') continue;
      for (const day of Object.keys(days).sort()) {
        const promised = days[day];
        if (typeof promised !== 'number' || !Number.isFinite(promised) || day < this.fromDay || !/^\d{4}-\d{2}-\d{2}$/.test(day)) continue;
        const have = this.book.get(scope)?.get(day) ?? 0;
        // Both sums add the same costs in the same order, so they agree exactly unless records are missing.
        if (promised - have > 1e-9 + Math.abs(promised) * 1e-12) out.push({ scope, day, usd: promised - have });
      }
    }
    return out;
  }

  /** Windows move on while the gateway runs: keep only the days from the oldest current window of the budgets. */
  private roll(now: number): void {
    if (this.periods.length) this.fromDay = utcDate(Math.min(...this.periods.map((p) => windowAt(p, now).start)));
    for (const days of this.book.values()) for (const day of [...days.keys()]) if (day < this.fromDay) days.delete(day);
  }
}
