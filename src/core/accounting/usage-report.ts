import { listAuditFiles } from './audit-files';
import { readLinesAsync } from './audit-scan';
import { readUsageRecord, type UsageRecord } from './usage-records';
import { UsageSum, UsageTable, type UsageGroupBy, type UsageTotals } from './usage-table';
import { windowAt } from './windows';

export { USAGE_GROUPS, type UsageGroupBy, type UsageTotals } from './usage-table';

/** What `usage` and `GET /usage` return. */
export interface UsageReport {
  since: string;
  until: string;
  /** Set when only one key's usage is shown. */
  key?: string;
  by?: UsageGroupBy;
  totals: UsageTotals;
  groups?: Array<{ group: string } & UsageTotals>;
}

export interface UsageQuery {
  since: number;
  until?: number;
  by?: UsageGroupBy;
  /** Only this key's calls. */
  keyId?: string;
}

/** A query's bounds: records with `sinceIso <= t <= untilIso`, in the daily files `fromDate` to `toDate`. */
export interface UsageRange {
  sinceIso: string;
  untilIso: string;
  fromDate: string;
  toDate: string;
  keyId?: string;
}

export function usageRange(q: UsageQuery, now = Date.now()): UsageRange {
  const sinceIso = new Date(q.since).toISOString();
  const untilIso = new Date(q.until ?? now).toISOString();
  return { sinceIso, untilIso, fromDate: sinceIso.slice(0, 10), toDate: untilIso.slice(0, 10), keyId: q.keyId };
}

/** True when a record is in the range (and is the range's key's, when it names one). */
export function inRange(r: UsageRecord, range: UsageRange): boolean {
  return r.t >= range.sinceIso && r.t <= range.untilIso && (range.keyId === undefined || r.key === range.keyId);
}

/** The report of a query from the sum of its buckets. */
export function reportOf(q: UsageQuery, range: UsageRange, sum: UsageSum): UsageReport {
  const { totals, groups } = sum.result;
  return { since: range.sinceIso, until: range.untilIso, ...(q.keyId !== undefined ? { key: q.keyId } : {}), ...(q.by ? { by: q.by } : {}), totals, ...(groups ? { groups } : {}) };
}

/**
 * Hands every call record of the daily files whose date `wanted` accepts to `onRecord`, oldest first, reading the
 * files in bounded chunks without blocking the event loop, until `stop` says so. Torn last lines are skipped (as
 * `audit verify` reports them).
 */
export async function scanUsage(dir: string, wanted: (date: string) => boolean, onRecord: (r: UsageRecord, text: string) => void, stop?: () => boolean): Promise<void> {
  const files = listAuditFiles(dir)
    .filter((f) => wanted(f.date))
    .map((f) => f.file);
  await readLinesAsync(files, (l) => {
    if (stop?.()) return false;
    if (!l.complete) return;
    const r = readUsageRecord(l.text);
    if (r) onRecord(r, l.text);
  });
}

/** Adds every bucket of `table` to `sum`. */
export function sumTable(table: UsageTable, sum: UsageSum): void {
  for (const date of table.dates()) for (const b of table.day(date)!.buckets.values()) sum.add(b);
}

/** Totals (and groups) of the call records in the audit log between `since` and `until`, read from the files. */
export async function usageReport(dir: string, q: UsageQuery, now = Date.now()): Promise<UsageReport> {
  const range = usageRange(q, now);
  const table = new UsageTable();
  await scanUsage(
    dir,
    (d) => d >= range.fromDate && d <= range.toDate,
    (r) => {
      if (inRange(r, range)) table.add(r);
    },
  );
  const sum = new UsageSum(q.by);
  sumTable(table, sum);
  return reportOf(q, range, sum);
}

/** Parses `--since` / `?since=`: a date (UTC midnight) or an ISO time; by default the start of this UTC month. */
export function parseSince(value: string | undefined, now = Date.now()): number {
  if (!value) return windowAt('month', now).start;
  const date = /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(`${value}T00:00:00Z`) : Date.parse(value);
  if (Number.isNaN(date)) throw new Error(`not a date: "${value}" (use YYYY-MM-DD or an ISO time)`);
  return date;
}
