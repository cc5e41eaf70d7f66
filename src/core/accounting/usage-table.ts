import type { Usage } from '../streams/usage';
import type { UsageRecord } from './usage-records';

/** How `usage` groups its totals. */
export const USAGE_GROUPS = ['day', 'model', 'key', 'team', 'project', 'profile'] as const;
export type UsageGroupBy = (typeof USAGE_GROUPS)[number];

/** Totals over a set of call records (their token counts summed). */
export interface UsageTotals extends Usage {
  /** Calls that reached an upstream (refused calls are counted in `rejected`). */
  requests: number;
  rejected: number;
  errors: number;
  /** The sum of the records' costs, each taken to the picodollar, so it does not depend on the order of the records. */
  costUsd: number;
  /** Calls priced at the fallback family because their model is not in the price table. */
  unpriced: number;
}

/** Counts as summed: the cost in picodollars (an integer, so sums are exact in any order). */
interface Counts extends Omit<UsageTotals, 'costUsd'> {
  costPico: bigint;
}

/** One group of calls: the same UTC day, model, key, team, project and profile. */
export interface UsageBucket extends Counts {
  day: string;
  model?: string;
  key?: string;
  team?: string;
  project?: string;
  profile?: string;
}

/** The buckets of one UTC day, and the earliest and latest record time in them. */
export interface UsageDay {
  minT: string;
  maxT: string;
  buckets: Map<string, UsageBucket>;
}

function zero(): Counts {
  return { requests: 0, rejected: 0, errors: 0, input: 0, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, costPico: 0n, unpriced: 0 };
}

function pico(usd: number): bigint {
  return usd ? BigInt(Math.round(usd * 1e12)) : 0n;
}

function countRecord(c: Counts, r: UsageRecord): void {
  if (r.status === 'rejected') {
    c.rejected++;
    return;
  }
  c.requests++;
  if (r.status !== 'ok') c.errors++;
  c.input += r.input;
  c.output += r.output;
  c.cacheWrite5m += r.cacheWrite5m;
  c.cacheWrite1h += r.cacheWrite1h;
  c.cacheRead += r.cacheRead;
  c.costPico += pico(r.costUsd);
  if (!r.priceKnown) c.unpriced++;
}

function merge(into: Counts, c: Counts): void {
  into.requests += c.requests;
  into.rejected += c.rejected;
  into.errors += c.errors;
  into.input += c.input;
  into.output += c.output;
  into.cacheWrite5m += c.cacheWrite5m;
  into.cacheWrite1h += c.cacheWrite1h;
  into.cacheRead += c.cacheRead;
  into.costPico += c.costPico;
  into.unpriced += c.unpriced;
}

/** Counts as reported. */
export function totalsOf(c: Counts): UsageTotals {
  const { costPico, ...rest } = c;
  return { requests: rest.requests, rejected: rest.rejected, errors: rest.errors, input: rest.input, output: rest.output, cacheWrite5m: rest.cacheWrite5m, cacheWrite1h: rest.cacheWrite1h, cacheRead: rest.cacheRead, costUsd: Number(costPico) / 1e12, unpriced: rest.unpriced };
}

/** The name of a bucket's group (`(none)` when the records did not say). */
export function groupOf(b: UsageBucket, by: UsageGroupBy): string {
  return (by === 'day' ? b.day : b[by]) ?? '(none)';
}

const NONE = '\u0001';

/**
 * Usage of call records summed by UTC day x model x key x team x project x profile: what every usage figure (`GET
 * /usage`, `usage`, the editor's meter and budget bars) is read from. A bucket answers any of those for whole days;
 * adding a record costs a map lookup.
 */
export class UsageTable {
  private readonly byDay = new Map<string, UsageDay>();

  add(r: UsageRecord): UsageBucket {
    const date = r.t.slice(0, 10);
    let day = this.byDay.get(date);
    if (!day) this.byDay.set(date, (day = { minT: r.t, maxT: r.t, buckets: new Map() }));
    else if (r.t < day.minT) day.minT = r.t;
    else if (r.t > day.maxT) day.maxT = r.t;
    const id = `${r.model ?? NONE}\u0000${r.key ?? NONE}\u0000${r.team ?? NONE}\u0000${r.project ?? NONE}\u0000${r.profile ?? NONE}`;
    let b = day.buckets.get(id);
    if (!b) day.buckets.set(id, (b = { day: date, model: r.model, key: r.key, team: r.team, project: r.project, profile: r.profile, ...zero() }));
    countRecord(b, r);
    return b;
  }

  day(date: string): UsageDay | undefined {
    return this.byDay.get(date);
  }

  /** The dates held, in no particular order. */
  dates(): IterableIterator<string> {
    return this.byDay.keys();
  }

  /** Forgets the days before `date`. */
  dropBefore(date: string): void {
    for (const d of [...this.byDay.keys()]) if (d < date) this.byDay.delete(d);
  }

  clear(): void {
    this.byDay.clear();
  }
}

/** Totals (and groups) summed from buckets; exact, so the order buckets come in does not matter. */
export class UsageSum {
  private readonly totals = zero();
  private readonly groups = new Map<string, Counts>();

  constructor(readonly by?: UsageGroupBy) {}

  add(b: UsageBucket): void {
    merge(this.totals, b);
    if (!this.by) return;
    const g = groupOf(b, this.by);
    let c = this.groups.get(g);
    if (!c) this.groups.set(g, (c = zero()));
    merge(c, b);
  }

  get result(): { totals: UsageTotals; groups?: Array<{ group: string } & UsageTotals> } {
    const totals = totalsOf(this.totals);
    if (!this.by) return { totals };
    const groups = [...this.groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([group, c]) => ({ group, ...totalsOf(c) }));
    return { totals, groups };
  }
}
