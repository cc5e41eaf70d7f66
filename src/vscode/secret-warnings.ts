import * as vscode from 'vscode';
import { profileReadiness } from '../core/readiness';
import { describeIdentity, secretIdentity } from '../core/secret-identity';
import { CommandId } from './command-ids';
import type { GatewayController } from './controller';
import type { ProfileSecrets } from './secrets';

/**
 * Warns once per profile when the window's profile lacks the secret it needs, with a "Set Secret" action.
 * Follows the controller's events (switches, settings changes), never polls.
 */
export class SecretWarnings implements vscode.Disposable {
  private readonly warned = new Set<string>();
  private readonly subscriptions: vscode.Disposable[];
  /** Profiles warned about (for tests). */
  readonly shown: string[] = [];

  constructor(
    private readonly controller: GatewayController,
    private readonly secrets: ProfileSecrets,
  ) {
    this.subscriptions = [controller.onDidChangeState(() => this.check()), secrets.onDidChange(() => this.check())];
    this.check();
  }

  check(): void {
    if (this.controller.mode === 'stopped') return;
    const p = this.controller.profile;
    const r = profileReadiness(p, this.secrets.has(p.name));
    if (r.ready || !r.needsSecret || this.warned.has(p.name)) return;
    this.warned.add(p.name);
    this.shown.push(p.name);
    const elsewhere = this.secrets.boundElsewhere(p.name);
    const text = elsewhere
      ? `Claude Gateway: the key stored for profile "${p.name}" belongs to ${describeIdentity(elsewhere)}, and the profile now points at ${describeIdentity(secretIdentity(p))}. The gateway does not send it there until you confirm (it asks at the first call) or set the secret again.`
      : `Claude Gateway: profile "${p.name}" (${p.provider}) has ${r.detail.replace(/^no /, 'no ')}. Claude Code calls through it will fail until it does.`;
    void vscode.window.showWarningMessage(text, 'Set Secret').then((choice) => {
      if (choice === 'Set Secret') void vscode.commands.executeCommand(CommandId.SetProviderSecret, p.name);
    });
  }

  dispose(): void {
    for (const s of this.subscriptions.reverse()) s.dispose();
  }
}
