import { cliKeyRing, loadCliConfig } from './context';
import { parseDuration } from './duration';
import { UsageError } from './serve';
import { LOCAL_KEY_ID } from '../core/gateway/local-secrets';

export interface TokenOptions {
  config?: string;
  key?: string;
  ttl?: string;
}

/** `claude-code-gateway token`: a short-lived signed token the gateway accepts as the key, for apiKeyHelper. */
export function tokenCommand(opts: TokenOptions): string {
  const { config } = loadCliConfig(opts.config);
  const ring = cliKeyRing(config, { createLocalKey: config.keys.length === 0 });
  const id = opts.key ?? (config.keys.length ? config.keys.find((k) => !k.revoked)?.id : LOCAL_KEY_ID);
  if (!id || !ring.get(id)) {
    throw new UsageError(`--key: no key with id "${opts.key ?? ''}" (keys: ${config.keys.map((k) => k.id).join(', ') || LOCAL_KEY_ID})`);
  }
  if (ring.get(id)?.revoked) throw new UsageError(`--key: key "${id}" is revoked`);
  let ttl: number;
  try {
    ttl = parseDuration(opts.ttl ?? '1h', '--ttl');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return ring.issueToken(id, ttl);
}
