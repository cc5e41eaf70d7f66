import { claudeCodeEnv, formatEnv, type Shell } from '../core/env';
import { readOrCreateLocalKey } from '../core/gateway/local-secrets';
import { keyReferenceFor, loadCliConfig, localGatewayUrl } from './context';
import { UsageError } from './serve';

export interface EnvOptions {
  config?: string;
  profile?: string;
  shell?: string;
  key?: string;
  revealKey?: boolean;
}

const SHELLS: readonly Shell[] = ['sh', 'fish', 'powershell', 'json'];

/** `claude-code-gateway env`: the variables that point Claude Code at the gateway for a profile. */
export function envCommand(opts: EnvOptions): string {
  const ctx = loadCliConfig(opts.config);
  const { config } = ctx;
  const shell = (opts.shell ?? 'sh') as Shell;
  if (!SHELLS.includes(shell)) throw new UsageError(`--shell: expected one of ${SHELLS.join(', ')}, got "${opts.shell}"`);
  const name = opts.profile ?? config.activeProfile;
  const profile = config.profiles.find((p) => p.name === name);
  if (!profile) throw new UsageError(`--profile: no profile named "${name}" (profiles: ${config.profiles.map((p) => p.name).join(', ')})`);
  const { ref, id } = keyReferenceFor(ctx, opts.key);
  const keyPin = config.keys.find((k) => k.id === id)?.profile;
  const gatewayUrl = localGatewayUrl(config);
  // A profile other than the one the key resolves to is reached through /profiles/<name>/.
  const env = claudeCodeEnv({ gatewayUrl, profile, pinInPath: name !== (keyPin ?? config.activeProfile) });
  if (opts.revealKey) {
    if (!('file' in ref)) throw new UsageError('--reveal-key: only the generated local key can be revealed; configured keys are yours already');
    return formatEnv(env, shell, { literal: readOrCreateLocalKey(config.dataDir) });
  }
  return formatEnv(env, shell, ref);
}
