// The gateway core with accounting off (no budgets, no rate limits, no audit log), for the "accounting on
// vs off" comparison. bench/run.mjs bundles this file with esbuild like dist/cli.js, so both run the same
// kind of code. Usage: node <bundle> <config.json>; prints "listening on http://127.0.0.1:<port>".
import fs from 'node:fs';
import { parseConfig } from '../src/core/config/validate.ts';
import { buildGateway } from '../src/core/gateway/build.ts';
import { KeyRing } from '../src/core/gateway/keys.ts';
import { EventOnlyAccountant, GatewayRuntime } from '../src/core/runtime.ts';

async function main() {
  const raw = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const config = parseConfig({ ...raw, listen: { host: '127.0.0.1', port: 0 } });
  const keys = new KeyRing();
  keys.add({ id: 'local', admin: true }, fs.readFileSync(`${config.dataDir}/gateway.key`, 'utf8').trim());
  const runtime = new GatewayRuntime({ config, keys, accountant: (rt) => new EventOnlyAccountant(rt) });
  const app = buildGateway({ runtime, listenHost: '127.0.0.1' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  console.log(`listening on http://127.0.0.1:${app.server.address().port}`);
  process.on('SIGTERM', () => process.exit(0));
}

void main();
