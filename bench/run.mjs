// npm run bench: direct vs through the gateway, in one process tree, interleaved, against the same local
// upstream. Reports added latency (p50/p99), added time to first and last byte on streams, throughput at
// 32 connections as % of direct, and the gateway's RSS. Writes bench/results.json.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const quick = process.argv.includes('--quick');
const SEQUENTIAL = quick ? 400 : 2000;
const STREAMS = quick ? 100 : 500;
const LOAD_MS = quick ? 2000 : 5000;
const CONNECTIONS = 32;

function startChild(args, env = {}) {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const m = /(?:listening on http:\/\/127\.0\.0\.1:)?(\d+)\s*\n/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}`)));
  });
}

function rssMb(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024;
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function claudeCodeBody() {
  // A real ~100 KB Claude Code request from the captured traffic, when available.
  const file = path.resolve(root, '../shared/claude-code-traffic/anthropic.jsonl');
  if (!fs.existsSync(file)) return undefined;
  let best;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const rec = JSON.parse(line);
    if (!rec.body?.messages) continue;
    const body = JSON.stringify({ ...rec.body, stream: false });
    if (!best || Math.abs(body.length - 100_000) < Math.abs(best.length - 100_000)) best = body;
  }
  return best;
}

const smallBody = JSON.stringify({
  model: 'claude-sonnet-4-5',
  max_tokens: 256,
  messages: [{ role: 'user', content: 'x'.repeat(880) }],
});

async function call(pool, pathname, headers, body) {
  const t0 = performance.now();
  const res = await pool.request({ path: pathname, method: 'POST', headers, body });
  let first;
  for await (const _chunk of res.body) {
    if (first === undefined) first = performance.now() - t0;
  }
  if (res.statusCode !== 200) throw new Error(`${pathname}: HTTP ${res.statusCode}`);
  return { total: performance.now() - t0, first };
}

/** Runs `n` sequential calls against each target, interleaved in blocks of 50 so drift hits both alike. */
async function sequential(targets, n, body) {
  const times = Object.fromEntries(targets.map((t) => [t.name, { total: [], first: [] }]));
  for (let done = 0; done < n; done += 50) {
    for (const t of targets) {
      for (let i = 0; i < 50; i++) {
        const r = await call(t.pool, t.path, t.headers, body);
        times[t.name].total.push(r.total);
        if (r.first !== undefined) times[t.name].first.push(r.first);
      }
    }
  }
  for (const v of Object.values(times)) {
    v.total.sort((a, b) => a - b);
    v.first.sort((a, b) => a - b);
  }
  return times;
}

async function throughput(t, body) {
  const end = performance.now() + LOAD_MS;
  let count = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < end) {
        await call(t.pool, t.path, t.headers, body);
        count++;
      }
    }),
  );
  return count / (LOAD_MS / 1000);
}

async function main() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-bench-'));
  const upstream = await startChild([path.join(here, 'upstream.mjs')]);
  const config = path.join(dataDir, 'config.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      dataDir,
      profiles: [{ name: 'bench', provider: 'anthropic', apiKey: 'sk-bench-provider-key', baseUrl: `http://127.0.0.1:${upstream.port}` }],
    }),
  );
  const gateway = await startChild([path.join(root, 'dist/cli.js'), 'serve', '--config', config, '--port', '0']);
  const key = fs.readFileSync(path.join(dataDir, 'gateway.key'), 'utf8').trim();
  const rssIdle = rssMb(gateway.child.pid);
  const mk = (name, port, pathname, headers) => ({ name, path: pathname, headers: { 'content-type': 'application/json', ...headers }, pool: new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS, pipelining: 1 }) });
  const targets = [
    mk('direct', upstream.port, '/v1/messages', { 'x-api-key': 'sk-bench-provider-key' }),
    mk('gateway /v1/messages', gateway.port, '/v1/messages', { authorization: `Bearer ${key}` }),
    mk('gateway /anthropic', gateway.port, '/anthropic/v1/messages', { authorization: `Bearer ${key}` }),
  ];
  // Warm up connections and JIT.
  await sequential(targets, 200, smallBody);

  const results = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, quick, rows: [] };
  const bigBody = claudeCodeBody();
  const bodies = [['1 KB', smallBody], ...(bigBody ? [[`${Math.round(bigBody.length / 1024)} KB Claude Code request`, bigBody]] : [])];
  for (const [label, body] of bodies) {
    const lat = await sequential(targets, SEQUENTIAL, body);
    const streamBody = body.replace(/\}$/, ',"stream":true}').replace('"stream":false,', '');
    const str = await sequential(targets, STREAMS, streamBody);
    const base = lat.direct;
    for (const t of targets.slice(1)) {
      results.rows.push({
        body: label,
        target: t.name,
        p50Ms: lat[t.name].total.length && pct(lat[t.name].total, 50),
        addedP50Ms: pct(lat[t.name].total, 50) - pct(base.total, 50),
        addedP99Ms: pct(lat[t.name].total, 99) - pct(base.total, 99),
        addedTtfbMs: pct(str[t.name].first, 50) - pct(str.direct.first, 50),
        addedLastByteMs: pct(str[t.name].total, 50) - pct(str.direct.total, 50),
      });
    }
  }
  const directRps = await throughput(targets[0], smallBody);
  const gatewayRps = await throughput(targets[1], smallBody);
  const rssLoad = rssMb(gateway.child.pid);
  results.throughput = { connections: CONNECTIONS, directRps, gatewayRps, percentOfDirect: (100 * gatewayRps) / directRps };
  results.rssMb = { idle: rssIdle, afterLoad: rssLoad };

  console.log('\nClaude Code Gateway benchmark (medians; "added" = gateway minus direct in the same run)\n');
  console.log('| body | target | added p50 ms | added p99 ms | added TTFB ms | added last byte ms |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of results.rows) {
    console.log(`| ${r.body} | ${r.target} | ${r.addedP50Ms.toFixed(3)} | ${r.addedP99Ms.toFixed(3)} | ${r.addedTtfbMs.toFixed(3)} | ${r.addedLastByteMs.toFixed(3)} |`);
  }
  console.log(`\nThroughput at ${CONNECTIONS} connections: direct ${directRps.toFixed(0)} req/s, gateway ${gatewayRps.toFixed(0)} req/s (${results.throughput.percentOfDirect.toFixed(1)} % of direct)`);
  console.log(`Gateway RSS: ${rssIdle.toFixed(1)} MB idle, ${rssLoad.toFixed(1)} MB after load\n`);
  fs.writeFileSync(path.join(here, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  for (const t of targets) await t.pool.close();
  gateway.child.kill('SIGTERM');
  upstream.child.kill('SIGTERM');
  fs.rmSync(dataDir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
