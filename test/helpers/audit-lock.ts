import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestGateway } from './gateway';

const CLI = path.resolve(__dirname, '../../dist/cli.js');

/**
 * Writes `config` to `file` and runs the built CLI's `serve` on it (port 0) until it exits, at most 20 s, with only PATH
 * and HOME in its environment: for a start that is refused.
 */
export function serveToExit(file: string, config: Record<string, unknown>, home: string): SpawnSyncReturns<string> {
  fs.writeFileSync(file, JSON.stringify(config));
  return spawnSync(process.execPath, [CLI, 'serve', '-c', file, '--port', '0'], { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH ?? '', HOME: home } });
}

/** One small Messages call on the gateway's unified route. */
export function postMessage(gw: TestGateway): Promise<Response> {
  return fetch(`${gw.url}/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${gw.key}` }, body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 5, messages: [] }) });
}
