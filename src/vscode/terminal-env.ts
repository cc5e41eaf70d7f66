import * as vscode from 'vscode';
import { claudeCodeEnv, CLAUDE_CODE_VARIABLES, withKey } from '../core/env';
import type { Profile } from '../core/config/validate';
import type { GatewayController, GatewayState } from './controller';
import { SECTION } from './settings';

/**
 * The profile a workspace folder pins for its own terminals: a folder-level `claudeGateway.activeProfile`
 * (the folder's `.vscode/settings.json` in a multi-root workspace) naming a configured profile. Values
 * inherited from user or workspace settings don't count: those are the window's profile.
 */
export function folderProfileName(folder: vscode.WorkspaceFolder): string | undefined {
  // In Restricted Mode a folder's settings choose nothing (package.json restricts the setting too).
  if (!vscode.workspace.isTrusted) return undefined;
  const value = vscode.workspace.getConfiguration(SECTION, folder.uri).inspect<string>('activeProfile')?.workspaceFolderValue;
  return typeof value === 'string' && value ? value : undefined;
}

/**
 * Keeps `environmentVariableCollection` pointing Claude Code at this window's gateway and profile, so
 * every new integrated terminal gets it; not persisted, so a stale port never lingers after a restart.
 * A workspace folder that pins another profile gets a collection scoped to it: the same gateway and
 * window key, routed through `/profiles/<name>/`, so its terminals reach that profile whatever the
 * window's profile is.
 */
export class TerminalEnvironment implements vscode.Disposable {
  private readonly subscriptions: vscode.Disposable[];
  private enabled = true;
  /** Folders (by index) that have a scoped collection, with the profile it points at. */
  private scoped = new Map<number, { folder: vscode.WorkspaceFolder; profile: string }>();

  constructor(
    private readonly collection: vscode.GlobalEnvironmentVariableCollection,
    private readonly controller: GatewayController,
  ) {
    collection.persistent = false;
    this.subscriptions = [
      controller.onDidChangeState((s) => this.apply(s)),
      vscode.workspace.onDidChangeWorkspaceFolders(() => this.reapply()),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration(`${SECTION}.activeProfile`)) this.reapply();
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.reapply()),
    ];
  }

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    this.reapply();
  }

  private reapply(): void {
    this.apply({ url: this.controller.url, profile: this.controller.profile, mode: this.controller.mode });
  }

  /** The variables new terminals get, by name (for tests and Copy Environment). */
  current(): Record<string, string> {
    // get() reads the window-wide entries only (forEach would also list the folder-scoped ones).
    const out: Record<string, string> = {};
    for (const name of CLAUDE_CODE_VARIABLES) {
      const m = this.collection.get(name);
      if (m) out[name] = m.value;
    }
    return out;
  }

  /** The variables of the collection scoped to a workspace folder (by name); empty when the folder uses the window's. */
  currentForFolder(name: string): Record<string, string> {
    const out: Record<string, string> = {};
    const folder = vscode.workspace.workspaceFolders?.find((f) => f.name === name);
    if (!folder || !this.scoped.has(folder.index)) return out;
    this.collection.getScoped({ workspaceFolder: folder }).forEach((n, m) => {
      out[n] = m.value;
    });
    return out;
  }

  apply(state: GatewayState): void {
    // Clearing the global collection clears the folder-scoped ones too.
    this.collection.clear();
    this.scoped.clear();
    if (!this.enabled || !state.url) return;
    this.fill(this.collection, withKey(claudeCodeEnv({ gatewayUrl: state.url, profile: state.profile }), this.controller.key));
    this.collection.description = new vscode.MarkdownString(
      `Claude Code in this terminal goes through the Claude Code Gateway (profile **${state.profile.name}**, ${state.profile.provider}).`,
    );
    for (const folder of vscode.workspace.workspaceFolders ?? []) {
      const name = folderProfileName(folder);
      if (!name || name === state.profile.name) continue;
      const profile: Profile | undefined = this.controller.profiles.find((p) => p.name === name);
      if (!profile) continue;
      const scoped = this.collection.getScoped({ workspaceFolder: folder });
      this.fill(scoped, withKey(claudeCodeEnv({ gatewayUrl: state.url, profile, pinInPath: true }), this.controller.key));
      scoped.description = new vscode.MarkdownString(
        `Claude Code in terminals of **${folder.name}** goes through the Claude Code Gateway (the folder's profile **${profile.name}**, ${profile.provider}).`,
      );
      this.scoped.set(folder.index, { folder, profile: profile.name });
    }
  }

  private fill(collection: vscode.EnvironmentVariableCollection, env: Record<string, string>): void {
    for (const name of CLAUDE_CODE_VARIABLES) {
      if (env[name] !== undefined) collection.replace(name, env[name]);
    }
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
    this.collection.clear();
  }
}
