import { listAuditFiles, readLines } from './audit-files';
import { utcDate, windowAt } from './windows';

/** How `usage` groups its totals. */
export const USAGE_GROUPS = ['day', 'model', 'key', 'team', 'project', 'profile'] as const;
export type UsageGroupBy = (typeof USAGE_GROUPS)[number];

/** Totals over a set of call records. */
export interface UsageTotals {
  /** Calls that reached an upstream (refused calls are counted in `rejected`). */
  requests: number;
  rejected: number;
  errors: number;
  input: number;
  output: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
  costUsd: number;
  /** Calls priced at the fallback family because their model is not in the price table. */
  unpriced: number;
}

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

function empty(): UsageTotals {
  return { requests: 0, rejected: 0, errors: 0, input: 0, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, costUsd: 0, unpriced: 0 };
}

interface CallLine {
  t: string;
  key?: string;
  team?: string;
  project?: string;
  profile?: string;
  status?: string;
  requestedModel?: string;
  upstreamModel?: string;
  responseModel?: string;
  usage?: { input: number; output: number; cacheWrite5m: number; cacheWrite1h: number; cacheRead: number };
  costUsd?: number;
  priceKnown?: boolean;
}

function add(t: UsageTotals, r: CallLine): void {
  if (r.status === 'rejected') {
    t.rejected++;
    return;
  }
  t.requests++;
  if (r.status !== 'ok') t.errors++;
  const u = r.usage;
  if (u) {
    t.input += u.input;
    t.output += u.output;
    t.cacheWrite5m += u.cacheWrite5m;
    t.cacheWrite1h += u.cacheWrite1h;
    t.cacheRead += u.cacheRead;
  }
  t.costUsd += r.costUsd ?? 0;
  if (r.priceKnown === false) t.unpriced++;
}

function groupOf(r: CallLine, by: UsageGroupBy): string {
  switch (by) {
    case 'day':
      return r.t.slice(0, 10);
    case 'model':
      return r.responseModel ?? r.upstreamModel ?? r.requestedModel ?? '(none)';
    case 'key':
      return r.key ?? '(none)';
    case 'team':
      return r.team ?? '(none)';
    case 'project':
      return r.project ?? '(none)';
    case 'profile':
      return r.profile ?? '(none)';
  }
}

/** Totals (and groups) of the call records in the audit log between `since` and `until`. */
export function usageReport(dir: string, q: UsageQuery): UsageReport {
  const until = q.until ?? Date.now();
  const fromDate = utcDate(q.since);
  const toDate = utcDate(until);
  const files = listAuditFiles(dir)
    .filter((f) => f.date >= fromDate && f.date <= toDate)
    .map((f) => f.file);
  const totals = empty();
  const groups = new Map<string, UsageTotals>();
  const sinceIso = new Date(q.since).toISOString();
  const untilIso = new Date(until).toISOString();
  readLines(files, (l) => {
    if (!l.complete || !l.text.includes('"type":"call"')) return;
    let r: CallLine;
    try {
      r = JSON.parse(l.text);
    } catch {
      return;
    }
    if (r.t < sinceIso || r.t > untilIso) return;
    if (q.keyId !== undefined && r.key !== q.keyId) return;
    add(totals, r);
    if (q.by) {
      const g = groupOf(r, q.by);
      const t = groups.get(g) ?? empty();
      add(t, r);
      groups.set(g, t);
    }
  });
  const report: UsageReport = { since: sinceIso, until: untilIso, ...(q.keyId !== undefined ? { key: q.keyId } : {}), ...(q.by ? { by: q.by } : {}), totals };
  if (q.by) report.groups = [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([group, t]) => ({ group, ...t }));
  return report;
}

/** Parses `--since` / `?since=`: a date (UTC midnight) or an ISO time; by default the start of this UTC month. */
export function parseSince(value: string | undefined, now = Date.now()): number {
  if (!value) return windowAt('month', now).start;
  const date = /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(`${value}T00:00:00Z`) : Date.parse(value);
  if (Number.isNaN(date)) throw new Error(`not a date: "${value}" (use YYYY-MM-DD or an ISO time)`);
  return date;
}
