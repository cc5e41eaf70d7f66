import * as vscode from 'vscode';
import { claudeCodeEnv, formatEnv, withKey, type Shell } from '../core/env';
import { generateKey } from '../core/gateway/keys';
import { CommandId } from './command-ids';
import type { GatewayController } from './controller';

/** How long the key in copied `export` lines stays valid. */
export const COPIED_TOKEN_TTL_MS = 8 * 3_600_000;

/** Copy Environment: the lines for an external shell, with a short-lived signed token instead of the window key. */
export async function copyEnvironment(controller: GatewayController, shell?: Shell): Promise<string | undefined> {
  let chosen = shell;
  if (!chosen) {
    const pick = await vscode.window.showQuickPick(
      [
        { label: 'sh', description: 'bash, zsh' },
        { label: 'fish', description: '' },
        { label: 'powershell', description: '' },
        { label: 'json', description: 'for scripts' },
      ],
      { title: 'Claude Gateway: Copy Environment for' },
    );
    chosen = pick?.label as Shell | undefined;
  }
  if (!chosen) return undefined;
  const { token, expiresAt } = await controller.issueToken(COPIED_TOKEN_TTL_MS);
  const env = claudeCodeEnv({ gatewayUrl: controller.url, profile: controller.profile });
  const text = formatEnv(env, chosen, { literal: token });
  await vscode.env.clipboard.writeText(text);
  if (!shell) void vscode.window.showInformationMessage(`Claude Gateway: environment for ${controller.profile.name} copied. Its key expires ${new Date(expiresAt).toLocaleString()}.`);
  return text;
}

/** An earlier version kept one gateway key per workspace here (and wrote it into `.vscode/settings.json`). */
const WORKSPACE_KEY_PREFIX = 'claudeGateway.workspaceKey.';
/** The gateway key of Anthropic's Claude Code extension on this machine (SecretStorage). */
const EDITOR_KEY = 'claudeGateway.editorKey';
const EDITOR_KEY_ID = 'editor:claude-code';
/** The variable names Configure wrote last time (global state), so a later run replaces them and nothing else. */
const WRITTEN_NAMES = 'claudeGateway.claudeCodeVariables';
const CLAUDE_CODE = 'claudeCode';

interface EnvEntry {
  name: string;
  value: string;
}

const entries = (v: unknown): EnvEntry[] => (Array.isArray(v) ? v.filter((e): e is EnvEntry => !!e && typeof e.name === 'string') : []);

/** A value only this gateway hands out: a gateway key or a signed token. */
const isGatewayCredential = (value: unknown) => typeof value === 'string' && /^(ccgw-|ccgwt1\.)/.test(value);

/**
 * Configure Claude Code Extension: points Anthropic's own panel at the gateway by merging the gateway's
 * variables into `claudeCode.environmentVariables` (and `claudeCode.disableLoginPrompt`) in the user's
 * settings. Never in a workspace file: `.vscode/settings.json` is often committed, and the variables carry
 * a gateway key. The key is this machine's key for that extension (kept in secret storage, registered with
 * the gateway by every window and pinned like the window's key), never a provider credential. Entries the
 * user has there are kept; only the variables this command wrote before are replaced. Asks first unless
 * `confirmed`.
 */
