import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
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
  close(): Promise<void>;
}

/** Starts a real gateway on 127.0.0.1:0 with the given raw config (profiles etc.) and one key "test". */
export async function startGateway(raw: Record<string, unknown>, opts: Partial<Pick<RuntimeOptions, 'secrets' | 'env' | 'accountant'>> = {}): Promise<TestGateway> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-test-'));
  const config = parseConfig({ dataDir, ...raw, listen: { host: '127.0.0.1', port: 0 } }, { env: opts.env });
  const keys = KeyRing.fromConfig(config.keys, { env: opts.env, tokenSecret: Buffer.from('test-token-secret-0123456789abcdef') });
  const key = generateKey();
  keys.add({ id: 'test', admin: true }, key);
  const runtime = new GatewayRuntime({ config, keys, ...opts });
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
    async close() {
      await app.close();
      runtime.dispose();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
