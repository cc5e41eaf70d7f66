import * as vscode from 'vscode';
import { parseConfig, ConfigError, type GatewayConfig } from '../core/config/validate';

export const SECTION = 'claudeGateway';

/** The raw `claudeGateway.*` settings, read in one place. */
export interface RawSettings {
  profiles: unknown[];
  activeProfile: string;
  port: number;
  budgets: unknown[];
  rateLimits: unknown[];
  auditBodies: string;
  terminalEnabled: boolean;
}

export function readSettings(): RawSettings {
  const c = vscode.workspace.getConfiguration(SECTION);
  return {
    profiles: c.get<unknown[]>('profiles') ?? [],
    activeProfile: c.get<string>('activeProfile') ?? '',
    port: c.get<number>('port') ?? 4747,
    budgets: c.get<unknown[]>('budgets') ?? [],
    rateLimits: c.get<unknown[]>('rateLimits') ?? [],
    auditBodies: c.get<string>('audit.bodies') ?? 'none',
    terminalEnabled: c.get<boolean>('terminal.enabled') ?? true,
  };
}

/**
 * Turns settings into the core's GatewayConfig (the same validation as the CLI's config file). Problems
 * are reported with `claudeGateway.` in front of their JSON path.
 */
export function configFromSettings(s: RawSettings, dataDir: string): GatewayConfig {
  const profiles = s.profiles.length ? s.profiles : [{ name: 'anthropic', provider: 'anthropic' }];
  const first = (profiles[0] as { name?: string } | undefined)?.name;
  try {
    return parseConfig({
      listen: { host: '127.0.0.1', port: s.port },
      dataDir,
      activeProfile: s.activeProfile || first,
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
