// npm run bench: the gateway against the direct path, a minimal Node pass-through and Portkey's gateway, in
// one process tree, interleaved, against the same local upstream. Figures are differences and ratios against
// the direct baseline of the same run (machines here are shared and noisy). Writes bench/results.json and
// the table in bench/README.md. `--quick` runs fewer requests (for a smoke check, not for figures). `--runs N`
// (default 5, 1 with --quick) repeats the latency and throughput measurements and reports each figure's median
// over the runs, as the peer figures were taken.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const quick = process.argv.includes('--quick');
const SEQUENTIAL = quick ? 300 : 2000;
const STREAMS = quick ? 100 : 500;
const LOAD_MS = quick ? 2000 : 6000;
const LEAK_REQUESTS = quick ? 40_000 : 200_000;
const LEAK_MARK = 20_000;
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : quick ? 1 : 5;
const CONNECTIONS = 32;
const BLOCK = 25;
const children = [];
let underLoad = false;

function startChild(args, opts = {}) {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd ?? root });
  children.push(child);
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const m = /(?:http:\/\/127\.0\.0\.1:)?(\d+)\s*\n/.exec(out);
      if (m && !opts.port) resolve({ child, port: Number(m[1]) });
    });
    if (opts.port) waitForPort(opts.port).then(() => resolve({ child, port: opts.port }), reject);
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}: ${err.slice(-2000)}`)));
  });
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const ok = await new Promise((r) => {
      const sock = net.connect(port, '127.0.0.1', () => r(sock.end() || true)).on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} never opened`);
}

/** User + system CPU time of a process so far, in milliseconds. */
function cpuMs(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

function rssMb(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function claudeCodeBody() {
  const file = path.resolve(root, '../shared/claude-code-traffic/anthropic.jsonl');
  if (!fs.existsSync(file)) return undefined;
  let best;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const rec = JSON.parse(line);
    if (!rec.body?.messages) continue;
    const { stream: _s, ...body } = rec.body;
    const text = JSON.stringify(body);
    if (!best || Math.abs(text.length - 100_000) < Math.abs(best.length - 100_000)) best = text;
  }
  return best;
}

const SMALL = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 256, messages: [{ role: 'user', content: 'x'.repeat(880) }] });
const withStream = (body) => body.replace(/\}$/, ',"stream":true}');

async function call(t, streaming, body) {
  const t0 = performance.now();
  const res = await t.pool.request({ path: t.path(streaming), method: 'POST', headers: t.headers, body: t.body(body, streaming) });
  let first;
  for await (const _chunk of res.body) if (first === undefined) first = performance.now() - t0;
  if (res.statusCode !== 200) throw new Error(`${t.name}: HTTP ${res.statusCode}`);
  return { total: performance.now() - t0, first };
}

/** Sequential calls, interleaved across targets in blocks so drift and noise hit every target alike. */
async function sequential(targets, n, body, streaming) {
  const out = Object.fromEntries(targets.map((t) => [t.name, { total: [], first: [] }]));
  for (let done = 0; done < n; done += BLOCK) {
    for (const t of targets) {
      for (let i = 0; i < BLOCK; i++) {
        const r = await call(t, streaming, body);
        out[t.name].total.push(r.total);
        if (r.first !== undefined) out[t.name].first.push(r.first);
      }
    }
  }
  for (const v of Object.values(out)) {
    v.total.sort((a, b) => a - b);
    v.first.sort((a, b) => a - b);
  }
  return out;
}

async function load(t, { ms, requests, onProgress } = {}) {
  const end = ms ? performance.now() + ms : Infinity;
  let count = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < end && (requests === undefined || count < requests)) {
        count++;
        await call(t, false, SMALL);
        onProgress?.(count);
      }
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

function target(name, port, pathFor, headers, bodyFor = (b, s) => (s ? withStream(b) : b)) {
  return { name, port, path: pathFor, body: bodyFor, headers: { 'content-type': 'application/json', ...headers }, pool: new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS }) };
}

