import * as vscode from 'vscode';
import type { ProfileConfig } from '../core/config/schema';
import type { Shell } from '../core/env';
import { takesSecret } from '../core/readiness';
import { addProfile, type AddProfileOptions } from './add-profile';
import { openAuditLog, verifyAuditLog } from './audit-commands';
import { CommandId } from './command-ids';
import type { GatewayController } from './controller';
import type { UsageDashboard } from './dashboard';
import { configureClaudeCodeExtension, copyEnvironment } from './environment-commands';
import type { ProfileSecrets } from './secrets';
import { switchProvider, type SwitchOptions } from './switch-provider';
import { testConnection } from './test-connection';

/** What the commands act on. */
export interface CommandContext {
  controller: GatewayController;
  secrets: ProfileSecrets;
  secretStorage: vscode.SecretStorage;
  /** The extension's global state (what Configure Claude Code Extension wrote). */
  globalState: vscode.Memento;
  dashboard: UsageDashboard;
}

/** Runs a command body and turns a thrown error into one error message (the command still rejects for callers). */
function guarded<A extends unknown[], R>(title: string, fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A) => {
    try {
      return await fn(...args);
    } catch (err) {
      void vscode.window.showErrorMessage(`Claude Gateway: ${title} failed: ${(err as Error).message}`);
      throw err;
    }
  };
}

async function setProviderSecret({ controller, secrets }: CommandContext, name?: string, value?: string): Promise<boolean> {
  let profileName = name;
  if (!profileName) {
    const candidates = controller.profiles.filter(takesSecret);
    if (!candidates.length) {
      void vscode.window.showInformationMessage('No profile takes a secret: Anthropic (gateway credentials), LiteLLM and Bedrock profiles do.');
      return false;
    }
    const pick = await vscode.window.showQuickPick(
      candidates.map((p) => ({ label: p.name, description: `${p.provider}${secrets.has(p.name) ? ' · secret stored' : ''}`, profile: p })),
      { title: 'Claude Gateway: Set Provider Secret' },
    );
    profileName = pick?.profile.name;
  }
  if (!profileName) return false;
  const profile = controller.profiles.find((p) => p.name === profileName);
  if (!profile) throw new Error(`No profile named "${profileName}" (profiles: ${controller.profiles.map((p) => p.name).join(', ')})`);
  const secret =
    value ??
    (await vscode.window.showInputBox({
      title: `Secret for profile "${profileName}"`,
      prompt: 'API key (Anthropic, LiteLLM) or Bedrock API key. Stored in the editor secret storage, never in settings.',
      password: true,
      ignoreFocusOut: true,
      validateInput: (v) => (v.trim() ? undefined : 'Enter the key'),
    }));
  if (!secret) return false;
  // Bound to where the profile points now: the gateway sends it nowhere else without asking.
  await secrets.set(profile, secret.trim());
  void vscode.window.setStatusBarMessage(`Claude Gateway: secret stored for ${profileName}`, 3000);
  return true;
}

/** Registers every command; each takes optional arguments so tests and keybindings can skip the UI. */
export function registerAllCommands(ctx: CommandContext): vscode.Disposable[] {
  const { controller, secrets, dashboard } = ctx;
  const register = <A extends unknown[], R>(id: CommandId, title: string, fn: (...args: A) => Promise<R>) => vscode.commands.registerCommand(id, guarded(title, fn));
  // Commands that act on the running gateway or its profiles: they say why when it could not start.
  const running =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    async (...args: A) => {
      controller.assertRunning();
      return fn(...args);
    };
  return [
    register(CommandId.SwitchProvider, 'Switch Provider', running((name?: string, opts?: SwitchOptions) => switchProvider(controller, secrets, name, opts))),
    register(CommandId.AddProfile, 'Add Profile', (profile?: ProfileConfig, opts?: AddProfileOptions) => addProfile(controller, secrets, profile, opts)),
    register(CommandId.SetProviderSecret, 'Set Provider Secret', running((name?: string, value?: string) => setProviderSecret(ctx, name, value))),
    register(CommandId.TestConnection, 'Test Connection', running((name?: string) => testConnection(controller, name))),
    register(CommandId.ShowUsage, 'Show Usage', async () => dashboard.show()),
    register(CommandId.OpenAuditLog, 'Open Audit Log', running(() => openAuditLog(controller))),
    register(CommandId.VerifyAuditLog, 'Verify Audit Log', running((quiet?: boolean) => verifyAuditLog(controller, quiet))),
    register(CommandId.CopyEnvironment, 'Copy Environment', running((shell?: Shell) => copyEnvironment(controller, shell))),
    register(CommandId.RestartGateway, 'Restart Gateway', async () => {
      await controller.restart();
      void vscode.window.setStatusBarMessage(`Claude Gateway: ${controller.mode === 'serving' ? 'serving' : 'attached to'} ${controller.url}`, 3000);
      return controller.url;
    }),
    register(CommandId.ConfigureClaudeCodeExtension, 'Configure Claude Code Extension', running((confirmed?: boolean) => configureClaudeCodeExtension(controller, ctx.secretStorage, ctx.globalState, confirmed))),
  ];
}
