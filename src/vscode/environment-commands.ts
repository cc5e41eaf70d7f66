import * as vscode from 'vscode';
import { applyEdits, modify } from 'jsonc-parser/lib/esm/main';
import { claudeCodeEnv, formatEnv, withKey, type Shell } from '../core/env';
import { generateKey } from '../core/gateway/keys';
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

const WORKSPACE_KEY_PREFIX = 'claudeGateway.workspaceKey.';

/**
 * Configure Claude Code Extension: writes `claudeCode.environmentVariables` and
 * `claudeCode.disableLoginPrompt` to the workspace settings, so Anthropic's own panel goes through the
 * gateway. The key written there is a gateway key for this workspace (kept in secret storage, registered
 * with the gateway and pinned with the window), never a provider credential. Asks first unless `confirmed`.
 */
export async function configureClaudeCodeExtension(controller: GatewayController, secrets: vscode.SecretStorage, confirmed?: boolean): Promise<boolean> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) {
    void vscode.window.showWarningMessage('Claude Gateway: open a folder first; the Claude Code extension is configured per workspace.');
    return false;
  }
  if (!confirmed) {
    const answer = await vscode.window.showInformationMessage(
      `Write claudeCode.environmentVariables and claudeCode.disableLoginPrompt to this workspace's settings (.vscode/settings.json), so the Claude Code extension uses the gateway (profile ${controller.profile.name})? The settings get a local gateway key, not your provider key.`,
      { modal: true },
      'Write Settings',
    );
    if (answer !== 'Write Settings') return false;
  }
  const storeKey = WORKSPACE_KEY_PREFIX + folder.uri.toString();
  let key = await secrets.get(storeKey);
  if (!key) {
    key = generateKey();
    await secrets.store(storeKey, key);
  }
  await controller.addWindowKey(`workspace:${folder.name}`, key);
  const env = withKey(claudeCodeEnv({ gatewayUrl: controller.url, profile: controller.profile }), key);
  await writeWorkspaceSettings(folder, {
    'claudeCode.environmentVariables': Object.entries(env).map(([name, value]) => ({ name, value })),
    'claudeCode.disableLoginPrompt': true,
  });
  if (!confirmed) void vscode.window.showInformationMessage('Claude Gateway: the Claude Code extension now goes through the gateway. Reopen its panel to apply.');
  return true;
}

/**
 * Writes settings to the workspace: through the configuration API when the owning extension has registered
 * them, else by editing `.vscode/settings.json` (comments and formatting kept), so the Claude Code
 * extension finds them when it is installed later.
 */
async function writeWorkspaceSettings(folder: vscode.WorkspaceFolder, values: Record<string, unknown>): Promise<void> {
  const config = vscode.workspace.getConfiguration();
  const unregistered = Object.keys(values).filter((k) => config.inspect(k)?.defaultValue === undefined && !isRegistered(k));
  if (!unregistered.length) {
    for (const [k, v] of Object.entries(values)) await config.update(k, v, vscode.ConfigurationTarget.Workspace);
    return;
  }
  const uri = vscode.Uri.joinPath(folder.uri, '.vscode', 'settings.json');
  let text = '{}';
  try {
    text = new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
  } catch {
    await vscode.workspace.fs.createDirectory(vscode.Uri.joinPath(folder.uri, '.vscode'));
  }
  for (const [k, v] of Object.entries(values)) {
    text = applyEdits(text, modify(text, [k], v, { formattingOptions: { insertSpaces: true, tabSize: 2 } }));
  }
  await vscode.workspace.fs.writeFile(uri, new TextEncoder().encode(text));
}

function isRegistered(key: string): boolean {
  return vscode.extensions.all.some((e) => {
    const c = e.packageJSON?.contributes?.configuration;
    return (Array.isArray(c) ? c : [c]).some((x: { properties?: Record<string, unknown> } | undefined) => !!x?.properties && key in x.properties);
  });
}

/** Loads the workspace key (if Configure Claude Code Extension ran before) so the written settings keep working. */
export async function restoreWorkspaceKey(controller: GatewayController, secrets: vscode.SecretStorage): Promise<void> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) return;
  const key = await secrets.get(WORKSPACE_KEY_PREFIX + folder.uri.toString());
  if (key) await controller.addWindowKey(`workspace:${folder.name}`, key);
}
