import { parseConfig, ConfigError, type GatewayConfig } from './validate';

/** The editor's settings section (`claudeGateway.*`). */
export const SECTION = 'claudeGateway';

/**
 * Settings that name upstreams, credentials, helpers, ports, spending limits or what the audit log keeps.
 * They are `machine`-scoped in package.json, and read here from user (or remote user) settings and the
 * defaults only: a workspace's `.vscode/settings.json` or `.code-workspace` cannot set them, even on an
 * editor that would merge a workspace value, in a trusted folder too. One gateway serves every window on
 * the machine, so a workspace value would also reach the other windows' calls.
 */
export const MACHINE_SETTINGS = ['profiles', 'port', 'budgets', 'rateLimits', 'audit.bodies'] as const;

/** What the editor's `inspect()` reports for one setting (the fields read here). */
export interface InspectedSetting<T> {
  defaultValue?: T;
  globalValue?: T;
  workspaceValue?: T;
  workspaceFolderValue?: T;
}

/** Looks one `claudeGateway.*` setting up, per source. */
export type InspectSetting = <T>(key: string) => InspectedSetting<T> | undefined;

/** The raw `claudeGateway.*` settings, read in one place. */
export interface RawSettings {
  profiles: unknown[];
  /** The user's choice of profile (empty: the first). */
  activeProfile: string;
  /** A trusted workspace's choice, by name: a workspace may pick a profile, never define one. */
  workspaceProfile?: string;
  port: number;
  budgets: unknown[];
  rateLimits: unknown[];
  auditBodies: string;
  terminalEnabled: boolean;
}

/** A machine setting: the user's value, else the default; workspace and folder values are ignored. */
function machineValue<T>(inspect: InspectSetting, key: (typeof MACHINE_SETTINGS)[number], fallback: T): T {
  const i = inspect<T>(key);
  return i?.globalValue ?? i?.defaultValue ?? fallback;
}

/**
 * The profile a window starts with. A trusted workspace may choose one by name; in Restricted Mode only
 * the user's choice counts (package.json lists the setting in `restrictedConfigurations` too).
 */
function activeProfile(inspect: InspectSetting, trusted: boolean): Pick<RawSettings, 'activeProfile' | 'workspaceProfile'> {
  const i = inspect<string>('activeProfile');
  const user = i?.globalValue ?? i?.defaultValue;
  const workspace = trusted ? i?.workspaceValue : undefined;
  return { activeProfile: typeof user === 'string' ? user : '', ...(typeof workspace === 'string' && workspace ? { workspaceProfile: workspace } : {}) };
}

/** Reads the settings from what the editor reports per source; `trusted` is the workspace's trust. */
export function settingsFrom(inspect: InspectSetting, trusted: boolean): RawSettings {
  const terminal = inspect<boolean>('terminal.enabled');
  return {
    profiles: machineValue<unknown[]>(inspect, 'profiles', []),
    ...activeProfile(inspect, trusted),
    port: machineValue<number>(inspect, 'port', 4747),
    budgets: machineValue<unknown[]>(inspect, 'budgets', []),
    rateLimits: machineValue<unknown[]>(inspect, 'rateLimits', []),
    auditBodies: machineValue<string>(inspect, 'audit.bodies', 'none'),
    terminalEnabled: terminal?.workspaceValue ?? terminal?.globalValue ?? terminal?.defaultValue ?? true,
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
  const chosen = s.workspaceProfile && names.includes(s.workspaceProfile) ? s.workspaceProfile : s.activeProfile;
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
