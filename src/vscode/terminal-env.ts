import * as vscode from 'vscode';
import { claudeCodeEnv, CLAUDE_CODE_VARIABLES, withKey } from '../core/env';
import type { GatewayController, GatewayState } from './controller';

/**
 * Keeps `environmentVariableCollection` pointing Claude Code at this window's gateway and profile, so
 * every new integrated terminal gets it; not persisted, so a stale port never lingers after a restart.
 */
export class TerminalEnvironment implements vscode.Disposable {
  private readonly subscription: vscode.Disposable;
  private enabled = true;

  constructor(
    private readonly collection: vscode.GlobalEnvironmentVariableCollection,
    private readonly controller: GatewayController,
  ) {
    collection.persistent = false;
    this.subscription = controller.onDidChangeState((s) => this.apply(s));
  }

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    this.apply({ url: this.controller.url, profile: this.controller.profile, mode: this.controller.mode });
  }

  /** The variables new terminals get, by name (for tests and Copy Environment). */
  current(): Record<string, string> {
    const out: Record<string, string> = {};
    this.collection.forEach((name, m) => {
      out[name] = m.value;
    });
    return out;
  }

  apply(state: GatewayState): void {
    this.collection.clear();
    if (!this.enabled || !state.url) return;
    const env = withKey(claudeCodeEnv({ gatewayUrl: state.url, profile: state.profile }), this.controller.key);
    for (const name of CLAUDE_CODE_VARIABLES) {
      // Variables of another provider's mode are blanked so a value inherited from the user's shell can't win.
      if (env[name] === undefined && name !== 'AWS_REGION') continue;
      if (env[name] !== undefined) this.collection.replace(name, env[name]);
    }
    this.collection.description = new vscode.MarkdownString(
      `Claude Code in this terminal goes through the Claude Code Gateway (profile **${state.profile.name}**, ${state.profile.provider}).`,
    );
  }

  dispose(): void {
    this.subscription.dispose();
    this.collection.clear();
  }
}
