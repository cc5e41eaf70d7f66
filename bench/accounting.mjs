// Accounting cost: added median latency with budgets + rate limits + the audit log on vs off, through real
// gateways against one local upstream (same process, requests interleaved), and the restart time for an
// audit log of 1,000,000 records. Run: node --import tsx bench/accounting.mjs [--quick]
// Writes bench/accounting-results.json.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { parseConfig } from '../src/core/config/validate.ts';
import { buildGateway } from '../src/core/gateway/build.ts';
import { KeyRing } from '../src/core/gateway/keys.ts';
import { EventOnlyAccountant, GatewayRuntime } from '../src/core/runtime.ts';
import { auditFileName, seal, GENESIS } from '../src/core/accounting/audit-files.ts';
import { verifyAudit } from '../src/core/accounting/audit-verify.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1500 : 6000;
const RECORDS = quick ? 100_000 : 1_000_000;
const KEY = 'ccgw-bench-key-0123456789abcdefghij';

const usage = { input_tokens: 25, output_tokens: 7, cache_creation_input_tokens: 100, cache_read_input_tokens: 2000, cache_creation: { ephemeral_5m_input_tokens: 60, ephemeral_1h_input_tokens: 40 } };
const reply = JSON.stringify({ id: 'msg_b', type: 'message', role: 'assistant', model: 'claude-opus-4-8', content: [{ type: 'text', text: 'pong' }], stop_reason: 'end_turn', usage });
const sse = [
  `event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { model: 'claude-opus-4-8', usage: { ...usage, output_tokens: 1 } } })}\n\n`,
  `event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'pong' } })}\n\n`,
  `event: message_delta\ndata: ${JSON.stringify({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 7 } })}\n\n`,
  `event: message_stop\ndata: {"type":"message_stop"}\n\n`,
].join('');

function startUpstream() {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const stream = Buffer.concat(chunks).includes('"stream":true');
      res.writeHead(200, { 'content-type': stream ? 'text/event-stream' : 'application/json' });
      res.end(stream ? sse : reply);
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

async function startGateway(upstreamUrl, accounting, dataDir) {
  const raw = {
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    profiles: [{ name: 'bench', provider: 'anthropic', apiKey: 'sk-ant-bench', baseUrl: upstreamUrl }],
    keys: [{ id: 'dev', key: KEY, team: 'red', project: 'web' }],
    ...(accounting
      ? {
          budgets: [
            { scope: 'global', usd: 1e9, period: 'month' },
            { scope: 'key:dev', usd: 1e9, period: 'day' },
            { scope: 'team:red', usd: 1e9, period: 'week' },
            { scope: 'profile:bench', usd: 1e9, period: 'day' },
          ],
          rateLimits: [
            { scope: 'global', requestsPerMinute: 1e8, tokensPerMinute: 1e12 },
            { scope: 'key:dev', requestsPerMinute: 1e8 },
          ],
        }
      : {}),
  };
  const config = parseConfig(raw);
  const keys = KeyRing.fromConfig(config.keys);
  const runtime = new GatewayRuntime({ config, keys, ...(accounting ? {} : { accountant: (rt) => new EventOnlyAccountant(rt) }) });
  const app = buildGateway({ runtime, listenHost: '127.0.0.1' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, runtime, origin: `http://127.0.0.1:${app.server.address().port}` };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const p99 = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length * 0.99)];
};

