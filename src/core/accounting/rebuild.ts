import type { BudgetConfig } from '../config/schema';
import { listAuditFiles, readLines } from './audit-files';
import { scopesOf, type BudgetLedger } from './budgets';
import type { MissingSpend, SpendBook } from './spend-book';
import { readUsageRecord } from './usage-records';
import { utcDate, windowAt, type Period } from './windows';

/** Where the rebuild also counts spend per scope and day (for the head, and to check the log against it). */
export interface RebuildBooks {
  /** Every record's spend. */
  all: SpendBook;
  /** The spend of records up to `headSeq` only (what the head's own spend must match). */
  upToHead?: SpendBook;
  headSeq?: number;
}

/**
 * Rebuilds budget spend from the audit log at start, so a restart (or a crash) loses nothing: reads the
 * daily files from the start of the oldest current budget window and counts every priced call record, the spend
 * a `tamper` record restored, and every budget override. The chain is not re-verified here (that is `audit
 * verify`'s job), only parsed.
 */
export function rebuildLedger(dir: string, ledger: BudgetLedger, budgets: BudgetConfig[], now = Date.now(), books?: RebuildBooks): { records: number } {
  if (budgets.length === 0) return { records: 0 };
  const headSeq = books?.headSeq ?? -1;
  const from = Math.min(...budgets.map((b) => windowAt(b.period, now).start));
  const fromDate = utcDate(from);
  const files = listAuditFiles(dir)
    .filter((f) => f.date >= fromDate)
    .map((f) => f.file);
  let records = 0;
  readLines(files, (l) => {
    if (!l.complete) return;
    const text = l.text;
    // The third member says what the line is: {"seq":N,"t":"…","type":"…"
    const typeAt = text.indexOf('"type":"');
    if (typeAt === -1) return;
    const isCall = text.startsWith('call"', typeAt + 8);
    if (!isCall && !text.startsWith('budget_override"', typeAt + 8) && !text.startsWith('tamper"', typeAt + 8)) return;
    records++;
    const fast = isCall ? readCallFast(text) : undefined;
    let r: Record<string, unknown>;
    if (fast) r = fast;
    else {
      try {
        r = JSON.parse(text);
      } catch {
        return;
      }
    }
    const at = Date.parse(r.t as string);
    if (at < from) return;
    if (r.type === 'budget_override') {
      ledger.override(String(r.scope), r.period as Period, typeof r.usd === 'number' ? r.usd : undefined, at);
      return;
    }
    const upToHead = books?.upToHead && typeof r.seq === 'number' && r.seq <= headSeq ? books.upToHead : undefined;
    if (r.type === 'tamper') {
      for (const m of restoredSpend(r)) {
        ledger.record([m.scope], m.usd, Date.parse(`${m.day}T00:00:00.000Z`));
        books?.all.addOne(m.scope, m.day, m.usd);
        upToHead?.addOne(m.scope, m.day, m.usd);
      }
      return;
    }
    const cost = r.costUsd as number;
    if (!cost) return;
    const scopes = scopesOf({ key: { id: String(r.key), team: r.team as string | undefined }, project: r.project as string | undefined, profile: String(r.profile) });
    ledger.record(scopes, cost, at);
    books?.all.add(scopes, cost, at);
    upToHead?.add(scopes, cost, at);
  });
  return { records };
}

/** The spend a `tamper` record restored (what the head said the removed records had cost), well-formed entries only. */
export function restoredSpend(r: Record<string, unknown>): MissingSpend[] {
  if (!Array.isArray(r.restored)) return [];
  return (r.restored as Array<Partial<MissingSpend>>).filter(
    (m): m is MissingSpend => typeof m?.scope === 'string' && typeof m.day === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(m.day) && typeof m.usd === 'number' && Number.isFinite(m.usd) && m.usd > 0,
  );
}

/** The fields the ledger needs from a call line, by the one reader of call lines (usage-records.ts: a stored body is not parsed). */
function readCallFast(text: string): Record<string, unknown> | undefined {
  const c = readUsageRecord(text);
  return c && { type: 'call', seq: c.seq, t: c.t, key: c.key, team: c.team, project: c.project, profile: c.profile, costUsd: c.costUsd };
}
