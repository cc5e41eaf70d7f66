// Where the gateway spends its CPU under load: runs dist/cli.js with --cpu-prof against bench/upstream.mjs,
// drives 32 connections of 1 KB non-streaming calls for a few seconds, and prints self time by function and
// by source (our files, each dependency, Node internals). Not a benchmark: a guide for what to optimise.
// Usage: node bench/profile.mjs [--path /v1/messages | /profiles/bedrock/bedrock/model/<id>/invoke] [--seconds 8] [--accounting off|none] (off: no budgets or rate limits,
// the audit log stays on; none: the core with no accountant at all, as the bench's "accounting off") [--stream] [--top 40]
// [--no-prof] [--node-flags '--max-semi-space-size=8'] [--connections 32] [--cli path/to/cli.js] (another build, for an A/B) [--minimal] (the minimal Node pass-through instead, for comparison) [--perf] (also `perf record` the process:
// then `perf report -i /tmp/ccgw-perf.data --no-children --sort sym`)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const urlPath = arg('path', '/v1/messages');
const seconds = Number(arg('seconds', '8'));
const accountingArg = arg('accounting', 'on');
const accounting = accountingArg === 'on';
const top = Number(arg('top', '40'));
const connections = Number(arg('connections', '32'));
const streaming = process.argv.includes('--stream');

function start(args, env = {}) {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'], cwd: os.tmpdir() });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const m = /(?:http:\/\/127\.0\.0\.1:)?(\d+)\s*\n/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}`)));
  });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-profile-'));
const upstream = await start([path.join(here, 'upstream.mjs')]);
const up = `http://127.0.0.1:${upstream.port}`;
fs.writeFileSync(
  path.join(dir, 'config.json'),
  JSON.stringify({
    dataDir: dir,
    profiles: [
      { name: 'bench', provider: 'anthropic', apiKey: 'sk-bench-provider-key', baseUrl: up },
      { name: 'bedrock', provider: 'bedrock', region: 'us-east-1', endpoint: up },
    ],
    ...(accounting
      ? {
          budgets: ['global', 'key:local', 'profile:bench'].map((scope) => ({ scope, usd: 1e9, period: 'day' })),
          rateLimits: [{ scope: 'global', requestsPerMinute: 1e9, tokensPerMinute: 1e12 }],
        }
      : {}),
  }),
);
const profDir = path.join(dir, 'prof');
const minimal = process.argv.includes('--minimal');
let entry = [path.resolve(arg('cli', path.join(root, 'dist/cli.js'))), 'serve', '--config', path.join(dir, 'config.json'), '--port', '0'];
if (minimal) entry = [path.join(here, 'minimal-proxy.mjs'), String(upstream.port)];
else if (accountingArg === 'none') {
  const { build } = await import('esbuild');
  const bundle = path.join(dir, 'gateway-none.cjs');
  await build({ entryPoints: [path.join(here, 'gateway-child.mjs')], bundle: true, platform: 'node', format: 'cjs', target: 'node20', outfile: bundle, logLevel: 'error' });
  const { randomBytes } = await import('node:crypto');
  fs.writeFileSync(path.join(dir, 'gateway.key'), `ccgw-${randomBytes(24).toString('base64url')}\n`);
  entry = [bundle, path.join(dir, 'config.json')];
}
const perf = process.argv.includes('--perf');
const awsEnv = { AWS_ACCESS_KEY_ID: 'AKIDBENCHEXAMPLE0000', AWS_SECRET_ACCESS_KEY: 'bench-secret-access-key', AWS_EC2_METADATA_DISABLED: 'true', AWS_PROFILE: '' };
// --no-prof: CPU per call and RSS only (the profiler's own cost is large when calls are few, as with --connections 1).
const noProf = process.argv.includes('--no-prof');
const nodeFlags = (arg('node-flags', '') || '').split(' ').filter(Boolean);
const gw = await start([...nodeFlags, ...(perf ? ['--perf-basic-prof'] : []), ...(noProf ? [] : ['--cpu-prof', '--cpu-prof-dir', profDir]), ...entry], awsEnv);
// --perf: Linux perf samples on-CPU time only (kernel included), where the V8 profiler samples wall time, so
// time spent preempted inside a syscall does not show up as that syscall's cost.
const perfRecord = perf ? spawn('perf', ['record', '-F', '2000', '-g', '-o', path.join(os.tmpdir(), 'ccgw-perf.data'), '-p', String(gw.child.pid)], { stdio: 'ignore' }) : undefined;
const key = minimal ? 'none' : fs.readFileSync(path.join(dir, 'gateway.key'), 'utf8').trim();
const pool = new Pool(`http://127.0.0.1:${gw.port}`, { connections });
const body = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 256, messages: [{ role: 'user', content: 'x'.repeat(880) }], ...(streaming ? { stream: true } : {}) });
const cpu = () => {
  const f = fs.readFileSync(`/proc/${gw.child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { user: Number(f[11]) * 10, sys: Number(f[12]) * 10 };
};
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${gw.child.pid}/status`, 'utf8'))[1]) / 1024;
const rssIdle = rss();
let rssPeak = rssIdle;
const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rss())), 100);
const cpu0 = cpu();
const end = performance.now() + seconds * 1000;
let count = 0;
let failures = 0;
await Promise.all(
  Array.from({ length: connections }, async () => {
    while (performance.now() < end) {
      const res = await pool.request({ path: urlPath, method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body });
      await res.body.text();
      if (res.statusCode !== 200) failures++;
      count++;
    }
  }),
);
const cpu1 = cpu();
clearInterval(sampler);
if (perfRecord) {
  perfRecord.kill('SIGINT');
  await new Promise((r) => perfRecord.on('exit', r));
}
await pool.close();
const perCall = (ms) => ((ms * 1000) / count).toFixed(0);
console.log(`${count} calls in ${seconds} s (${(count / seconds).toFixed(0)}/s), ${failures} failed; CPU per call ${perCall(cpu1.user + cpu1.sys - cpu0.user - cpu0.sys)} µs (user ${perCall(cpu1.user - cpu0.user)}, system ${perCall(cpu1.sys - cpu0.sys)}); RSS ${rssIdle.toFixed(0)} MB idle, ${rssPeak.toFixed(0)} MB peak`);
gw.child.kill('SIGTERM');
await new Promise((r) => gw.child.on('exit', r));
upstream.child.kill('SIGTERM');

