// Soak: SOAK_MINUTES (default 10) of mixed streaming and non-streaming traffic through every route of one gateway
// (dist/cli.js, accounting on: budgets, rate limits, audit log) against local upstreams (bench/upstream.mjs),
// each gateway call paired with the same call made directly to the upstream. Reports errors (goal 0), the added latency
// per minute (gateway minus direct, paired, p50/p99) and the gateway's RSS per minute (goal: flat); writes
// bench/soak-results.json and prints a table. Not part of `npm test`: `npm run soak`.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const CLI = path.join(root, 'dist/cli.js');
const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const RATE = Number(process.env.SOAK_RPS ?? 150); // gateway calls per second (each with its direct twin)
const WORKERS = Number(process.env.SOAK_WORKERS ?? 16);
const KEY = 'ccgw-soak-key-0123456789abcdef0123456789';

function startChild(args, env) {
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out) ?? /^(\d+)\n/.exec(out);
      if (m) resolve({ child, url: m[1].startsWith('http') ? m[1] : `http://127.0.0.1:${m[1]}` });
    });
    child.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}`)));
  });
}

function rssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function pct(values, p) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const round = (n, d = 3) => (Number.isFinite(n) ? Math.round(n * 10 ** d) / 10 ** d : null);

async function main() {
  if (!fs.existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build` (npm run soak does)');
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-soak-'));
  const upstream = await startChild([path.join(here, 'upstream.mjs')], { PATH: process.env.PATH });
  // Local credentials: static AWS keys in a shared credentials file, and a workload-identity file whose token_url is local.
  fs.writeFileSync(path.join(home, 'aws-credentials'), '[soak]\naws_access_key_id = AKIDSOAKTEST00000001\naws_secret_access_key = soak/secret/key/000000000000000000000000\n');
  fs.writeFileSync(path.join(home, 'aws-config'), '[profile soak]\nregion = us-east-1\n');
  fs.writeFileSync(path.join(home, 'subject-token'), 'soak-subject-token');
  fs.writeFileSync(
    path.join(home, 'google.json'),
    JSON.stringify({
      type: 'external_account',
      audience: '//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/soak/providers/soak',
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_url: `${upstream.url}/sts/v1/token`,
      credential_source: { file: path.join(home, 'subject-token') },
    }),
  );
  const config = path.join(home, 'config.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      dataDir: path.join(home, 'data'),
      activeProfile: 'anthropic',
      profiles: [
        { name: 'anthropic', provider: 'anthropic', apiKey: 'sk-ant-soak', baseUrl: upstream.url },
        { name: 'bedrock', provider: 'bedrock', region: 'us-east-1', awsProfile: 'soak', endpoint: upstream.url },
        { name: 'bedrock-unified', provider: 'bedrock', mode: 'unified', region: 'us-east-1', awsProfile: 'soak', endpoint: upstream.url },
        { name: 'vertex', provider: 'vertex', projectId: 'soak-proj', region: 'us-east5', keyFile: path.join(home, 'google.json'), endpoint: upstream.url },
      ],
      keys: [{ id: 'soak', key: KEY, team: 'bench' }],
      budgets: [{ scope: 'global', usd: 1e9, period: 'month' }, { scope: 'team:bench', usd: 1e9, period: 'day' }],
      rateLimits: [{ scope: 'key:soak', requestsPerMinute: 1e8, tokensPerMinute: 1e12 }],
    }),
  );
  const gateway = await startChild([CLI, 'serve', '-c', config, '--port', '0'], {
    PATH: process.env.PATH,
    HOME: home,
    AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'aws-credentials'),
    AWS_CONFIG_FILE: path.join(home, 'aws-config'),
  });

  const messages = (stream) => JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 16, stream, messages: [{ role: 'user', content: 'soak' }] });
  const bedrockBody = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 16, messages: [{ role: 'user', content: 'soak' }] });
  const vertexBody = JSON.stringify({ anthropic_version: 'vertex-2023-10-16', max_tokens: 16, messages: [{ role: 'user', content: 'soak' }] });
  const bedrockModel = '/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0';
  const vertexModel = '/v1/projects/soak-proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929';
  const sseDone = (t) => t.includes('event: message_stop');
  const jsonDone = (t) => t.includes('"usage"');
  const eventStreamDone = (t) => t.includes(Buffer.from(JSON.stringify({ type: 'message_stop' })).toString('base64'));
  // [name, gateway path, direct path, body, complete?, direct complete? (when the upstream speaks another format)]
  const kinds = [
    ['unified json', '/v1/messages', '/v1/messages', messages(false), jsonDone],
    ['unified sse', '/v1/messages', '/v1/messages', messages(true), sseDone],
    ['anthropic json', '/anthropic/v1/messages', '/v1/messages', messages(false), jsonDone],
    ['anthropic sse', '/anthropic/v1/messages', '/v1/messages', messages(true), sseDone],
    ['bedrock json', `/profiles/bedrock/bedrock${bedrockModel}/invoke`, `${bedrockModel}/invoke`, bedrockBody, jsonDone],
    ['bedrock event-stream', `/profiles/bedrock/bedrock${bedrockModel}/invoke-with-response-stream`, `${bedrockModel}/invoke-with-response-stream`, bedrockBody, eventStreamDone],
    ['bedrock unified sse', '/profiles/bedrock-unified/v1/messages', `${bedrockModel}/invoke-with-response-stream`, messages(true), sseDone, eventStreamDone],
    ['vertex json', `/profiles/vertex/vertex_ai${vertexModel}:rawPredict`, `${vertexModel}:rawPredict`, vertexBody, jsonDone],
    ['vertex sse', `/profiles/vertex/vertex_ai${vertexModel}:streamRawPredict`, `${vertexModel}:streamRawPredict`, vertexBody, sseDone],
  ];

  const toGateway = new Agent({ connections: WORKERS * 2, keepAliveTimeout: 60_000 });
  const toUpstream = new Agent({ connections: WORKERS * 2, keepAliveTimeout: 60_000 });
  async function timed(dispatcher, base, p, body, done, auth) {
    const t0 = performance.now();
    try {
      const res = await request(`${base}${p}`, {
        method: 'POST',
        dispatcher,
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${KEY}` } : { authorization: 'Bearer ya29.direct' }) },
        body,
      });
      const text = await res.body.text();
      const ms = performance.now() - t0;
      return res.statusCode === 200 && done(text) ? { ms } : { ms, error: `${res.statusCode} ${JSON.stringify(text.slice(0, 160))}` };
    } catch (err) {
      return { ms: performance.now() - t0, error: String(err.cause ?? err) };
    }
  }

  const started = Date.now();
  const end = started + MINUTES * 60_000;
  const minutes = Array.from({ length: Math.ceil(MINUTES) }, () => ({ calls: 0, errors: 0, added: [], rss: [] }));
  const routes = Object.fromEntries(kinds.map(([n]) => [n, { calls: 0, errors: 0, added: [] }]));
  const errorSamples = [];
  const sampler = setInterval(() => {
    const m = minutes[Math.min(minutes.length - 1, Math.floor((Date.now() - started) / 60_000))];
    m.rss.push(rssMb(gateway.child.pid));
  }, 2000);
  let next = 0;
  const interval = WORKERS / RATE;
  async function worker(w) {
    let due = performance.now() + (w * 1000 * interval) / WORKERS;
    while (Date.now() < end) {
      const [name, gwPath, directPath, body, done, directDone = done] = kinds[next++ % kinds.length];
      // Alternate which goes first, so neither side always meets a warm cache.
      const flip = next % 2 === 0;
      const direct = flip ? await timed(toUpstream, upstream.url, directPath, body, directDone, false) : undefined;
      const via = await timed(toGateway, gateway.url, gwPath, body, done, true);
      const d = direct ?? (await timed(toUpstream, upstream.url, directPath, body, directDone, false));
      const m = minutes[Math.min(minutes.length - 1, Math.floor((Date.now() - started) / 60_000))];
      m.calls++;
      routes[name].calls++;
      if (via.error || d.error) {
        m.errors++;
        routes[name].errors++;
        if (errorSamples.length < 20) errorSamples.push(`${name}: ${via.error ?? `direct ${d.error}`}`);
      } else {
        m.added.push(via.ms - d.ms);
        routes[name].added.push(via.ms - d.ms);
      }
      due += 1000 * interval;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }
  process.stdout.write(`soak: ${MINUTES} min, ${RATE} gateway calls/s over ${WORKERS} workers, ${kinds.length} kinds of call\n`);
  await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  clearInterval(sampler);
  await Promise.all([toGateway.close(), toUpstream.close()]);

  gateway.child.kill('SIGTERM');
  await new Promise((r) => gateway.child.once('exit', r));
  upstream.child.kill('SIGTERM');
  const auditDir = path.join(home, 'data', 'audit');
  const records = fs
    .readdirSync(auditDir)
    .filter((n) => n.endsWith('.jsonl'))
    .flatMap((n) => fs.readFileSync(path.join(auditDir, n), 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l))
    .filter((r) => r.type === 'call');
  const verify = spawnSync(process.execPath, [CLI, 'audit', 'verify', '--dir', auditDir], { encoding: 'utf8' });
  const calls = minutes.reduce((s, m) => s + m.calls, 0);
  const errors = minutes.reduce((s, m) => s + m.errors, 0);
  const results = {
    date: new Date().toISOString(),
    host: { cpus: os.cpus().length, node: process.version },
    minutes: MINUTES,
    targetCallsPerSecond: RATE,
    workers: WORKERS,
    totals: {
      calls,
      errors,
      auditCallRecords: records.length,
      auditRecordsNotOk: records.filter((r) => r.status !== 'ok').length,
      auditVerifyExit: verify.status,
      addedP50Ms: round(pct(Object.values(routes).flatMap((r) => r.added), 50)),
      addedP99Ms: round(pct(Object.values(routes).flatMap((r) => r.added), 99)),
    },
    perMinute: minutes.map((m, i) => ({
      minute: i + 1,
      calls: m.calls,
      errors: m.errors,
      addedP50Ms: round(pct(m.added, 50)),
      addedP99Ms: round(pct(m.added, 99)),
      rssMb: round(m.rss.length ? m.rss[m.rss.length - 1] : NaN, 1),
      rssPeakMb: round(Math.max(...m.rss), 1),
    })),
    perRoute: Object.fromEntries(Object.entries(routes).map(([n, r]) => [n, { calls: r.calls, errors: r.errors, addedP50Ms: round(pct(r.added, 50)), addedP99Ms: round(pct(r.added, 99)) }])),
    errorSamples,
  };
  fs.writeFileSync(path.join(here, 'soak-results.json'), JSON.stringify(results, null, 2) + '\n');
  fs.rmSync(home, { recursive: true, force: true });

  const rows = [['minute', 'calls', 'errors', 'added p50 ms', 'added p99 ms', 'RSS MB (end)', 'RSS MB (peak)']];
  for (const m of results.perMinute) rows.push([m.minute, m.calls, m.errors, m.addedP50Ms, m.addedP99Ms, m.rssMb, m.rssPeakMb].map(String));
  rows.push([]);
  rows.push(['route', 'calls', 'errors', 'added p50 ms', 'added p99 ms']);
  for (const [n, r] of Object.entries(results.perRoute)) rows.push([n, r.calls, r.errors, r.addedP50Ms, r.addedP99Ms].map(String));
  for (const r of rows) process.stdout.write(r.map((c, i) => (i === 0 ? c.padEnd(22) : c.padStart(14))).join('') + '\n');
  process.stdout.write(
    `\ntotal: ${calls} calls, ${errors} errors; audit: ${records.length} call records (${results.totals.auditRecordsNotOk} not ok), verify exit ${verify.status}\n`,
  );
  if (errorSamples.length) process.stdout.write(`first errors:\n  ${errorSamples.slice(0, 5).join('\n  ')}\n`);
  process.exitCode = errors === 0 && records.length === calls && verify.status === 0 ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
