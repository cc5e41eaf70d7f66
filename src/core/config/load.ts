import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, DEFAULT_HOME_DIR, DEFAULT_HOST, DEFAULT_PORT, parseConfig, type GatewayConfig } from './validate';
import { resolvePath } from './expand';

/** The configuration written on first run: one Anthropic profile keyed from the environment. */
export function defaultConfigJson(): Record<string, unknown> {
  return {
    listen: { host: DEFAULT_HOST, port: DEFAULT_PORT },
    dataDir: `${DEFAULT_HOME_DIR}/data`,
    activeProfile: 'anthropic',
    profiles: [{ name: 'anthropic', provider: 'anthropic', apiKey: '${env:ANTHROPIC_API_KEY}', baseUrl: 'https://api.anthropic.com' }],
    audit: { bodies: 'none' },
  };
}

/** Where the CLI reads its config: the flag, else $CLAUDE_CODE_GATEWAY_CONFIG, else ~/.claude-code-gateway/config.json. */
export function configPathFor(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, home = os.homedir()): { file: string; isDefault: boolean } {
  if (flag) return { file: path.resolve(flag), isDefault: false };
  if (env.CLAUDE_CODE_GATEWAY_CONFIG) return { file: path.resolve(env.CLAUDE_CODE_GATEWAY_CONFIG), isDefault: false };
  return { file: resolvePath(`${DEFAULT_HOME_DIR}/config.json`, home, home), isDefault: true };
}

export interface LoadedConfig {
  config: GatewayConfig;
  file: string;
  /** True when this call wrote the default config because none existed. */
  created: boolean;
}

/** Reads and validates a config file; at the default location a missing file is created from defaultConfigJson(). */
export function loadConfigFile(file: string, opts: { createIfMissing: boolean; env?: NodeJS.ProcessEnv; homeDir?: string }): LoadedConfig {
  let created = false;
  if (!fs.existsSync(file)) {
    if (!opts.createIfMissing) throw new ConfigError([`config file not found: ${file}`], file);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(file, JSON.stringify(defaultConfigJson(), null, 2) + '\n', { mode: 0o600 });
    created = true;
  }
  const text = fs.readFileSync(file, 'utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`not valid JSON: ${describeJsonError(err as Error, text)}`], file);
  }
  const config = parseConfig(raw, { source: file, env: opts.env, baseDir: path.dirname(file), homeDir: opts.homeDir });
  return { config, file, created };
}

function describeJsonError(err: Error, text: string): string {
  const m = /position (\d+)/.exec(err.message);
  const pos = m ? Number(m[1]) : firstBadOffset(text);
  if (pos === undefined) return err.message;
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  const what = err.message.replace(/ (in JSON )?at position \d+.*$/, '').replace(/, ".*" is not valid JSON$/s, '');
  return `${what} at line ${line}, column ${col}`;
}

/**
 * Where a JSON text first goes wrong, for engines whose messages give no position: every prefix before
 * that point fails only for ending early, so a binary search finds it.
 */
function firstBadOffset(text: string): number | undefined {
  const endsEarly = (n: number): boolean => {
    try {
      JSON.parse(text.slice(0, n));
      return true;
    } catch (e) {
      const msg = (e as Error).message;
      const at = /at position (\d+)/.exec(msg);
      return /end of (JSON )?input/i.test(msg) || (at !== null && Number(at[1]) >= n);
    }
  };
  let lo = 0;
  let hi = text.length;
  if (endsEarly(hi)) return undefined;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (endsEarly(mid)) lo = mid + 1;
    else hi = mid;
  }
  return Math.max(0, lo - 1);
}
