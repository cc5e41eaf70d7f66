import * as vscode from 'vscode';
import type { Profile } from '../core/config/validate';
import { claudeCodeEnv } from '../core/env';
import { profileReadiness, profileWhere } from '../core/readiness';
import { CommandId } from './command-ids';
import type { GatewayController } from './controller';
import { usd } from './format';
import type { ProfileSecrets } from './secrets';

interface ProfileItem extends vscode.QuickPickItem {
  profile: Profile;
}

/** Options for running Switch Provider without UI (tests, keybindings). */
export interface SwitchOptions {
  /** Relaunch the integrated terminals when the wire format changed: true, false, or ask (undefined). */
  relaunch?: boolean;
}

/** What Switch Provider did, for callers that run it programmatically. */
export interface SwitchResult {
  profile: string;
  wireFormatChanged: boolean;
  relaunched: number;
}

/** The environment a profile gives Claude Code, without the key: different values mean running sessions must restart. */
function wireFormat(controller: GatewayController, p: Profile): string {
  return JSON.stringify(claudeCodeEnv({ gatewayUrl: controller.url, profile: p }));
}

/** Picker rows: provider and where, readiness, today's spend on the profile. */
export function profileItems(controller: GatewayController, secrets: ProfileSecrets): ProfileItem[] {
  const current = controller.profile.name;
  const byProfile = controller.usage.snapshot().todayByProfile;
  return controller.profiles.map((p) => {
    const r = profileReadiness(p, secrets.has(p.name));
    const spend = byProfile[p.name];
    return {
      label: `${p.name === current ? '$(check) ' : ''}${p.name}`,
      description: `${p.provider} · ${profileWhere(p)}${p.mode === 'unified' ? ' · unified' : ''}`,
      detail: `${r.ready ? '$(pass) ' : '$(warning) '}${r.detail} · today ${usd(spend?.costUsd ?? 0)}${spend ? ` in ${spend.requests} requests` : ''}${p.description ? ` · ${p.description}` : ''}`,
      profile: p,
      buttons: r.needsSecret ? [{ iconPath: new vscode.ThemeIcon('key'), tooltip: 'Set Secret' }] : [],
    };
  });
}

async function pickProfile(controller: GatewayController, secrets: ProfileSecrets): Promise<string | undefined> {
  const qp = vscode.window.createQuickPick<ProfileItem>();
  qp.title = 'Claude Gateway: Switch Provider';
  qp.placeholder = `This window uses ${controller.profile.name}. Pick the profile for its next requests.`;
  qp.matchOnDescription = true;
  qp.items = profileItems(controller, secrets);
  qp.activeItems = qp.items.filter((i) => i.profile.name === controller.profile.name);
  return new Promise((resolve) => {
    qp.onDidTriggerItemButton((e) => {
      qp.hide();
      void vscode.commands.executeCommand(CommandId.SetProviderSecret, e.item.profile.name);
    });
    qp.onDidAccept(() => {
      resolve(qp.selectedItems[0]?.profile.name);
      qp.hide();
    });
    qp.onDidHide(() => {
      resolve(undefined);
      qp.dispose();
    });
    qp.show();
  });
}

/** Terminals that were started with the previous environment and look like they run Claude Code. */
function claudeTerminals(): vscode.Terminal[] {
  return vscode.window.terminals.filter((t) => /claude/i.test(t.name));
}

/** Re-creates terminals with the same name and folder; the new ones get the new environment. */
function relaunch(terminals: readonly vscode.Terminal[]): number {
  for (const t of terminals) {
    const o = t.creationOptions as vscode.TerminalOptions;
    const fresh = vscode.window.createTerminal({ name: t.name, cwd: o.cwd, shellPath: o.shellPath, shellArgs: o.shellArgs, iconPath: o.iconPath, color: o.color });
    t.dispose();
    fresh.show(true);
  }
  return terminals.length;
}

/** Switch Provider: pins the window's key, updates the terminal environment, offers to relaunch terminals. */
export async function switchProvider(controller: GatewayController, secrets: ProfileSecrets, name?: string, opts: SwitchOptions = {}): Promise<SwitchResult | undefined> {
  const target = name ?? (await pickProfile(controller, secrets));
  if (!target) return undefined;
  const before = controller.profile;
  const next = controller.profiles.find((p) => p.name === target);
  if (!next) throw new Error(`No profile named "${target}"`);
  const changed = wireFormat(controller, before) !== wireFormat(controller, next);
  await controller.switchProfile(target);
  void vscode.window.setStatusBarMessage(`Claude Gateway: switched to ${target}`, 3000);
  let relaunched = 0;
  if (changed && vscode.window.terminals.length) {
    const claude = claudeTerminals();
    if (opts.relaunch === true) relaunched = relaunch(claude.length ? claude : vscode.window.terminals);
    else if (opts.relaunch === undefined) {
      const buttons = [...(claude.length ? [`Relaunch ${claude.length} Claude Terminal${claude.length > 1 ? 's' : ''}`] : []), 'Relaunch All Terminals'];
      void vscode.window
        .showInformationMessage(
          `Claude Code in terminals opened before the switch still speaks the ${before.provider} wire format (${before.name}). New terminals use ${next.name}.`,
          ...buttons,
        )
        .then((choice) => {
          if (!choice) return;
          relaunch(choice.startsWith('Relaunch All') ? vscode.window.terminals : claudeTerminals());
        });
    }
  }
  return { profile: target, wireFormatChanged: changed, relaunched };
}
