// npm run bench:store: the file store against the PostgreSQL store, both through `node dist/cli.js serve` with
// budgets and a rate limit configured (so every call goes through the store's admission path) and the audit log
// on, plus the minimal Node pass-through as the floor, against the same local upstream. The PostgreSQL cluster is
// a throwaway one (initdb + pg_ctl, as the `postgres` user when root, 127.0.0.1 and a free port) with fsync left
// on, as a real one would run. Each run measures, interleaved: added p50 latency over the direct path
// (sequential calls in blocks of 25 per target) and, at 32 connections, CPU per call of the serving process
// (utime + stime from /proc/<pid>/stat; for the PostgreSQL store also the cluster's own processes, shown apart,
// not in the ratio) and p50 latency under that load. Figures are medians over the runs
// (`--runs N`, default 5). Prints pg vs file ratios against the goals: +0.1 ms added p50, +30 % CPU per call.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Pool } from 'undici';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;
const SEQUENTIAL = 1000;
const LOAD_MS = 4000;
const CONNECTIONS = 32;
const BLOCK = 25;
const GOAL_ADDED_P50_MS = 0.1;
const GOAL_CPU_RATIO = 1.3;
const children = [];
let pg;

function startChild(args, env = {}) {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd: os.tmpdir() });
  children.push(child);
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const m = /(?:http:\/\/127\.0\.0\.1:)?(\d+)\s*\n/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
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

/** A throwaway cluster as test/helpers/postgres.ts makes one, but with fsync on (a bench, not a test). */
async function startPostgres() {
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (!versions.length) throw new Error('PostgreSQL is not installed (as root: apt-get install -y postgresql).');
  const bin = path.join(base, versions[0], 'bin');
  const asRoot = process.getuid?.() === 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-bench-pg-'));
  const data = path.join(dir, 'data');
  if (asRoot) {
    const id = (flag) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
    fs.chownSync(dir, id('-u'), id('-g'));
  }
  const as = (cmd, args) => (asRoot ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args));
  // --no-sync only skips initdb's own flush of the new folder; the server below runs with fsync on.
  await as(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8']);
  const port = await freePort();
  const options = `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${dir} -c max_connections=200`;
  await as(path.join(bin, 'pg_ctl'), ['start', '-w', '-t', '60', '-D', data, '-l', path.join(dir, 'server.log'), '-o', options]);
  const pid = Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  await run(path.join(bin, 'psql'), ['-X', '-q', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', 'CREATE DATABASE ccgw_bench']);
  return {
    pid,
    url: `postgres://postgres@127.0.0.1:${port}/ccgw_bench`,
    async destroy() {
      // pg_ctl stop signals this cluster's postmaster (the pid in its own postmaster.pid) and waits for it.
      if (fs.existsSync(path.join(data, 'postmaster.pid'))) await as(path.join(bin, 'pg_ctl'), ['stop', '-w', '-m', 'fast', '-D', data]).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** User + system CPU time of a process so far, in milliseconds. */
function cpuMs(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** CPU of the whole cluster (postmaster and its backends, walwriter, checkpointer...), in milliseconds. */
function pgCpuMs() {
  let total = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let fields;
    try {
      fields = fs.readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ');
    } catch {
      continue;
    }
    if (Number(d) === pg.pid || Number(fields[1]) === pg.pid) total += ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  }
  return total;
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const BODY = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 256, messages: [{ role: 'user', content: 'x'.repeat(880) }] });

async function call(t) {
  const t0 = performance.now();
  const res = await t.pool.request({ path: '/v1/messages', method: 'POST', headers: t.headers, body: BODY });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`${t.name}: HTTP ${res.statusCode}`);
  return performance.now() - t0;
}

/** Sequential calls, interleaved across targets in blocks so drift and noise hit every target alike. */
async function sequential(targets, n) {
  const out = Object.fromEntries(targets.map((t) => [t.name, []]));
  for (let done = 0; done < n; done += BLOCK) for (const t of targets) for (let i = 0; i < BLOCK; i++) out[t.name].push(await call(t));
  for (const v of Object.values(out)) v.sort((a, b) => a - b);
  return out;
}

/** 32 connections for `ms`: calls, CPU per call of the serving process, p50 latency under load. */
async function load(t, ms) {
  const times = [];
  const before = cpuMs(t.pid);
  const pgBefore = t.pg ? pgCpuMs() : 0;
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < end) times.push(await call(t));
    }),
  );
  const cpuUs = ((cpuMs(t.pid) - before) * 1000) / times.length;
  const pgUs = t.pg ? ((pgCpuMs() - pgBefore) * 1000) / times.length : 0;
  times.sort((a, b) => a - b);
  return { calls: times.length, cpuUsPerCall: cpuUs, pgCpuUsPerCall: pgUs, loadP50Ms: pct(times, 50) };
}

function target(name, port, pid, headers) {
  return { name, port, pid, headers: { 'content-type': 'application/json', ...headers }, pool: new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS }) };
}

