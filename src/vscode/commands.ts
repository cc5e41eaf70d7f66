import * as vscode from 'vscode';
import type { Profile } from '../core/config/validate';
import { CommandId } from './command-ids';
import type { GatewayController } from './controller';
import type { ProfileSecrets } from './secrets';

interface ProfileItem extends vscode.QuickPickItem {
  profile: Profile;
}

function where(p: Profile): string {
  if (p.provider === 'bedrock') return p.region ?? '';
  if (p.provider === 'vertex') return `${p.projectId ?? ''} · ${p.region ?? ''}`;
  return p.baseUrl ?? 'api.anthropic.com';
}

/** Profiles whose upstream key can live in SecretStorage. */
function takesSecret(p: Profile): boolean {
  return (p.provider === 'anthropic' && p.credentials === 'gateway') || p.provider === 'litellm' || p.provider === 'bedrock';
}

/** Registers every command; each takes an optional argument so tests and keybindings can skip the UI. */
export function registerAllCommands(controller: GatewayController, secrets: ProfileSecrets): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand(CommandId.SwitchProvider, async (name?: string) => {
      let target = name;
      if (!target) {
        const current = controller.profile.name;
        const items: ProfileItem[] = controller.profiles.map((p) => ({
          label: p.name,
          description: `${p.provider} · ${where(p)}`,
          detail: p.name === current ? '$(check) active in this window' : p.description,
          profile: p,
        }));
        const pick = await vscode.window.showQuickPick(items, { title: 'Claude Gateway: Switch Provider', placeHolder: `Current: ${current}` });
        target = pick?.profile.name;
      }
      if (!target) return;
      await controller.switchProfile(target);
      void vscode.window.setStatusBarMessage(`Claude Gateway: switched to ${target}`, 3000);
    }),
    vscode.commands.registerCommand(CommandId.SetProviderSecret, async (name?: string, value?: string) => {
      let profileName = name;
      if (!profileName) {
        const candidates = controller.profiles.filter(takesSecret);
        if (!candidates.length) {
          void vscode.window.showInformationMessage('No profile takes a secret: Anthropic (gateway credentials), LiteLLM and Bedrock profiles do.');
          return;
        }
        const pick = await vscode.window.showQuickPick(
          candidates.map((p) => ({ label: p.name, description: `${p.provider}${secrets.has(p.name) ? ' · secret stored' : ''}`, profile: p })),
          { title: 'Claude Gateway: Set Provider Secret' },
        );
        profileName = pick?.profile.name;
      }
      if (!profileName) return;
      const secret =
        value ??
        (await vscode.window.showInputBox({
          title: `Secret for profile "${profileName}"`,
          prompt: 'API key (Anthropic, LiteLLM) or Bedrock API key. Stored in the editor secret storage, never in settings.',
          password: true,
          ignoreFocusOut: true,
          validateInput: (v) => (v.trim() ? undefined : 'Enter the key'),
        }));
      if (!secret) return;
      await secrets.set(profileName, secret.trim());
      void vscode.window.setStatusBarMessage(`Claude Gateway: secret stored for ${profileName}`, 3000);
    }),
  ];
}
