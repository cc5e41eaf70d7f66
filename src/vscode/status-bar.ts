import * as vscode from 'vscode';
import type { GatewayController, GatewayState } from './controller';
import { CommandId } from './command-ids';

/** The status bar item: the window's profile; click to switch provider. Driven by controller events. */
export class StatusBarController implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly subscription: vscode.Disposable;

  constructor(controller: GatewayController) {
    this.item = vscode.window.createStatusBarItem('claudeGateway.status', vscode.StatusBarAlignment.Left, 100);
    this.item.name = 'Claude Code Gateway';
    this.item.command = CommandId.SwitchProvider;
    this.subscription = controller.onDidChangeState((s) => this.render(s));
    this.render({ url: controller.url, profile: controller.profile });
    this.item.show();
  }

  /** The item's current text (for tests). */
  get text(): string {
    return this.item.text;
  }

  private render(state: GatewayState): void {
    this.item.text = `$(cloud) ${state.profile.name}`;
    const tooltip = new vscode.MarkdownString(`**Claude Code Gateway**\n\nProfile: **${state.profile.name}** (${state.profile.provider})\n\nGateway: \`${state.url}\`\n\nClick to switch provider.`);
    this.item.tooltip = tooltip;
  }

  dispose(): void {
    this.subscription.dispose();
    this.item.dispose();
  }
}