async function main() {
  const upstream = await startChild([path.join(here, 'upstream.mjs')]);
  const minimal = await startChild([path.join(here, 'minimal-proxy.mjs'), String(upstream.port)]);
  const up = `http://127.0.0.1:${upstream.port}`;

  const onDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-bench-on-'));
  const onConfig = path.join(onDir, 'config.json');
  fs.writeFileSync(
    onConfig,
    JSON.stringify({
      dataDir: onDir,
      profiles: [
        { name: 'bench', provider: 'anthropic', apiKey: 'sk-bench-provider-key', baseUrl: up },
        { name: 'bedrock', provider: 'bedrock', region: 'us-east-1', endpoint: up },
        { name: 'vertex', provider: 'vertex', projectId: 'bench-project', region: 'us-east5', credentials: 'client', endpoint: up },
      ],
      budgets: ['global', 'key:local', 'profile:bench'].map((scope) => ({ scope, usd: 1e9, period: 'day' })),
      rateLimits: [{ scope: 'global', requestsPerMinute: 1e9, tokensPerMinute: 1e12 }],
    }),
  );
  const gw = await startChild([path.join(root, 'dist/cli.js'), 'serve', '--config', onConfig, '--port', '0'], {
    env: { AWS_ACCESS_KEY_ID: 'AKIDBENCHEXAMPLE0000', AWS_SECRET_ACCESS_KEY: 'bench-secret-access-key', AWS_EC2_METADATA_DISABLED: 'true', AWS_PROFILE: '' },
  });
  const key = fs.readFileSync(path.join(onDir, 'gateway.key'), 'utf8').trim();

  const offDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-bench-off-'));
  const offConfig = path.join(offDir, 'config.json');
  fs.writeFileSync(offConfig, JSON.stringify({ dataDir: offDir, profiles: [{ name: 'bench', provider: 'anthropic', apiKey: 'sk-bench-provider-key', baseUrl: up }] }));
  fs.writeFileSync(path.join(offDir, 'gateway.key'), key);
  const offBundle = path.join(offDir, 'gateway-off.cjs');
  await esbuild.build({ entryPoints: [path.join(here, 'gateway-child.mjs')], bundle: true, platform: 'node', format: 'cjs', target: 'node20', outfile: offBundle, logLevel: 'error' });
  const gwOff = await startChild([offBundle, offConfig]);

  let portkey;
  try {
    const entry = createRequire(import.meta.url).resolve('@portkey-ai/gateway/build/start-server.js');
    const port = await freePort();
    portkey = await startChild([entry, `--port=${port}`, '--headless'], { port, env: { NODE_ENV: 'production' } });
  } catch (err) {
    console.error(`Portkey not measured: ${err.message.split('\n')[0]}`);
  }

  const auth = { authorization: `Bearer ${key}` };
  const anthropicPath = (p) => () => p;
  const bedrockPath = (prefix) => (s) => `${prefix}/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/${s ? 'invoke-with-response-stream' : 'invoke'}`;
  const vertexPath = (prefix) => (s) => `${prefix}/projects/bench-project/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:${s ? 'streamRawPredict' : 'rawPredict'}`;
  const plain = (b) => b;
  const families = {
    anthropic: [
      target('direct', upstream.port, anthropicPath('/v1/messages'), { 'x-api-key': 'sk-bench-provider-key' }),
      target('minimal Node pass-through', minimal.port, anthropicPath('/v1/messages'), { 'x-api-key': 'sk-bench-provider-key' }),
      target('gateway /v1/messages', gw.port, anthropicPath('/v1/messages'), auth),
      target('gateway /anthropic', gw.port, anthropicPath('/anthropic/v1/messages'), auth),
      target('gateway /v1/messages, accounting off', gwOff.port, anthropicPath('/v1/messages'), auth),
      ...(portkey ? [target('Portkey 1.15', portkey.port, anthropicPath('/v1/messages'), { 'x-portkey-provider': 'anthropic', 'x-portkey-custom-host': `${up}/v1`, 'x-api-key': 'sk-bench-provider-key' })] : []),
    ],
    bedrock: [
      target('direct (Bedrock)', upstream.port, bedrockPath(''), {}, plain),
      target('gateway /bedrock', gw.port, bedrockPath('/profiles/bedrock/bedrock'), auth, plain),
    ],
    vertex: [
      target('direct (Vertex)', upstream.port, vertexPath('/v1'), { authorization: 'Bearer ya29.bench' }, plain),
      target('gateway /vertex_ai', gw.port, vertexPath('/profiles/vertex/vertex_ai/v1'), { authorization: 'Bearer ya29.bench', 'proxy-authorization': `Bearer ${key}` }, plain),
    ],
  };
  const all = Object.values(families).flat();
  const rssIdle = rssMb(gw.child.pid);
  for (const fam of Object.values(families)) await sequential(fam.filter((t) => !t.name.startsWith('Portkey')), 200, SMALL, false);
  if (portkey) await sequential(families.anthropic.filter((t) => t.name.startsWith('Portkey')), 200, SMALL, false);

  const results = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, quick, runs: RUNS, latency: [], throughput: {}, rssMb: {} };
  const big = claudeCodeBody();
  const bodies = [['1 KB', SMALL], ...(big ? [[`${Math.round(big.length / 1024)} KB Claude Code request`, big]] : [])];
  const rssSamples = [];
  // RSS under load: sampled while the throughput targets are loaded.
  const sampler = setInterval(() => underLoad && rssSamples.push(rssMb(gw.child.pid)), 250);
  const pidOf = { [upstream.port]: upstream.child.pid, [minimal.port]: minimal.child.pid, [gw.port]: gw.child.pid, [gwOff.port]: gwOff.child.pid, ...(portkey ? { [portkey.port]: portkey.child.pid } : {}) };
  const runs = [];
  for (let run = 1; run <= RUNS; run++) {
    console.error(`run ${run} of ${RUNS}`);
    runs.push(await measure(families, bodies, pidOf));
  }
  clearInterval(sampler);
  // Each figure: its median over the runs.
  results.latency = runs[0].latency.map((row, i) => {
    const out = { ...row };
    for (const k of ['p50Ms', 'addedP50Ms', 'addedP99Ms', 'addedTtfbMs', 'addedLastByteMs']) out[k] = row[k] === null ? null : median(runs.map((r) => r.latency[i][k]));
    return out;
  });
  results.throughput = Object.fromEntries(
    Object.keys(runs[0].throughput).map((name) => [
      name,
      Object.fromEntries(['rps', 'percentOfDirect', 'percentOfMinimal', 'cpuUsPerRequest'].map((k) => [k, median(runs.map((r) => r.throughput[name][k]))])),
    ]),
  );

  // Leak check: RSS after the first 20,000 requests and after all of them.
  let rssAtMark;
  const gwTarget = families.anthropic[2];
  await load(gwTarget, { requests: LEAK_REQUESTS, onProgress: (n) => n === LEAK_MARK && (rssAtMark = rssMb(gw.child.pid)) });
  const rssAfter = rssMb(gw.child.pid);
  results.rssMb = { idle: rssIdle, peakUnderLoad: Math.max(...rssSamples), medianUnderLoad: median(rssSamples), after20k: rssAtMark, afterAll: rssAfter, requests: LEAK_REQUESTS, growthAfter20k: rssAfter - rssAtMark };

  print(results);
  fs.writeFileSync(path.join(here, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  if (!quick) writeReadmeTable(results);
  for (const t of all) await t.pool.close();
  for (const c of children) c.kill('SIGTERM');
  fs.rmSync(onDir, { recursive: true, force: true });
  fs.rmSync(offDir, { recursive: true, force: true });
}

/** One run: sequential latency and streaming timings for every body and family, then throughput at 32 connections. */
async function measure(families, bodies, pidOf) {
  const results = { latency: [], throughput: {} };
  for (const [label, body] of bodies) {
    for (const [family, targets] of Object.entries(families)) {
      const lat = await sequential(targets, SEQUENTIAL, body, false);
      // Portkey 1.15 fails every stream on Node 20 (TypeError: immutable headers); it is left out of streams.
      const streamTargets = targets.filter((t) => !t.name.startsWith('Portkey'));
      const str = await sequential(streamTargets, STREAMS, body, true);
      const base = targets[0].name;
      for (const t of targets.slice(1)) {
        const s = str[t.name];
        results.latency.push({
          body: label,
          family,
          target: t.name,
          p50Ms: pct(lat[t.name].total, 50),
          addedP50Ms: pct(lat[t.name].total, 50) - pct(lat[base].total, 50),
          addedP99Ms: pct(lat[t.name].total, 99) - pct(lat[base].total, 99),
          addedTtfbMs: s ? pct(s.first, 50) - pct(str[base].first, 50) : null,
          addedLastByteMs: s ? pct(s.total, 50) - pct(str[base].total, 50) : null,
        });
      }
    }
  }

  // CPU time the serving process spends per request is steadier than req/s on a shared machine.
  const tput = {};
  underLoad = true;
  const cpuPerRequest = {};
  for (const t of families.anthropic) {
    // A second of load first: the first target measured on a process otherwise pays for its heap growing.
    await load(t, { ms: 1000 });
    const pid = pidOf[t.port];
    const before = cpuMs(pid);
    const started = performance.now();
    tput[t.name] = await load(t, { ms: LOAD_MS });
    const requests = (tput[t.name] * (performance.now() - started)) / 1000;
    cpuPerRequest[t.name] = ((cpuMs(pid) - before) * 1000) / requests;
  }
  underLoad = false;
  const direct = tput.direct;
  const minimalRps = tput['minimal Node pass-through'];
  results.throughput = Object.fromEntries(
    Object.entries(tput).map(([name, rps]) => [name, { rps, percentOfDirect: (100 * rps) / direct, percentOfMinimal: (100 * rps) / minimalRps, cpuUsPerRequest: cpuPerRequest[name] }]),
  );
  return results;
}

function table(results) {
  const f = (x) => (x === null || x === undefined ? 'n/a' : x.toFixed(3));
  const lines = ['| body | target | p50 ms | added p50 ms | added p99 ms | added TTFB ms | added last byte ms |', '| --- | --- | --- | --- | --- | --- | --- |'];
  for (const r of results.latency) lines.push(`| ${r.body} | ${r.target} | ${f(r.p50Ms)} | ${f(r.addedP50Ms)} | ${f(r.addedP99Ms)} | ${f(r.addedTtfbMs)} | ${f(r.addedLastByteMs)} |`);
  lines.push('', `| target (${CONNECTIONS} connections, 1 KB, non-streaming) | req/s | % of direct | % of minimal pass-through | CPU µs per request (serving process) |`, '| --- | --- | --- | --- | --- |');
  for (const [name, t] of Object.entries(results.throughput)) lines.push(`| ${name} | ${t.rps.toFixed(0)} | ${t.percentOfDirect.toFixed(1)} | ${t.percentOfMinimal.toFixed(1)} | ${t.cpuUsPerRequest.toFixed(0)} |`);
  const m = results.rssMb;
  lines.push('', `Gateway RSS (accounting on): ${m.idle.toFixed(1)} MB idle, peak ${m.peakUnderLoad.toFixed(1)} MB under load, ${m.after20k.toFixed(1)} MB after 20,000 requests, ${m.afterAll.toFixed(1)} MB after ${m.requests.toLocaleString('en-US')} (growth ${m.growthAfter20k.toFixed(1)} MB).`);
  return lines.join('\n');
}

function print(results) {
  console.log(`\nClaude Code Gateway benchmark (${results.quick ? 'quick' : 'full'}; medians; "added" = target minus direct in the same run; each figure the median of ${results.runs} run(s))\n`);
  console.log(table(results));
}

function writeReadmeTable(results) {
  const file = path.join(here, 'README.md');
  const text = fs.readFileSync(file, 'utf8');
  const begin = '<!-- results:begin -->';
  const end = '<!-- results:end -->';
  const body = `${begin}\nLast full run: ${results.date}, Node ${results.node}, ${results.cpus} CPUs; each figure is the median of ${results.runs} runs.\n\n${table(results)}\n${end}`;
  fs.writeFileSync(file, text.includes(begin) ? text.replace(new RegExp(`${begin}[\\s\\S]*${end}`), body) : `${text}\n${body}\n`);
}

main().catch((err) => {
  console.error(err);
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
});
