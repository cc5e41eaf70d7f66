import type { GatewayKey } from '../core/gateway/keys';
import type { BudgetView, CallView } from '../core/usage-summary';

/** `$1.24`, `$0.0031` for small amounts, so a single cheap call still shows. */
export function usd(n: number): string {
  if (n === 0) return '$0.00';
  if (Math.abs(n) < 0.01) return `$${n.toFixed(4)}`;
  return `$${n.toFixed(2)}`;
}

/** `12.3k`, `1.2M`. */
export function tokens(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

export function percent(fraction: number): string {
  return `${Math.round(fraction * 100)}%`;
}

/** The budgets that count this window's calls: global, its key, its project, its profile (teams don't apply to window keys). */
export function budgetsForWindow(budgets: BudgetView[], who: Pick<CallView, 'keyId' | 'project' | 'profile'> & Partial<Pick<GatewayKey, 'team'>>): BudgetView[] {
  return budgets.filter((b) => {
    if (b.scope === 'global') return true;
    const [kind, name] = [b.scope.slice(0, b.scope.indexOf(':')), b.scope.slice(b.scope.indexOf(':') + 1)];
    return (kind === 'key' && name === who.keyId) || (kind === 'project' && name === who.project) || (kind === 'profile' && name === who.profile) || (kind === 'team' && name === who.team);
  });
}

/** The budget closest to its limit, if any. */
export function nearestBudget(budgets: BudgetView[]): BudgetView | undefined {
  return budgets.reduce<BudgetView | undefined>((best, b) => (!best || b.fraction > best.fraction ? b : best), undefined);
}
