import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';
import type { UsageSnapshot } from '../core/usage-summary';
import type { GatewayController } from './controller';

/** What the dashboard was last sent (tests read it). */
export interface DashboardMessage {
  type: 'snapshot';
  snapshot: UsageSnapshot;
  profile: string;
  url: string;
}

/**
 * The usage dashboard: one webview panel (strict CSP, scripts by nonce, no remote content, assets from
 * `media/` and the bundled `dist/webview/`), fed by the usage summary's events.
 */
export class UsageDashboard implements vscode.Disposable {
  private panel?: vscode.WebviewPanel;
  private panelDisposables: vscode.Disposable[] = [];
  private pending?: NodeJS.Timeout;
  private ready = false;
  /** The last message posted to the webview. */
  lastMessage?: DashboardMessage;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly controller: GatewayController,
  ) {}

  get isOpen(): boolean {
    return !!this.panel;
  }

  show(): void {
    if (this.panel) {
      this.panel.reveal();
      return;
    }
    const roots = [vscode.Uri.joinPath(this.extensionUri, 'media'), vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview')];
    const panel = vscode.window.createWebviewPanel('claudeGateway.usage', 'Claude Gateway: Usage', vscode.ViewColumn.Active, {
      enableScripts: true,
      localResourceRoots: roots,
      retainContextWhenHidden: false,
    });
    panel.iconPath = vscode.Uri.joinPath(this.extensionUri, 'media', 'icon.png');
    panel.webview.html = this.html(panel.webview);
    this.panel = panel;
    this.ready = false;
    this.panelDisposables = [
      panel.webview.onDidReceiveMessage((m: { type?: string }) => {
        if (m?.type === 'ready') {
          this.ready = true;
          this.post();
        }
      }),
      panel.onDidChangeViewState(() => panel.visible && this.post()),
      this.controller.usage.onDidChange(() => this.schedule()),
      this.controller.onDidChangeState(() => this.schedule()),
      panel.onDidDispose(() => this.closed()),
    ];
  }

  /** Coalesces bursts of events (a stream's start and settle) into one post. */
  private schedule(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.post();
    }, 50);
  }

  private post(): void {
    if (!this.panel || !this.ready) return;
    const message: DashboardMessage = { type: 'snapshot', snapshot: this.controller.usage.snapshot(), profile: this.controller.profile.name, url: this.controller.url };
    this.lastMessage = message;
    void this.panel.webview.postMessage(message);
  }

  private html(webview: vscode.Webview): string {
    const nonce = randomBytes(16).toString('base64');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview', 'dashboard.js'));
    const style = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'media', 'dashboard.css'));
    const csp = [`default-src 'none'`, `img-src ${webview.cspSource} data:`, `style-src ${webview.cspSource}`, `font-src ${webview.cspSource}`, `script-src 'nonce-${nonce}'`].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style}">
<title>Claude Gateway: Usage</title>
</head>
<body>
<h1>Claude Code Gateway: usage</h1>
<p id="summary">Loading…</p>
<div class="grid">
  <div><h2>Spend per day</h2><div class="chart"><canvas id="spendByDay" aria-label="Spend per day"></canvas></div></div>
  <div><h2>Tokens per day</h2><div class="chart"><canvas id="tokensByDay" aria-label="Tokens per day by kind"></canvas></div></div>
  <div><h2>Spend per model (month)</h2><div class="chart"><canvas id="spendByModel" aria-label="Spend per model"></canvas></div></div>
  <div><h2>Spend per project (month)</h2><div class="chart"><canvas id="spendByProject" aria-label="Spend per project"></canvas></div></div>
</div>
<h2>Budgets</h2>
<div id="budgets"></div>
<h2>Recent calls</h2>
<table id="recent">
  <thead><tr><th>Time</th><th>Model</th><th>Profile</th><th>Project</th><th>Tokens</th><th>Cost</th><th>Latency</th><th>Status</th></tr></thead>
  <tbody></tbody>
</table>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
  }

  private closed(): void {
    for (const d of this.panelDisposables.reverse()) d.dispose();
    this.panelDisposables = [];
    if (this.pending) clearTimeout(this.pending);
    this.pending = undefined;
    this.panel = undefined;
  }

  dispose(): void {
    this.panel?.dispose();
    this.closed();
  }
}
