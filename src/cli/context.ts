import * as path from 'node:path';
import { configPathFor, loadConfigFile } from '../core/config/load';
import type { GatewayConfig } from '../core/config/validate';
import { envReferenceOf } from '../core/config/expand';
import type { KeyReference } from '../core/env';
import { KeyRing } from '../core/gateway/keys';
import { LOCAL_KEY_ID, localKeyPath, readOrCreateLocalKey, readOrCreateTokenSecret } from '../core/gateway/local-secrets';

/** What every CLI command starts from: the validated config and where it came from. */
export interface CliContext {
  config: GatewayConfig;
  file: string;
  created: boolean;
  isDefaultLocation: boolean;
}

export function loadCliConfig(flag: string | undefined): CliContext {
  const { file, isDefault } = configPathFor(flag);
  const loaded = loadConfigFile(file, { createIfMissing: isDefault });
  return { config: loaded.config, file, created: loaded.created, isDefaultLocation: isDefault };
}

/** The key ring of a CLI gateway: configured keys, or the generated local key when none are configured. */
export function cliKeyRing(config: GatewayConfig, opts: { createLocalKey: boolean }): KeyRing {
  const ring = KeyRing.fromConfig(config.keys, { tokenSecret: readOrCreateTokenSecret(config.dataDir) });
  if (config.keys.length === 0 && opts.createLocalKey) {
    ring.add({ id: LOCAL_KEY_ID, admin: true }, readOrCreateLocalKey(config.dataDir));
  }
  return ring;
}

/** How to run one of this CLI's commands again from a shell (for `$(… token …)` references and hints). */
export function selfCommand(ctx: CliContext, command: string): string {
  const script = process.argv[1] ?? 'claude-code-gateway';
  const base = path.basename(script) === 'claude-code-gateway' ? 'claude-code-gateway' : `node ${shellWord(path.resolve(script))}`;
  // --config belongs to each command, so it goes after the command's name.
  return ctx.isDefaultLocation ? `${base} ${command}` : `${base} ${command} --config ${shellWord(ctx.file)}`;
}

/** The URL a local client reaches the gateway of this config at (`listen`, with a wildcard host read as loopback). */
export function localGatewayUrl(config: GatewayConfig): string {
  const host = config.listen.host === '0.0.0.0' || config.listen.host === '::' ? '127.0.0.1' : config.listen.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.listen.port}`;
}

function shellWord(s: string): string {
  return /^[A-Za-z0-9_./~-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * How printed environments refer to a key without containing it: the generated key's file, the variable a
 * configured key comes from, or a short-lived token command for keys known only by their hash.
 */
export function keyReferenceFor(ctx: CliContext, keyId?: string): { ref: KeyReference; id: string } {
  const { config } = ctx;
  if (config.keys.length === 0) {
    if (keyId && keyId !== LOCAL_KEY_ID) throw new Error(`no key with id "${keyId}": no keys are configured, only the generated key "${LOCAL_KEY_ID}"`);
    return { ref: { file: localKeyPath(config.dataDir) }, id: LOCAL_KEY_ID };
  }
  const key = keyId ? config.keys.find((k) => k.id === keyId) : config.keys.find((k) => !k.revoked);
  if (!key) throw new Error(keyId ? `no key with id "${keyId}" in ${ctx.file}` : `every key in ${ctx.file} is revoked`);
  const variable = envReferenceOf(key.key);
  if (variable) return { ref: { envVar: variable }, id: key.id };
  return { ref: { command: selfCommand(ctx, `token --key ${key.id}`) }, id: key.id };
}