if (noProf) process.exit(0);
const file = fs.readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
const prof = JSON.parse(fs.readFileSync(path.join(profDir, file), 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = prof.timeDeltas;
for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (dt[i] ?? 0));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const fns = new Map();
const sources = new Map();
const sourceOf = (url) => {
  if (!url) return '(native/gc/idle)';
  if (url.startsWith('node:')) return 'node internals';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (!url.startsWith('file:') && !url.startsWith('/')) return url.split(':')[0];
  return path.relative(root, fileURLToPath(url.startsWith('file:') ? url : `file://${url}`));
};
for (const [id, t] of self) {
  const n = byId.get(id).callFrame;
  const k = `${n.functionName || '(anonymous)'} ${n.url ? `${path.basename(n.url)}:${n.lineNumber + 1}` : ''}`;
  fns.set(k, (fns.get(k) ?? 0) + t);
  const s = n.functionName === '(idle)' ? '(idle)' : n.functionName === '(garbage collector)' ? '(gc)' : n.functionName === '(program)' ? '(program)' : sourceOf(n.url);
  sources.set(s, (sources.get(s) ?? 0) + t);
}
const busy = total - (sources.get('(idle)') ?? 0);
const show = (m, n) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, t]) => `${((100 * t) / busy).toFixed(1).padStart(5)} %  ${(t / count).toFixed(1).padStart(6)} µs/call  ${k}`)
    .join('\n');
console.log(`\nbusy ${(busy / 1000).toFixed(0)} ms = ${(busy / count).toFixed(0)} µs per call (percentages of busy time)\n\nby source:\n${show(sources, 25)}\n\nby function (self):\n${show(fns, top)}`);
fs.copyFileSync(path.join(profDir, file), path.join(os.tmpdir(), 'ccgw-last.cpuprofile'));
fs.rmSync(dir, { recursive: true, force: true });
console.log(`\nprofile kept at ${path.join(os.tmpdir(), 'ccgw-last.cpuprofile')}`);
