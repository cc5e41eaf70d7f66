import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { SettledCall } from '../../src/core/gateway/call';
import { parseConfig, type GatewayConfig } from '../../src/core/config/validate';
import { buildGateway } from '../../src/core/gateway/build';
import { KeyRing, generateKey } from '../../src/core/gateway/keys';
import { GatewayRuntime, type RuntimeOptions } from '../../src/core/runtime';

export interface TestGateway {
  url: string;
  /** The generated admin key "test". */
  key: string;
  runtime: GatewayRuntime;
  app: FastifyInstance;
  config: GatewayConfig;
  dataDir: string;
  /** The audit log folder (`<dataDir>/audit` unless the config says otherwise). */
  auditDir: string;
  close(): Promise<void>;
}

export interface StartOptions extends Partial<Pick<RuntimeOptions, 'secrets' | 'env' | 'accountant'>> {
  /** Reuse this data folder (a restart); it is then left in place on close. */
  dataDir?: string;
  /** Leave the data folder in place on close (to restart on it). */
  keepDataDir?: boolean;
}

/** Starts a real gateway on 127.0.0.1:0 with the given raw config (profiles etc.) and one key "test". */
export async function startGateway(raw: Record<string, unknown>, opts: StartOptions = {}): Promise<TestGateway> {
  const ownDir = opts.dataDir === undefined && !opts.keepDataDir;
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-test-'));
  const config = parseConfig({ dataDir, ...raw, listen: { host: '127.0.0.1', port: 0 } }, { env: opts.env });
  const keys = KeyRing.fromConfig(config.keys, { env: opts.env, tokenSecret: Buffer.from('test-token-secret-0123456789abcdef') });
  const key = generateKey();
  keys.add({ id: 'test', admin: true }, key);
  // The real accountant by default: every integration test exercises budgets, limits and the audit log.
  const runtime = new GatewayRuntime({ config, keys, secrets: opts.secrets, env: opts.env, accountant: opts.accountant });
  const app = buildGateway({ runtime, listenHost: '127.0.0.1' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    key,
    runtime,
    app,
    config,
    dataDir,
    auditDir: config.audit.dir,
    async close() {
      await app.close();
      runtime.dispose();
      if (ownDir) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The next call the gateway settles (subscribe before making the call). */
export function nextSettled(gw: TestGateway): Promise<SettledCall> {
  return new Promise((resolve) => {
    const sub = gw.runtime.onDidSettleCall((c) => {
      sub.dispose();
      resolve(c);
    });
  });
}

/** The URL a gateway CLI child prints on its first line ("listening on http://…"); rejects with its stderr if it exits first. */
export function listeningUrl(child: ChildProcess): Promise<string> {
  let stderr = '';
  child.stderr?.on('data', (c) => (stderr += c));
  return new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c) => {
      out += c;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code}: ${stderr}`)));
  });
}

/** A gateway `serve` command running in a child process. */
export interface ServedChild {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/**
 * Runs a command that serves the gateway (`node dist/cli.js serve …`, or a command line the CLI printed) and
 * resolves once stdout has the address line first and the environment lines after it.
 */
export function startServing(command: string, args: string[], env: Record<string, string | undefined>): Promise<ServedChild> {
  const child = spawn(command, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.stderr!.on('data', (c) => (err += c));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (c) => {
      out += c;
      const m = /^Claude Code Gateway listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(out.split('\n')[0]);
      if (m && out.endsWith('\n') && out.split('\n').length > 3) resolve({ child, url: m[1], stdout: () => out, stderr: () => err, exited });
    });
    void exited.then((code) => reject(new Error(`the gateway exited with ${code}: ${err}`)));
  });
}