export async function configureClaudeCodeExtension(controller: GatewayController, secrets: vscode.SecretStorage, state: vscode.Memento, confirmed?: boolean): Promise<boolean> {
  if (!isRegistered(`${CLAUDE_CODE}.environmentVariables`)) {
    void vscode.window.showWarningMessage('Claude Gateway: install the Claude Code extension (anthropic.claude-code) first; this command configures its settings.');
    return false;
  }
  if (!confirmed) {
    const answer = await vscode.window.showInformationMessage(
      `Add the gateway's variables to claudeCode.environmentVariables in your user settings, so the Claude Code extension uses the gateway (profile ${controller.profile.name})? Your other entries stay. The settings get a local gateway key, not your provider key; Settings Sync is told to leave that setting on this machine, and nothing is written to this workspace.`,
      { modal: true },
      'Update User Settings',
    );
    if (answer !== 'Update User Settings') return false;
  }
  let key = await secrets.get(EDITOR_KEY);
  if (!key) {
    key = generateKey();
    await secrets.store(EDITOR_KEY, key);
  }
  await controller.addWindowKey(EDITOR_KEY_ID, key);
  const env = withKey(claudeCodeEnv({ gatewayUrl: controller.url, profile: controller.profile }), key);
  const config = vscode.workspace.getConfiguration(CLAUDE_CODE);
  const replaced = new Set([...Object.keys(env), ...(state.get<string[]>(WRITTEN_NAMES) ?? [])]);
  const kept = entries(config.inspect('environmentVariables')?.globalValue).filter((e) => !replaced.has(e.name));
  await config.update('environmentVariables', [...kept, ...Object.entries(env).map(([name, value]) => ({ name, value }))], vscode.ConfigurationTarget.Global);
  await state.update(WRITTEN_NAMES, Object.keys(env));
  if (isRegistered(`${CLAUDE_CODE}.disableLoginPrompt`)) await config.update('disableLoginPrompt', true, vscode.ConfigurationTarget.Global);
  await keepOutOfSettingsSync(`${CLAUDE_CODE}.environmentVariables`);
  const hidden = await cleanWorkspaceValue(config, replaced, secrets);
  if (hidden) {
    void vscode.window.showWarningMessage(
      "Claude Gateway: this workspace's settings set claudeCode.environmentVariables, which hides the value in your user settings: move its entries to your user settings for the Claude Code extension to use the gateway here.",
    );
  } else if (!confirmed) void vscode.window.showInformationMessage('Claude Gateway: the Claude Code extension now goes through the gateway. Reopen its panel to apply.');
  return true;
}

/** The key is valid on this machine's gateway only: Settings Sync does not carry the setting to other machines. */
async function keepOutOfSettingsSync(setting: string): Promise<void> {
  const sync = vscode.workspace.getConfiguration('settingsSync');
  const inspected = sync.inspect<string[]>('ignoredSettings');
  if (inspected?.defaultValue === undefined) return;
  const ignored = inspected.globalValue ?? [];
  if (!ignored.includes(setting)) await sync.update('ignoredSettings', [...ignored, setting], vscode.ConfigurationTarget.Global);
}

/**
 * The workspace's own `claudeCode.environmentVariables`, if any, hides the user's. Entries an earlier
 * version of this command wrote there (the gateway's variables, with a gateway key in them) are removed;
 * the setting goes when nothing else is left. True when the workspace still sets it.
 */
async function cleanWorkspaceValue(config: vscode.WorkspaceConfiguration, ours: Set<string>, secrets: vscode.SecretStorage): Promise<boolean> {
  const value = config.inspect('environmentVariables')?.workspaceValue;
  if (value === undefined) return false;
  const list = entries(value);
  if (list.some((e) => isGatewayCredential(e.value))) {
    const rest = list.filter((e) => !ours.has(e.name));
    await config.update('environmentVariables', rest.length ? rest : undefined, vscode.ConfigurationTarget.Workspace);
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (folder) await secrets.delete(WORKSPACE_KEY_PREFIX + folder.uri.toString());
    return rest.length > 0;
  }
  return true;
}

function isRegistered(key: string): boolean {
  return vscode.extensions.all.some((e) => {
    const c = e.packageJSON?.contributes?.configuration;
    return (Array.isArray(c) ? c : [c]).some((x: { properties?: Record<string, unknown> } | undefined) => !!x?.properties && key in x.properties);
  });
}

/**
 * Registers the Claude Code extension's key (if Configure Claude Code Extension ran on this machine) so the
 * user settings it wrote keep working, and a workspace key of an earlier version until Configure moves it.
 */
export async function restoreEditorKeys(controller: GatewayController, secrets: vscode.SecretStorage): Promise<void> {
  const key = await secrets.get(EDITOR_KEY);
  if (key) await controller.addWindowKey(EDITOR_KEY_ID, key);
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) return;
  const legacy = await secrets.get(WORKSPACE_KEY_PREFIX + folder.uri.toString());
  if (!legacy) return;
  await controller.addWindowKey(`workspace:${folder.name}`, legacy);
  const written = entries(vscode.workspace.getConfiguration(CLAUDE_CODE).inspect('environmentVariables')?.workspaceValue);
  if (!written.some((e) => e.value === legacy)) return;
  const move = 'Move It to User Settings';
  void vscode.window
    .showWarningMessage("Claude Gateway: an earlier version wrote a gateway key into this workspace's .vscode/settings.json (claudeCode.environmentVariables), a file that is often committed.", move)
    .then((choice) => {
      if (choice === move) void vscode.commands.executeCommand(CommandId.ConfigureClaudeCodeExtension);
    });
}
