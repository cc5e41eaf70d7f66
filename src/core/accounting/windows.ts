/** Budget periods: UTC calendar windows. */
export type Period = 'day' | 'week' | 'month';

/** A half-open time window [start, end) in epoch milliseconds. */
export interface Window {
  start: number;
  end: number;
}

const DAY_MS = 86_400_000;

/**
 * The UTC calendar window containing `t`: the day from 00:00Z, the ISO week from Monday 00:00Z, the month
 * from the 1st 00:00Z. Calendar windows (not rolling ones) so that "today's spend" means the same thing in
 * the status bar, `usage --by day` and the budget.
 */
export function windowAt(period: Period, t: number): Window {
  const d = new Date(t);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const dayStart = Date.UTC(y, m, d.getUTCDate());
  switch (period) {
    case 'day':
      return { start: dayStart, end: dayStart + DAY_MS };
    case 'week': {
      const sinceMonday = (d.getUTCDay() + 6) % 7;
      const start = dayStart - sinceMonday * DAY_MS;
      return { start, end: start + 7 * DAY_MS };
    }
    case 'month':
      return { start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1) };
  }
}

/** Whole seconds from `now` until `end`, at least 1 (a `retry-after` value). */
export function secondsUntil(end: number, now: number): number {
  return Math.max(1, Math.ceil((end - now) / 1000));
}

/** The UTC date (YYYY-MM-DD) of a time, as used in daily audit file names. */
export function utcDate(t: number): string {
  return new Date(t).toISOString().slice(0, 10);
}