async function latencyBench() {
  const upstream = await startUpstream();
  const upstreamUrl = `http://127.0.0.1:${upstream.address().port}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-bench-acc-'));
  const off = await startGateway(upstreamUrl, false, path.join(dataDir, 'off'));
  const on = await startGateway(upstreamUrl, true, path.join(dataDir, 'on'));
  const agent = new Agent({ keepAliveTimeout: 60_000, connections: 4 });
  const rows = [];
  for (const stream of [false, true]) {
    const body = JSON.stringify({ model: 'claude-opus-4-8', max_tokens: 16, stream, messages: [{ role: 'user', content: 'say pong' }] });
    const once = async (origin, p) => {
      const t0 = performance.now();
      const res = await request(`${origin}${p}`, { method: 'POST', dispatcher: agent, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body });
      await res.body.text();
      return performance.now() - t0;
    };
    const targets = { direct: [upstreamUrl, '/v1/messages'], off: [off.origin, '/anthropic/v1/messages'], on: [on.origin, '/anthropic/v1/messages'] };
    const samples = { direct: [], off: [], on: [] };
    for (let i = 0; i < 300; i++) for (const k of Object.keys(targets)) await once(...targets[k]);
    for (let i = 0; i < ROUNDS; i++) {
      // Interleaved, with the order rotated, so drift (GC, CPU frequency) hits every target alike.
      const order = ['direct', 'off', 'on'];
      for (let r = 0; r < i % 3; r++) order.push(order.shift());
      for (const k of order) samples[k].push(await once(...targets[k]));
    }
    const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
    rows.push({
      body: stream ? 'SSE' : 'JSON',
      directP50Ms: m.direct,
      offP50Ms: m.off,
      onP50Ms: m.on,
      addedByAccountingP50Ms: m.on - m.off,
      ratioOnVsOff: m.on / m.off,
      ratioOffVsDirect: m.off / m.direct,
      onP99Ms: p99(samples.on),
      offP99Ms: p99(samples.off),
    });
  }
  const records = fs.readFileSync(fs.readdirSync(path.join(dataDir, 'on', 'audit')).filter((n) => n.endsWith('.jsonl')).map((n) => path.join(dataDir, 'on', 'audit', n))[0], 'utf8').split('\n').length - 1;
  await off.app.close();
  off.runtime.dispose();
  await on.app.close();
  on.runtime.dispose();
  await agent.close();
  upstream.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
  return { rows, auditRecordsWritten: records };
}

/** Writes `n` realistic call records (one hash chain) into today's file, as the gateway would. */
function writeLog(dir, n) {
  fs.mkdirSync(dir, { recursive: true });
  const now = Date.now();
  const t = new Date(now).toISOString();
  const fd = fs.openSync(path.join(dir, auditFileName(t.slice(0, 10))), 'w');
  let prev = GENESIS;
  let batch = [];
  for (let seq = 1; seq <= n; seq++) {
    const rec = {
      seq,
      t,
      type: 'call',
      id: `0b8f3c2e-5a7d-4c1e-9f2a-${String(seq).padStart(12, '0')}`,
      key: `dev${seq % 20}`,
      team: seq % 3 ? 'red' : 'blue',
      session: '6f1c2d3e-aaaa-bbbb-cccc-1234567890ab',
      profile: 'bench',
      provider: 'anthropic',
      route: 'anthropic',
      method: 'POST',
      path: '/anthropic/v1/messages',
      requestedModel: 'claude-opus-4-8',
      upstreamModel: 'claude-opus-4-8',
      responseModel: 'claude-opus-4-8',
      streaming: true,
      countTokens: false,
      status: 'ok',
      httpStatus: 200,
      upstreamStatus: 200,
      latencyMs: 1234.567,
      ttfbMs: 456.789,
      usage: { input: 25, output: 700, cacheWrite5m: 60, cacheWrite1h: 40, cacheRead: 20000 },
      costUsd: 0.0288,
      priceKnown: true,
      family: 'opus-4.5',
      stopReason: 'end_turn',
    };
    const { line, hash } = seal(rec, prev);
    prev = hash;
    batch.push(line);
    if (batch.length === 10_000) {
      fs.writeSync(fd, batch.join(''));
      batch = [];
    }
  }
  if (batch.length) fs.writeSync(fd, batch.join(''));
  fs.closeSync(fd);
}

async function restartBench() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-bench-restart-'));
  const auditDir = path.join(dataDir, 'audit');
  const t0 = performance.now();
  writeLog(auditDir, RECORDS);
  const writeMs = performance.now() - t0;
  const bytes = fs.readdirSync(auditDir).reduce((s, n) => s + fs.statSync(path.join(auditDir, n)).size, 0);
  const config = parseConfig({
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    profiles: [{ name: 'bench', provider: 'anthropic', apiKey: 'sk-ant-bench' }],
    budgets: [
      { scope: 'global', usd: 1e9, period: 'month' },
      { scope: 'team:red', usd: 1e9, period: 'week' },
      { scope: 'profile:bench', usd: 1e9, period: 'day' },
    ],
  });
  const t1 = performance.now();
  const runtime = new GatewayRuntime({ config, keys: new KeyRing() });
  const startMs = performance.now() - t1;
  const spent = runtime.budgets()[0].spentUsd;
  const rebuildMs = runtime.accountant.started.ms;
  // The usage index reads the month in the background (non-blocking, bounded chunks); then GET /usage answers from memory.
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  const s0 = performance.now();
  await runtime.accountant.usageIndex.seed();
  const usageSeedMs = performance.now() - s0;
  const q0 = performance.now();
  await runtime.accountant.usage({ since: Date.parse(new Date().toISOString().slice(0, 8) + '01T00:00:00Z'), by: 'key' });
  const usageFromMemoryMs = performance.now() - q0;
  delay.disable();
  const usageMaxLoopDelayMs = delay.max / 1e6;
  runtime.dispose();
  const t2 = performance.now();
  const v = verifyAudit(auditDir);
  const verifyMs = performance.now() - t2;
  fs.rmSync(dataDir, { recursive: true, force: true });
  return { records: RECORDS, bytes, writeMs, startMs, rebuildMs, usageSeedMs, usageFromMemoryMs, usageMaxLoopDelayMs, verifyMs, verifyIntact: v.intact, rebuiltSpendUsd: spent };
}

const latency = await latencyBench();
const restart = await restartBench();
const result = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, quick, rounds: ROUNDS, latency, restart };

console.log(`\nAccounting overhead (${ROUNDS} interleaved rounds, medians, ms)`);
console.table(
  latency.rows.map((r) => ({
    body: r.body,
    'direct p50': r.directP50Ms.toFixed(3),
    'gw off p50': r.offP50Ms.toFixed(3),
    'gw on p50': r.onP50Ms.toFixed(3),
    'added by accounting': r.addedByAccountingP50Ms.toFixed(3),
    'on/off': r.ratioOnVsOff.toFixed(3),
    'off/direct': r.ratioOffVsDirect.toFixed(3),
  })),
);
console.log(`Restart with ${restart.records.toLocaleString('en')} audit records (${(restart.bytes / 1e6).toFixed(0)} MB)`);
console.table([
  {
    'runtime start ms': restart.startMs.toFixed(0),
    'rebuild ms': restart.rebuildMs.toFixed(0),
    'usage seed ms (async)': restart.usageSeedMs.toFixed(0),
    'longest loop wait in it ms': restart.usageMaxLoopDelayMs.toFixed(1),
    'GET /usage from memory ms': restart.usageFromMemoryMs.toFixed(2),
    'verify ms': restart.verifyMs.toFixed(0),
    intact: restart.verifyIntact,
  },
]);
fs.writeFileSync(path.join(here, 'accounting-results.json'), JSON.stringify(result, null, 2) + '\n');
