import { parseSince, USAGE_GROUPS, usageReport, type UsageGroupBy, type UsageReport, type UsageTotals } from '../core/accounting/usage-report';
import { storeUsageReport } from '../core/store/postgres/usage';
import { loadCliConfig } from './context';
import { UsageError } from './serve';
import { openCliPgStore } from './store-context';

export interface UsageOptions {
  config?: string;
  dir?: string;
  since?: string;
  by?: string;
  json?: boolean;
}

/**
 * `claude-code-gateway usage`: totals from the audit log (the same JSON as `GET /usage`): the audit folder's files, or
 * with a PostgreSQL store (and no `--dir`) every replica's call records in the store.
 */
export async function usageCommand(opts: UsageOptions): Promise<string> {
  if (opts.by !== undefined && !(USAGE_GROUPS as readonly string[]).includes(opts.by)) {
    throw new UsageError(`--by: must be one of ${USAGE_GROUPS.join(', ')}, got "${opts.by}"`);
  }
  let since: number;
  try {
    since = parseSince(opts.since);
  } catch (err) {
    throw new UsageError(`--since: ${(err as Error).message}`);
  }
  const query = { since, by: opts.by as UsageGroupBy | undefined };
  const config = opts.dir === undefined ? loadCliConfig(opts.config).config : undefined;
  let report: UsageReport;
  if (config?.store.kind === 'postgres') {
    const pg = await openCliPgStore(config.store);
    try {
      report = await storeUsageReport(pg.pool, query, { schema: pg.schema });
    } finally {
      await pg.close();
    }
  } else {
    report = await usageReport(opts.dir ?? config!.audit.dir, query);
  }
  return opts.json ? JSON.stringify(report, null, 2) : formatReport(report);
}

const COLUMNS: Array<[string, (t: UsageTotals) => string]> = [
  ['requests', (t) => String(t.requests)],
  ['input', (t) => String(t.input)],
  ['output', (t) => String(t.output)],
  ['cache write 5m', (t) => String(t.cacheWrite5m)],
  ['cache write 1h', (t) => String(t.cacheWrite1h)],
  ['cache read', (t) => String(t.cacheRead)],
  ['cost USD', (t) => t.costUsd.toFixed(4)],
];

/** A plain-text table: one row per group, then the total. */
export function formatReport(r: UsageReport): string {
  const head = [r.by ?? '', ...COLUMNS.map(([h]) => h)];
  const rows = (r.groups ?? []).map((g) => [g.group, ...COLUMNS.map(([, f]) => f(g))]);
  rows.push(['total', ...COLUMNS.map(([, f]) => f(r.totals))]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const notes: string[] = [];
  if (r.totals.rejected) notes.push(`${r.totals.rejected} call(s) refused by budgets or rate limits`);
  if (r.totals.unpriced) notes.push(`${r.totals.unpriced} call(s) of models missing from the price table, priced at the most expensive family`);
  return [`Usage from ${r.since} to ${r.until} (UTC)`, line(head), ...rows.map(line), ...notes].join('\n');
}
