import * as vscode from 'vscode';
import { parseConfig, ConfigError, type GatewayConfig } from '../core/config/validate';

export const SECTION = 'claudeGateway';

/**
 * Settings that name upstreams, credentials, helpers, ports, spending limits or what the audit log keeps.
 * They are `machine`-scoped in package.json, and read here from user (or remote user) settings and the
 * defaults only: a workspace's `.vscode/settings.json` or `.code-workspace` cannot set them, even on a VS
 * Code that would merge a workspace value, in a trusted folder too. One gateway serves every window on
 * the machine, so a workspace value would also reach the other windows' calls.
 */
export const MACHINE_SETTINGS = ['profiles', 'port', 'budgets', 'rateLimits', 'audit.bodies'] as const;

/** The raw `claudeGateway.*` settings, read in one place. */
export interface RawSettings {
  profiles: unknown[];
  activeProfile: string;
  /** Where `activeProfile` came from: a workspace may pick a profile by name, never define one. */
  activeProfileFrom: 'workspace' | 'user';
  port: number;
  budgets: unknown[];
  rateLimits: unknown[];
  auditBodies: string;
  terminalEnabled: boolean;
}

/** A machine setting: the user's value, else the default; workspace and folder values are ignored. */
function machineValue<T>(c: vscode.WorkspaceConfiguration, key: (typeof MACHINE_SETTINGS)[number], fallback: T): T {
  const i = c.inspect<T>(key);
  return i?.globalValue ?? i?.defaultValue ?? fallback;
}

/**
 * The profile this window starts with. A trusted workspace may choose one by name; in Restricted Mode
 * only the user's choice counts (package.json lists the setting in `restrictedConfigurations` too).
 */
function activeProfile(c: vscode.WorkspaceConfiguration): Pick<RawSettings, 'activeProfile' | 'activeProfileFrom'> {
  const i = c.inspect<string>('activeProfile');
  const fromWorkspace = vscode.workspace.isTrusted ? (i?.workspaceValue ?? undefined) : undefined;
  if (typeof fromWorkspace === 'string' && fromWorkspace) return { activeProfile: fromWorkspace, activeProfileFrom: 'workspace' };
  const user = i?.globalValue ?? i?.defaultValue;
  return { activeProfile: typeof user === 'string' ? user : '', activeProfileFrom: 'user' };
}

export function readSettings(): RawSettings {
  const c = vscode.workspace.getConfiguration(SECTION);
  return {
    profiles: machineValue<unknown[]>(c, 'profiles', []),
    ...activeProfile(c),
    port: machineValue<number>(c, 'port', 4747),
    budgets: machineValue<unknown[]>(c, 'budgets', []),
    rateLimits: machineValue<unknown[]>(c, 'rateLimits', []),
    auditBodies: machineValue<string>(c, 'audit.bodies', 'none'),
    terminalEnabled: c.get<boolean>('terminal.enabled') ?? true,
  };
}

/**
 * Turns settings into the core's GatewayConfig (the same validation as the CLI's config file). Problems
 * are reported with `claudeGateway.` in front of their JSON path. A workspace that names a profile the
 * user does not have is ignored (the user's choice applies), so a repository cannot stop the gateway.
 */
export function configFromSettings(s: RawSettings, dataDir: string): GatewayConfig {
  const profiles = s.profiles.length ? s.profiles : [{ name: 'anthropic', provider: 'anthropic' }];
  const names = profiles.map((p) => (p as { name?: unknown } | undefined)?.name);
  const first = names[0] as string | undefined;
  const chosen = s.activeProfileFrom === 'workspace' && !names.includes(s.activeProfile) ? undefined : s.activeProfile;
  try {
    return parseConfig({
      listen: { host: '127.0.0.1', port: s.port },
      dataDir,
      activeProfile: chosen || first,
      profiles,
      budgets: s.budgets,
      rateLimits: s.rateLimits,
      audit: { bodies: s.auditBodies },
    });
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(err.problems.map((p) => `${SECTION}.${p}`));
    throw err;
  }
}