async function main() {
  const upstream = await startChild([path.join(here, 'upstream.mjs')]);
  const minimal = await startChild([path.join(here, 'minimal-proxy.mjs'), String(upstream.port)]);
  const up = `http://127.0.0.1:${upstream.port}`;
  pg = await startPostgres();
  const key = `ccgw-${randomBytes(24).toString('base64url')}`;
  const dirs = [];
  const gateway = async (store) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ccgw-bench-store-${store ? 'pg' : 'file'}-`));
    dirs.push(dir);
    const config = path.join(dir, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        dataDir: dir,
        logLevel: 'warn',
        profiles: [{ name: 'bench', provider: 'anthropic', apiKey: 'sk-bench-provider-key', baseUrl: up }],
        keys: [{ id: 'bench', key }],
        budgets: ['global', 'key:bench', 'profile:bench'].map((scope) => ({ scope, usd: 1e9, period: 'day' })),
        rateLimits: [{ scope: 'global', requestsPerMinute: 1e9, tokensPerMinute: 1e12 }],
        ...(store ? { store } : {}),
      }),
    );
    return startChild([path.join(root, 'dist/cli.js'), 'serve', '--config', config, '--port', '0']);
  };
  const gwFile = await gateway(undefined);
  const gwPg = await gateway({ kind: 'postgres', url: pg.url });
  const auth = { authorization: `Bearer ${key}` };
  const direct = target('direct', upstream.port, upstream.child.pid, { 'x-api-key': 'sk-bench-provider-key' });
  const min = target('minimal Node pass-through', minimal.port, minimal.child.pid, { 'x-api-key': 'sk-bench-provider-key' });
  const file = target('gateway, file store', gwFile.port, gwFile.child.pid, auth);
  const pgT = { ...target('gateway, PostgreSQL store', gwPg.port, gwPg.child.pid, auth), pg: true };
  const targets = [direct, min, file, pgT];

  // Warm-up: JIT, connection pools, the PostgreSQL slices and the page cache.
  await sequential(targets, 200);
  for (const t of [min, file, pgT]) await load(t, 1000);

  const runs = [];
  for (let r = 1; r <= RUNS; r++) {
    console.error(`run ${r} of ${RUNS}`);
    const lat = await sequential(targets, SEQUENTIAL);
    const base = pct(lat.direct, 50);
    const one = {};
    // Load in the order file, pg (then the floor), each run; every run interleaves the two stores.
    for (const t of [file, pgT, min]) {
      const l = await load(t, LOAD_MS);
      one[t.name] = { p50Ms: pct(lat[t.name], 50), addedP50Ms: pct(lat[t.name], 50) - base, addedP99Ms: pct(lat[t.name], 99) - pct(lat.direct, 99), ...l, rps: l.calls / (LOAD_MS / 1000) };
    }
    runs.push(one);
    console.error(`  added p50 ms: file ${one[file.name].addedP50Ms.toFixed(3)}, pg ${one[pgT.name].addedP50Ms.toFixed(3)}; CPU µs/call: file ${one[file.name].cpuUsPerCall.toFixed(0)}, pg ${one[pgT.name].cpuUsPerCall.toFixed(0)}`);
  }
  const keys = ['p50Ms', 'addedP50Ms', 'addedP99Ms', 'rps', 'cpuUsPerCall', 'pgCpuUsPerCall', 'loadP50Ms'];
  const med = Object.fromEntries([min, file, pgT].map((t) => [t.name, Object.fromEntries(keys.map((k) => [k, median(runs.map((x) => x[t.name][k]))]))]));
  // The ratios are taken run by run (the two stores measured side by side), then their median.
  const addedDelta = median(runs.map((x) => x[pgT.name].addedP50Ms - x[file.name].addedP50Ms));
  const cpuRatio = median(runs.map((x) => x[pgT.name].cpuUsPerCall / x[file.name].cpuUsPerCall));

  const f = (n, d = 3) => n.toFixed(d);
  const lines = [
    `| target (1 KB, non-streaming) | p50 ms | added p50 ms | added p99 ms | req/s at ${CONNECTIONS} conn. | p50 ms at ${CONNECTIONS} conn. | CPU µs per call (gateway) | CPU µs per call (PostgreSQL server) |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...Object.entries(med).map(([name, m]) => `| ${name} | ${f(m.p50Ms)} | ${f(m.addedP50Ms)} | ${f(m.addedP99Ms)} | ${f(m.rps, 0)} | ${f(m.loadP50Ms)} | ${f(m.cpuUsPerCall, 0)} | ${m.pgCpuUsPerCall ? f(m.pgCpuUsPerCall, 0) : ''} |`),
  ];
  console.log(`\nFile store vs PostgreSQL store (${new Date().toISOString()}, Node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; medians of ${RUNS} runs)\n`);
  console.log(lines.join('\n'));
  console.log(`\npg vs file, added p50: ${addedDelta >= 0 ? '+' : ''}${f(addedDelta)} ms (goal +${GOAL_ADDED_P50_MS} ms at most: ${addedDelta <= GOAL_ADDED_P50_MS ? 'met' : 'missed'})`);
  console.log(`pg vs file, CPU per call: x${f(cpuRatio, 3)} (${cpuRatio >= 1 ? '+' : ''}${f((cpuRatio - 1) * 100, 1)} %; goal +${f((GOAL_CPU_RATIO - 1) * 100, 0)} % at most: ${cpuRatio <= GOAL_CPU_RATIO ? 'met' : 'missed'})`);
  console.log(`per run, pg - file added p50 ms: ${runs.map((x) => f(x[pgT.name].addedP50Ms - x[file.name].addedP50Ms)).join(', ')}; pg / file CPU: ${runs.map((x) => f(x[pgT.name].cpuUsPerCall / x[file.name].cpuUsPerCall, 2)).join(', ')}`);

  for (const t of targets) await t.pool.close();
  await stopAll();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
}

/** Stops the children this script started (by their pids: the gateways first, so they write their stop record) and the cluster. */
async function stopAll() {
  for (const c of children.slice().reverse()) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const exited = new Promise((r) => c.once('exit', r));
    process.kill(c.pid, 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGKILL');
  }
  await pg?.destroy();
}

main().catch(async (err) => {
  console.error(err);
  await stopAll().catch(() => undefined);
  process.exit(1);
});
