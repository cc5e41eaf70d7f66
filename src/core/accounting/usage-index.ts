import { inRange, reportOf, scanUsage, sumTable, usageRange, type UsageQuery, type UsageReport } from './usage-report';
import type { UsageRecord } from './usage-records';
import { UsageSum, UsageTable, type UsageDay } from './usage-table';
import { utcDate, windowAt } from './windows';

const DAY_MS = 86_400_000;

/** UTC days the index always holds, today included (the editor charts them; a week's budget needs 7). */
export const USAGE_DAYS_KEPT = 14;

/** The first UTC date the index holds at `now`: the start of the month, or 13 days back when that is earlier. */
export function usageKeptFrom(now: number): string {
  return utcDate(Math.min(windowAt('month', now).start, windowAt('day', now).start - (USAGE_DAYS_KEPT - 1) * DAY_MS));
}

/** Calls whose events may still be on their way when the seed reads their records (a few seconds of heavy traffic). */
const SEEDED_IDS_KEPT = 1000;

/** Past every date: what the index holds when it could not read the log (every query then reads the files). */
const NOTHING = '9999-12-31';

export interface UsageIndexOptions {
  /** Writes the audit records still queued, before a query reads a file. */
  flush?: () => void;
  now?: () => number;
}

/**
 * Usage of the calls in the audit log, kept in memory by day x model x key x team x project x profile (a UsageTable)
 * for this month and the last 14 days: seeded once from the files with non-blocking reads in bounded chunks, then
 * kept up to date as calls settle. A query over whole days it holds is answered from memory; a day cut by `since` or
 * `until`, or older than what it holds, is read from its file (asynchronously, in bounded chunks). Either way the
 * answer is the one `usageReport` reads from the files, to the picodollar, and reading it never blocks the event loop
 * for longer than one chunk.
 */
export class UsageIndex {
  readonly table = new UsageTable();
  private from: string;
  private seeding?: Promise<number>;
  /** Ids of calls added while the seed reads the files (their records may be in what it reads: counted once). */
  private liveIds?: Set<string>;
  /**
   * Ids of the last records the seed read (at most SEEDED_IDS_KEPT): a client of another gateway may see such a call's
   * event after the seed read its record (counted once). Cleared when a day begins.
   */
  private seededIds = new Set<string>();
  private lastDate = '';
  private readonly now: () => number;
  /** Why the seed failed (or that it was stopped); every query then reads the files. */
  failure?: Error;
  private closed = false;

  constructor(
    private dir: string | undefined,
    private readonly opts: UsageIndexOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.from = usageKeptFrom(this.now());
  }

  /**
   * Reads the kept days from the audit folder (the constructor's, else `dir`) once; later calls return the same promise,
   * which resolves with the number of call records read and never rejects. `onLine` sees each call line counted.
   */
  seed(dir?: string, onLine?: (text: string) => void): Promise<number> {
    this.dir ??= dir;
    this.seeding ??= this.readFiles(onLine);
    return this.seeding;
  }

  /** The first UTC date held (later when a new day pushed old ones out). */
  get keptFrom(): string {
    return this.from;
  }

  private async readFiles(onLine?: (text: string) => void): Promise<number> {
    if (!this.dir) return 0;
    this.liveIds = new Set();
    const from = this.from;
    let n = 0;
    try {
      await scanUsage(
        this.dir,
        (d) => d >= from,
        (r, text) => {
          if (r.t < this.from || (r.id !== undefined && this.liveIds!.has(r.id))) return;
          if (r.id !== undefined) {
            this.seededIds.add(r.id);
            if (this.seededIds.size > SEEDED_IDS_KEPT) this.seededIds.delete(this.seededIds.values().next().value!);
          }
          this.table.add(r);
          onLine?.(text);
          n++;
        },
        () => this.closed,
      );
      if (this.closed) this.failure ??= new Error('the usage index was closed while it read the audit log');
    } catch (err) {
      this.failure = err as Error;
    } finally {
      this.liveIds = undefined;
    }
    return n;
  }

  /** Counts a call record as it is written (`t` is the record's time); false when the seed already counted it. */
  add(r: UsageRecord): boolean {
    if (r.id !== undefined) {
      if (this.seededIds.delete(r.id)) return false;
      this.liveIds?.add(r.id);
    }
    const date = r.t.slice(0, 10);
    if (date > this.lastDate) {
      if (this.lastDate) this.seededIds.clear();
      this.lastDate = date;
      const from = usageKeptFrom(Date.parse(r.t));
      if (from > this.from) {
        this.from = from;
        this.table.dropBefore(from);
      }
    }
    if (date >= this.from) this.table.add(r);
    return true;
  }

  /** Stops a seed still reading (its gateway stopped). */
  close(): void {
    this.closed = true;
  }

  /** The usage report of a query: whole days held from memory, the rest read from the files. */
  async report(q: UsageQuery): Promise<UsageReport> {
    await this.seed();
    const range = usageRange(q, this.now());
    const sum = new UsageSum(q.by);
    const held = this.failure || !this.dir ? NOTHING : this.from;
    const partial = new Set<string>();
    for (const date of this.table.dates()) {
      if (date < held || date < range.fromDate || date > range.toDate) continue;
      const day = this.table.day(date)!;
      if (range.sinceIso <= day.minT && day.maxT <= range.untilIso) addDay(day, range.keyId, sum);
      else partial.add(date);
    }
    if (this.dir && (range.fromDate < held || partial.size)) {
      this.opts.flush?.();
      const fromFiles = new UsageTable();
      await scanUsage(
        this.dir,
        (d) => d >= range.fromDate && d <= range.toDate && (d < held || partial.has(d)),
        (r) => {
          if (inRange(r, range)) fromFiles.add(r);
        },
      );
      sumTable(fromFiles, sum);
    }
    return reportOf(q, range, sum);
  }
}

function addDay(day: UsageDay, keyId: string | undefined, sum: UsageSum): void {
  for (const b of day.buckets.values()) if (keyId === undefined || b.key === keyId) sum.add(b);
}
