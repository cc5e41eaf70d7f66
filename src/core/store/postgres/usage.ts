import type { Pool } from 'pg';
import { inRange, reportOf, usageRange, type UsageQuery, type UsageReport } from '../../accounting/usage-report';
import { readUsageRecord } from '../../accounting/usage-records';
import { UsageSum, UsageTable } from '../../accounting/usage-table';
import { checkName, DEFAULT_SCHEMA, ident } from './sql';

const PAGE = 5000;

/**
 * `usage` over the store: the call records of every replica's chain between `since` and `until`, read by time (the
 * `t` index) in pages, and summed as the file store sums its daily files (the record text is the same shape).
 */
export async function storeUsageReport(pool: Pool, q: UsageQuery, options: { schema?: string } = {}, now = Date.now()): Promise<UsageReport> {
  const s = ident(checkName(options.schema ?? DEFAULT_SCHEMA, 'store.schema'));
  const range = usageRange(q, now);
  const table = new UsageTable();
  let after: { t: Date; chain: string; seq: string } | undefined;
  for (;;) {
    const page = await pool.query<{ t: Date; chain: string; seq: string; record: string }>(
      `SELECT t, chain, seq, record FROM ${s}.audit
        WHERE type = 'call' AND t >= $1 AND t <= $2 AND ($3::timestamptz IS NULL OR (t, chain, seq) > ($3, $4, $5))
        ORDER BY t, chain, seq LIMIT ${PAGE}`,
      [range.sinceIso, range.untilIso, after?.t ?? null, after?.chain ?? '', after?.seq ?? 0],
    );
    for (const row of page.rows) {
      const r = readUsageRecord(row.record);
      if (r && inRange(r, range)) table.add(r);
    }
    if (page.rows.length < PAGE) break;
    const last = page.rows[page.rows.length - 1];
    after = { t: last.t, chain: last.chain, seq: last.seq };
  }
  const sum = new UsageSum(q.by);
  for (const date of table.dates()) for (const b of table.day(date)!.buckets.values()) sum.add(b);
  return reportOf(q, range, sum);
}
