import { formatUsd, type BudgetStatus } from '../core/accounting/budgets';
import { budgetSchema } from '../core/config/schema';
import { GatewayClient, type GatewayClientOptions } from './gateway-client';
import { UsageError } from './serve';

export interface BudgetListOptions extends GatewayClientOptions {
  json?: boolean;
}

export interface BudgetOverrideOptions extends BudgetListOptions {
  period?: string;
  clear?: boolean;
}

/** What `POST /budgets/override` answers. */
export interface OverrideResult {
  budget: BudgetStatus;
  previousUsd: number;
  /** False when `--clear` met a budget without an override (nothing recorded). */
  changed: boolean;
}

/** `claude-code-gateway budget`: every budget of the running gateway (`GET /budgets`). */
export async function budgetListCommand(opts: BudgetListOptions): Promise<string> {
  const client = GatewayClient.fromOptions(opts);
  const r = await client.request<{ budgets: BudgetStatus[] }>('GET', '/budgets');
  return opts.json ? JSON.stringify(r, null, 2) : formatBudgets(r.budgets, client);
}

/** `claude-code-gateway budget override <scope> <usd>|--clear`: through the gateway's audited `POST /budgets/override`. */
export async function budgetOverrideCommand(scope: string, amount: string | undefined, opts: BudgetOverrideOptions): Promise<string> {
  const body = overrideBody(scope, amount, opts);
  const client = GatewayClient.fromOptions(opts);
  const r = await client.request<OverrideResult>('POST', '/budgets/override', body);
  return opts.json ? JSON.stringify(r, null, 2) : describeOverride(r, client.keyId);
}

/** Checks the command line before anything is sent, with the config's own rules for scopes and amounts. */
function overrideBody(scope: string, amount: string | undefined, opts: BudgetOverrideOptions): { scope: string; period?: string; usd: number | null } {
  const s = budgetSchema.shape.scope.safeParse(scope);
  if (!s.success) throw new UsageError(`scope: ${s.error.issues[0].message}, got "${scope}"`);
  if (opts.period !== undefined && !budgetSchema.shape.period.safeParse(opts.period).success) {
    throw new UsageError(`--period: must be day, week or month, got "${opts.period}"`);
  }
  if (opts.clear) {
    if (amount !== undefined) throw new UsageError(`give either a new limit or --clear, not both (got "${amount}" and --clear)`);
    return { scope, period: opts.period, usd: null };
  }
  if (amount === undefined) throw new UsageError('give the new limit in USD (e.g. `budget override team:platform 80`), or --clear to remove the override');
  const usd = /^(\d+(\.\d*)?|\.\d+)$/.test(amount) ? Number(amount) : NaN;
  if (!(usd > 0) || !Number.isFinite(usd)) throw new UsageError(`amount: must be a positive number of USD like 80 or 12.5, got "${amount}"`);
  return { scope, period: opts.period, usd };
}

const COLUMNS: Array<[string, (b: BudgetStatus, now: number) => string]> = [
  ['scope', (b) => b.scope],
  ['period', (b) => b.period],
  ['limit USD', (b) => formatUsd(b.usd)],
  ['spent USD', (b) => formatUsd(b.spentUsd)],
  ['reserved USD', (b) => formatUsd(b.reservedUsd)],
  ['remaining USD', (b) => formatUsd(b.remainingUsd)],
  ['resets (UTC)', (b, now) => `${b.resetsAt.slice(0, 16).replace('T', ' ')} (in ${timeUntil(b.resetsAt, now)})`],
  ['override', (b) => (b.overridden ? 'yes' : 'no')],
];
/** Columns whose cells are numbers, aligned right. */
const NUMERIC = new Set(['limit USD', 'spent USD', 'reserved USD', 'remaining USD']);

/** A plain-text table, one row per budget, then a line for each budget that is used up. */
export function formatBudgets(budgets: BudgetStatus[], client: Pick<GatewayClient, 'url' | 'keyId'>, now = Date.now()): string {
  const title = `Budgets of the gateway at ${client.url} (as key "${client.keyId}"; periods are UTC calendar windows)`;
  if (budgets.length === 0) return `${title}\nnone: add "budgets" to the gateway's config (see docs/accounting.md)`;
  const head = COLUMNS.map(([h]) => h);
  const rows = budgets.map((b) => COLUMNS.map(([, cell]) => cell(b, now)));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (NUMERIC.has(head[i]) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  const notes = budgets
    .filter((b) => b.remainingUsd <= 0)
    .map((b) => `${b.scope} per ${b.period}: used up; calls in this scope get 429 billing_error until ${b.resetsAt}`);
  return [title, line(head), ...rows.map(line), ...notes].join('\n');
}

function describeOverride(r: OverrideResult, keyId: string): string {
  const b = r.budget;
  const name = `${b.scope} per ${b.period}`;
  const state = `spent $${formatUsd(b.spentUsd)}, remaining $${formatUsd(b.remainingUsd)}, resets ${b.resetsAt}`;
  if (!r.changed) return `${name} has no override; its limit stays $${formatUsd(b.usd)} (${state}). Nothing was changed or recorded.`;
  if (b.overridden) {
    return `${name}: limit $${formatUsd(r.previousUsd)} → $${formatUsd(b.usd)} (${state}). Override by key "${keyId}" recorded in the audit log; clear it with \`budget override ${b.scope} --clear --period ${b.period}\`.`;
  }
  return `${name}: override cleared, limit $${formatUsd(r.previousUsd)} → $${formatUsd(b.usd)} from the config (${state}). Recorded in the audit log as done by key "${keyId}".`;
}

/** "3d 4h", "5h 12m" or "7m": enough to tell when a budget comes back. */
function timeUntil(iso: string, now: number): string {
  const minutes = Math.max(0, Math.ceil((Date.parse(iso) - now) / 60_000));
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  if (d) return `${d}d ${h}h`;
  return h ? `${h}h ${m}m` : `${m}m`;
}
