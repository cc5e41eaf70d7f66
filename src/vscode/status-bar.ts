import * as vscode from 'vscode';
import type { UsageSnapshot } from '../core/usage-summary';
import { CommandId } from './command-ids';
import type { GatewayController } from './controller';
import { budgetsForWindow, nearestBudget, percent, tokens, usd } from './format';

const WARNING_AT = 0.8;

/**
 * The usage meter: the window's profile, today's spend and the nearest budget, a spinning icon while a
 * call streams, warning/error backgrounds at 80/100 % of a budget, and a Markdown tooltip. Re-rendered on
 * the controller's and the usage summary's events only (never polled).
 */
export class StatusBarController implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly subscriptions: vscode.Disposable[];

  constructor(private readonly controller: GatewayController) {
    this.item = vscode.window.createStatusBarItem('claudeGateway.status', vscode.StatusBarAlignment.Left, 100);
    this.item.name = 'Claude Code Gateway';
    this.item.command = CommandId.SwitchProvider;
    this.subscriptions = [controller.onDidChangeState(() => this.render()), controller.usage.onDidChange(() => this.render())];
    this.render();
  }

  /** The item's current text (for tests). */
  get text(): string {
    return this.item.text;
  }

  /** The item's tooltip as Markdown (for tests). */
  get tooltip(): string {
    const t = this.item.tooltip;
    return typeof t === 'string' ? t : (t?.value ?? '');
  }

  /** `warning`, `error` or `` (for tests). */
  get severity(): string {
    const id = (this.item.backgroundColor as vscode.ThemeColor | undefined)?.id ?? '';
    return id.includes('error') ? 'error' : id.includes('warning') ? 'warning' : '';
  }

  private render(): void {
    const c = this.controller;
    // Shown once the first start has served, attached or failed: not "not running" while it starts.
    if (c.mode !== 'stopped' || c.problem) this.item.show();
    if (c.mode === 'stopped' || !c.url) {
      this.item.text = '$(circle-slash) Claude Gateway';
      this.item.tooltip = c.problem
        ? `The gateway is not running: ${c.problem}. Fix the settings, or run **Claude Gateway: Restart Gateway**.`
        : 'The gateway is not running. Run **Claude Gateway: Restart Gateway**.';
      this.item.backgroundColor = undefined;
      return;
    }
    const profile = c.profile;
    const snap = c.usage.snapshot();
    const mine = budgetsForWindow(snap.budgets, { keyId: c.windowKeyId, project: vscode.workspace.workspaceFolders?.[0]?.name, profile: profile.name });
    const nearest = nearestBudget(mine);
    const icon = snap.inFlight > 0 ? '$(sync~spin)' : '$(cloud)';
    this.item.text = `${icon} ${profile.name} ${usd(snap.todayTotals.costUsd)}${nearest ? ` · ${percent(nearest.fraction)}` : ''}`;
    this.item.backgroundColor =
      nearest && nearest.fraction >= 1
        ? new vscode.ThemeColor('statusBarItem.errorBackground')
        : nearest && nearest.fraction >= WARNING_AT
          ? new vscode.ThemeColor('statusBarItem.warningBackground')
          : undefined;
    this.item.accessibilityInformation = { label: `Claude Gateway: profile ${profile.name}, ${usd(snap.todayTotals.costUsd)} today${nearest ? `, ${percent(nearest.fraction)} of the ${nearest.period} budget for ${nearest.scope}` : ''}` };
    this.item.tooltip = this.tooltipFor(snap);
  }

  private tooltipFor(snap: UsageSnapshot): vscode.MarkdownString {
    const c = this.controller;
    const p = c.profile;
    const lines: string[] = [];
    lines.push(`**Claude Code Gateway** · profile **${p.name}** (${p.provider})`, '');
    lines.push(`Today: **${usd(snap.todayTotals.costUsd)}** in ${snap.todayTotals.requests} requests · this month: **${usd(snap.monthTotals.costUsd)}** in ${snap.monthTotals.requests} requests`, '');
    const models = Object.entries(snap.todayByModel).sort((a, b) => b[1].costUsd - a[1].costUsd);
    if (models.length) {
      lines.push('| Model (today) | Req | Input | Output | Cache write | Cache read | Cost |', '|---|--:|--:|--:|--:|--:|--:|');
      for (const [model, t] of models) {
        const u = t.usage;
        lines.push(`| ${model} | ${t.requests} | ${tokens(u.input)} | ${tokens(u.output)} | ${tokens(u.cacheWrite5m + u.cacheWrite1h)} | ${tokens(u.cacheRead)} | ${usd(t.costUsd)} |`);
      }
      lines.push('');
    }
    if (snap.budgets.length) {
      lines.push('| Budget | Spent | Remaining | Resets |', '|---|--:|--:|---|');
      for (const b of snap.budgets) {
        lines.push(`| ${b.scope} · ${b.period} ${usd(b.usd)} | ${usd(b.spentUsd)} (${percent(b.fraction)}) | ${usd(b.remainingUsd)} | ${new Date(b.resetsAt).toLocaleString()} |`);
      }
      lines.push('');
    }
    const limits = c.gatewayConfig.rateLimits;
    if (limits.length) {
      lines.push(`Rate limits: ${limits.map((r) => `${r.scope} ${[r.requestsPerMinute && `${r.requestsPerMinute} req/min`, r.tokensPerMinute && `${tokens(r.tokensPerMinute)} tok/min`].filter(Boolean).join(', ')}`).join(' · ')}`, '');
    }
    if (snap.inFlight) lines.push(`$(sync~spin) ${snap.inFlight} call${snap.inFlight > 1 ? 's' : ''} streaming`, '');
    lines.push(`Gateway: \`${c.url}\` (${c.mode === 'serving' ? 'served by this window' : 'shared, served by another window'})`, '');
    lines.push(`[Switch Provider](command:${CommandId.SwitchProvider}) · [Show Usage](command:${CommandId.ShowUsage}) · [Test Connection](command:${CommandId.TestConnection})`);
    const md = new vscode.MarkdownString(lines.join('\n'), true);
    md.isTrusted = { enabledCommands: [CommandId.SwitchProvider, CommandId.ShowUsage, CommandId.TestConnection] };
    return md;
  }

  dispose(): void {
    for (const s of this.subscriptions.reverse()) s.dispose();
    this.item.dispose();
  }
}
