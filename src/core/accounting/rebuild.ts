import type { BudgetConfig } from '../config/schema';
import { listAuditFiles, readLines } from './audit-files';
import { scopesOf, type BudgetLedger } from './budgets';
import { utcDate, windowAt, type Period } from './windows';

/**
 * Rebuilds budget spend from the audit log at start, so a restart (or a crash) loses nothing: reads the
 * daily files from the start of the oldest current budget window and counts every priced call record and
 * every budget override. The chain is not re-verified here (that is `audit verify`'s job), only parsed.
 */
export function rebuildLedger(dir: string, ledger: BudgetLedger, budgets: BudgetConfig[], now = Date.now()): { records: number } {
  if (budgets.length === 0) return { records: 0 };
  const from = Math.min(...budgets.map((b) => windowAt(b.period, now).start));
  const fromDate = utcDate(from);
  const files = listAuditFiles(dir)
    .filter((f) => f.date >= fromDate)
    .map((f) => f.file);
  let records = 0;
  readLines(files, (l) => {
    if (!l.complete) return;
    // Cheap pre-filter: only priced calls and overrides change the ledger.
    const isCall = l.text.includes('"type":"call"');
    if (!isCall && !l.text.includes('"type":"budget_override"')) return;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(l.text);
    } catch {
      return;
    }
    records++;
    const at = Date.parse(r.t as string);
    if (at < from) return;
    if (r.type === 'budget_override') {
      ledger.override(String(r.scope), r.period as Period, typeof r.usd === 'number' ? r.usd : undefined, budgets);
      return;
    }
    const cost = r.costUsd as number;
    if (!cost) return;
    ledger.record(scopesOf({ key: { id: String(r.key), team: r.team as string | undefined }, project: r.project as string | undefined, profile: String(r.profile) }), cost, at);
  });
  return { records };
}
