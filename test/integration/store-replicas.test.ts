/**
 * Three `claude-code-gateway serve` replicas (the bundled CLI, dist/cli.js) on one real PostgreSQL store, serving as
 * the least-privileged serving role, in front of one mock Anthropic upstream: budgets, rate limits, overrides, key
 * revocation, a database outage, a replica killed with kill -9, and the real Claude Code CLI across two replicas.
 */
import * as assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { Pool } from 'pg';
import { LEASE_MS } from '../../src/core/store/postgres/budget-slice';
import { grantServingRole, migrate } from '../../src/core/store/postgres/migrate';
import { storeUsageReport } from '../../src/core/store/postgres/usage';
import { verifyStoreAudit } from '../../src/core/store/postgres/audit-verify';
import { runClaude } from '../helpers/claude-cli';
import { listeningUrl } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';
import { SERVING, startStoreCluster, type StoreCluster } from '../helpers/store-pg';

const run = promisify(execFile);
const CLI = path.resolve(__dirname, '../../dist/cli.js');
const PROVIDER_KEY = 'sk-ant-test-provider-key-replicas';
/** A model family of its own priced at $0 input and $1,000 per million output tokens: 10 output tokens cost $0.01. */
const MODEL = 'ccgw-replica-test-model';
const CALL_USD = 0.01;
const MAX_TOKENS = 10;
const KEYS = {
  ops: 'sk-ccgw-replicas-ops-0001',
  spender: 'sk-ccgw-replicas-spender-0002',
  rater: 'sk-ccgw-replicas-rater-0003',
  overridden: 'sk-ccgw-replicas-overridden-0004',
  outage: 'sk-ccgw-replicas-outage-0005',
  victim: 'sk-ccgw-replicas-victim-0006',
  cc: 'sk-ccgw-replicas-cc-0007',
};
const EPS = 1e-9;

interface Replica {
  name: string;
  config: string;
  child: ChildProcess;
  url: string;
  instanceId: string;
  exited: Promise<number | null>;
}

interface Answer {
  status: number;
  headers: Headers;
  json: { type?: string; error?: { type?: string; message?: string } } & Record<string, unknown>;
}

const startOfToday = () => new Date(new Date().toISOString().slice(0, 10) + 'T00:00:00.000Z').getTime();
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` every 50 ms until it returns true, for at most `withinMs`; returns how long that took, or fails naming
 * `what` and what the last probe saw (a probe returns a string to say why it is not there yet).
 */
async function within(withinMs: number, what: string, probe: () => Promise<boolean | string>): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const seen = await probe();
    if (seen === true) return Date.now() - t0;
    if (Date.now() - t0 > withinMs) assert.fail(`${what}: not within ${withinMs} ms${typeof seen === 'string' ? ` (last seen: ${seen})` : ''}`);
    await pause(50);
  }
}

async function call(r: Replica, key: string, body: Record<string, unknown> = {}): Promise<Answer> {
  const res = await fetch(`${r.url}/anthropic/v1/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: MODEL, max_tokens: MAX_TOKENS, messages: [{ role: 'user', content: 'hi' }], ...body }),
  });
  const text = await res.text();
  let json: Answer['json'] = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = { raw: text };
  }
  return { status: res.status, headers: res.headers, json };
}

async function getJson(r: Replica, route: string, key?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${r.url}${route}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

interface BudgetRow {
  scope: string;
  usd: number;
  spentUsd: number;
  overridden?: boolean;
}

async function budgetOf(r: Replica, scope: string): Promise<BudgetRow | undefined> {
  const { json } = await getJson(r, '/budgets', KEYS.ops);
  return (json.budgets as BudgetRow[] | undefined)?.find((b) => b.scope === scope);
}

describe('three replicas on one PostgreSQL store (serve children, the serving role)', function () {
  this.timeout(240_000);
  let cluster: StoreCluster;
  let owner: Pool;
  let anthropic: MockAnthropic;
  let dir: string;
  const replicas: Replica[] = [];
  let A: Replica;
  let B: Replica;
  let C: Replica;
  const env = () => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', CLAUDE_CODE_GATEWAY_DATABASE_URL: cluster.servingUrl });

  const usage = (keyId: string) => storeUsageReport(owner, { since: startOfToday(), keyId });
  /** Settled spend in the store's current window of a budget (what every replica's admission is checked against). */
  const storeSpent = async (scope: string) =>
    Number((await owner.query<{ s: number }>('SELECT coalesce(sum(spent_usd), 0) AS s FROM ccgw.budget_windows WHERE scope = $1 AND window_end > now()', [scope])).rows[0].s);

  async function startReplica(name: string): Promise<Replica> {
    const dataDir = path.join(dir, name);
    fs.mkdirSync(dataDir, { recursive: true });
    const config = path.join(dir, `${name}.json`);
    fs.writeFileSync(
      config,
      JSON.stringify({
        listen: { host: '127.0.0.1', port: 4747 },
        dataDir,
        profiles: [{ name: 'anthropic', provider: 'anthropic', apiKey: PROVIDER_KEY, baseUrl: anthropic.url }],
        keys: [
          { id: 'ops', key: KEYS.ops, admin: true },
          { id: 'spender', key: KEYS.spender },
          { id: 'rater', key: KEYS.rater },
          { id: 'overridden', key: KEYS.overridden },
          { id: 'outage', key: KEYS.outage },
          { id: 'victim', key: KEYS.victim },
          { id: 'cc', key: KEYS.cc },
        ],
        budgets: [
          { scope: 'key:spender', usd: 1, period: 'day' },
          { scope: 'key:overridden', usd: 5, period: 'day' },
          { scope: 'key:outage', usd: 100, period: 'day' },
          { scope: 'key:victim', usd: 0.1, period: 'day' },
          { scope: 'key:cc', usd: 10, period: 'day' },
        ],
        rateLimits: [{ scope: 'key:rater', requestsPerMinute: 60 }],
        prices: { 'replica-test': { input: 0, output: 1000, models: [MODEL] } },
        store: { kind: 'postgres', url: '${env:CLAUDE_CODE_GATEWAY_DATABASE_URL}', connectTimeoutMs: 1000, queryTimeoutMs: 1000 },
      }),
    );
    const child = spawn(process.execPath, [CLI, 'serve', '--config', config, '--port', '0'], { env: { ...env(), HOME: dataDir }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const url = await listeningUrl(child);
    const health = await getJson({ url } as Replica, '/health');
    const r: Replica = { name, config, child, url, instanceId: String(health.json.instanceId), exited };
    replicas.push(r);
    return r;
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-replicas-'));
    cluster = await startStoreCluster();
    owner = cluster.pool(cluster.ownerUrl);
    // The owner role creates the schema; the replicas serve as a role that may only append to the audit.
    await migrate(owner);
    await grantServingRole(owner, SERVING);
    anthropic = await new MockAnthropic().start();
    anthropic.requireApiKey = PROVIDER_KEY;
    anthropic.usage = { input_tokens: 25, output_tokens: MAX_TOKENS };
    [A, B, C] = await Promise.all(['A', 'B', 'C'].map((n) => startReplica(n)));
  });

  after(async () => {
    for (const r of replicas) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.exited));
    await anthropic?.stop();
    await cluster?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves as the serving role, which cannot update or delete audit records', async () => {
    const serving = cluster.pool(cluster.servingUrl, 1);
    await assert.rejects(serving.query('UPDATE ccgw.audit SET record = record'), /permission denied/);
    await assert.rejects(serving.query('DELETE FROM ccgw.audit'), /permission denied/);
    for (const r of [A, B, C]) assert.equal((await call(r, KEYS.ops)).status, 200, `replica ${r.name} serves`);
  });

  it('150 concurrent calls over three replicas at a nearly spent budget: spend ends at most one call over the limit', async () => {
    // Spend $0.95 of $1.00 first, over all three replicas: each replica's admissions see what the others spent.
    const seed = Math.round(0.95 / CALL_USD);
    for (let i = 0; i < seed; i += 5) {
      const batch = await Promise.all(Array.from({ length: Math.min(5, seed - i) }, (_, j) => call(replicas[(i + j) % 3], KEYS.spender)));
      for (const a of batch) assert.equal(a.status, 200, JSON.stringify(a.json));
    }
    // Each replica writes its records at the end of the turn the call settled in, an INSERT that can land just after
    // the answer: wait (bounded) until the store has all of them.
    const seeded = async () => Math.abs((await usage('spender')).totals.costUsd - 0.95) < 1e-6;
    for (let i = 0; i < 100 && !(await seeded()); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(await seeded(), `seed spend in the store: $${(await usage('spender')).totals.costUsd}`);

    const answers = await Promise.all(Array.from({ length: 150 }, (_, i) => call([A, B, C][i % 3], KEYS.spender)));
    const ok = answers.filter((a) => a.status === 200).length;
    const refused = answers.filter((a) => a.status === 429);
    assert.equal(ok + refused.length, 150, `every call is admitted or refused by the budget: ${JSON.stringify(answers.find((a) => a.status !== 200 && a.status !== 429)?.json)}`);
    for (const a of refused) {
      // Spent: a billing_error; only held by the reservations of calls in flight: a retryable rate_limit_error.
      const held = a.json.error?.type === 'rate_limit_error' && /is held by calls in flight/.test(String(a.json.error?.message));
      assert.ok(a.json.error?.type === 'billing_error' || held, JSON.stringify(a.json));
      assert.match(String(a.json.error?.message), /key:spender budget/);
    }
    await within(5000, 'every admitted call is in the store', async () => (await usage('spender')).totals.requests === seed + ok);
    const report = await usage('spender');
    const spent = report.totals.costUsd;
    assert.equal(report.totals.requests, seed + ok, 'one audit record per admitted call, from every replica');
    assert.ok(spent <= 1 + CALL_USD + EPS, `spend $${spent.toFixed(4)} is at most one call ($${CALL_USD}) over the $1.00 limit (${ok} of 150 admitted)`);
    assert.ok(ok >= 1, 'the room left was used');
    // The one budget in the store holds the same spend once the replicas' batches are in.
    await within(5000, `the store's key:spender window holds the audit's spend ($${spent})`, async () => {
      const inStore = await storeSpent('key:spender');
      return Math.abs(inStore - spent) < 1e-6 || `$${inStore}`;
    });
    console.log(`      overshoot: spend $${spent.toFixed(4)} of $1.00 (${ok} of 150 admitted)`);
  });

  it('a 60 requests/minute limit admits at most 60 in the minute across the three replicas, with retry-after from the shared window', async () => {
    // docs/team.md: slack 0 while the replicas live (an admission is reported in its second or still held in a lease).
    const answers = await Promise.all(Array.from({ length: 150 }, (_, i) => call([A, B, C][i % 3], KEYS.rater)));
    const ok = answers.filter((a) => a.status === 200).length;
    const refused = answers.filter((a) => a.status === 429);
    assert.equal(ok + refused.length, 150);
    assert.ok(ok <= 60, `${ok} admitted in one minute at 60/minute across three replicas`);
    assert.ok(ok >= 1);
    for (const a of refused) {
      assert.equal(a.json.error?.type, 'rate_limit_error');
      const retry = Number(a.headers.get('retry-after'));
      assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `retry-after ${a.headers.get('retry-after')} is the shared minute's`);
    }
    // A later request on any replica is still refused: the minute is shared, not per replica.
    for (const r of [A, B, C]) assert.equal((await call(r, KEYS.rater)).status, 429, `replica ${r.name} refuses once the shared minute is full`);
    console.log(`      rate limit: ${ok} of 150 admitted at 60/minute over three replicas`);
  });

  it('a budget override made on A applies on B and C within 2 s, and so does clearing it', async () => {
    const override = async (usd: number | null) => {
      const res = await fetch(`${A.url}/budgets/override`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEYS.ops}`, 'content-type': 'application/json' },
        body: JSON.stringify({ scope: 'key:overridden', usd }),
      });
      assert.equal(res.status, 200, await res.text());
    };
    for (const r of [B, C]) assert.equal((await call(r, KEYS.overridden)).status, 200);
    await override(0.001);
    const lowered = await Promise.all(
      [B, C].map((r) =>
        within(2000, `replica ${r.name} applies the override to $0.001`, async () => {
          const b = await budgetOf(r, 'key:overridden');
          if (b?.usd !== 0.001 || b.overridden !== true) return JSON.stringify(b);
          // The key spent $0.02 before: under a $0.001 limit its next call is refused.
          const a = await call(r, KEYS.overridden);
          return (a.status === 429 && a.json.error?.type === 'billing_error') || `${a.status} ${JSON.stringify(a.json).slice(0, 200)}`;
        }),
      ),
    );
    await override(null);
    const cleared = await Promise.all(
      [B, C].map((r) =>
        within(2000, `replica ${r.name} applies the cleared override`, async () => {
          const b = await budgetOf(r, 'key:overridden');
          if (b?.usd !== 5 || b.overridden) return JSON.stringify(b);
          const a = await call(r, KEYS.overridden);
          return a.status === 200 || `${a.status} ${JSON.stringify(a.json).slice(0, 200)}`;
        }),
      ),
    );
    console.log(`      override applied on B and C in ${lowered.join(', ')} ms; cleared in ${cleared.join(', ')} ms`);
  });

  it('a key created with `keys create` works on every replica, and once revoked with `keys revoke` is refused on every replica within 2 s', async () => {
    const created = await run(process.execPath, [CLI, 'keys', 'create', '--id', 'temp', '--team', 'platform', '--config', A.config], { env: { ...env(), HOME: dir } });
    const key = created.stdout.trim();
    assert.match(key, /^\S{20,}$/, 'the key alone on stdout');
    const known = await Promise.all([A, B, C].map((r) => within(2000, `replica ${r.name} knows the new key`, async () => (await call(r, key)).status === 200)));
    await run(process.execPath, [CLI, 'keys', 'revoke', 'temp', '--config', B.config], { env: { ...env(), HOME: dir } });
    const refused = await Promise.all(
      [A, B, C].map((r) =>
        within(2000, `replica ${r.name} refuses the revoked key`, async () => {
          const a = await call(r, key);
          // As a key revoked in the config: 403, the message saying it was revoked.
          return (a.status === 403 && a.json.error?.type === 'permission_error' && /revoked/.test(String(a.json.error.message))) || `${a.status} ${JSON.stringify(a.json).slice(0, 200)}`;
        }),
      ),
    );
    const rows = await owner.query<{ sha256: string }>('SELECT sha256 FROM ccgw.keys WHERE id = $1', ['temp']);
    assert.ok(!JSON.stringify(rows.rows).includes(key), 'the store holds the hash, not the key');
    console.log(`      key known on A, B, C in ${known.join(', ')} ms; refused after revoke in ${refused.join(', ')} ms`);
  });

  it('PostgreSQL stopped under load: 503 naming the store, /health says so; back: every settled call is in the audit', async () => {
    const statuses = new Map<number, number>();
    const storeErrors: string[] = [];
    let stop = false;
    let served = 0;
    let lost = 0;
    // Every answer, the workers' and the probes', is counted: each 200 is a settled call the audit must hold.
    const probe = async (r: Replica): Promise<Answer | undefined> => {
      const a = await call(r, KEYS.outage).catch(() => undefined);
      if (!a) {
        lost++;
        return undefined;
      }
      statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      if (a.status === 200) served++;
      else if (a.status === 503) storeErrors.push(`${a.json.type} ${a.json.error?.type} ${a.json.error?.message}`);
      return a;
    };
    const worker = async (r: Replica) => {
      while (!stop) if ((await probe(r))?.status !== 200) await pause(20);
    };
    const workers = [A, B, C, A, B, C].map((r) => worker(r));
    try {
      await within(10_000, 'calls served before the outage', async () => served >= 30);
      await cluster.pg.stop();
      for (const r of [A, B, C]) {
        await within(15_000, `replica ${r.name} answers 503 and /health says the store is away`, async () => {
          const a = await probe(r);
          if (a?.status !== 503) return `${a?.status}`;
          assert.equal(a.json.type, 'error');
          assert.equal(a.json.error?.type, 'api_error');
          assert.match(String(a.json.error?.message), /store/i, 'the 503 names the store');
          const h = await getJson(r, '/health');
          // README: "refusing" while the replica cannot reach the store, whose part says it is not reachable.
          return (h.json.status === 'refusing' && /"reachable":false/.test(JSON.stringify(h.json))) || JSON.stringify(h.json);
        });
      }
      await cluster.pg.start();
      for (const r of [A, B, C]) {
        await within(15_000, `replica ${r.name} serves again`, async () => (await probe(r))?.status === 200);
        await within(5000, `replica ${r.name}'s /health is ok again`, async () => (await getJson(r, '/health')).json.status === 'ok');
      }
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    assert.deepEqual([...statuses.keys()].filter((s) => s !== 200 && s !== 503), [], `only 200 and 503: ${JSON.stringify([...statuses])}`);
    assert.ok((statuses.get(503) ?? 0) >= 3);
    for (const m of storeErrors) assert.match(m, /^error api_error .*store/i);
    // Every call that was served (settled) while the store was away is written once it is back.
    assert.equal(lost, 0, 'every call got an answer');
    const calls = served;
    await within(10_000, `the audit holds all ${calls} served calls`, async () => (await usage('outage')).totals.requests >= calls);
    assert.equal((await usage('outage')).totals.requests, calls, 'no call written twice');
    const verify = await verifyStoreAudit(owner);
    assert.deepEqual(verify.tamper, [], 'the chains are intact after the outage');
    console.log(`      outage: ${JSON.stringify(Object.fromEntries(statuses))}; verify: ${verify.records} records in ${verify.chains} chains; 503: ${storeErrors[0]}`);
  });

  it('the real Claude Code CLI completes a turn through replica A and then replica B with one key: one audit, one budget', async () => {
    const claudeEnv = (r: Replica) => ({ ANTHROPIC_BASE_URL: `${r.url}/anthropic`, ANTHROPIC_AUTH_TOKEN: KEYS.cc });
    anthropic.replyText = 'pong from the team gateway';
    for (const r of [A, B]) {
      const turn = await runClaude('say pong', claudeEnv(r));
      assert.equal(turn.result?.is_error, false, `claude through ${r.name} failed: ${turn.stdout}\n${turn.stderr}`);
      assert.equal(turn.result?.result, 'pong from the team gateway');
    }
    const chains = await owner.query<{ chain: string; n: string }>(
      `SELECT chain, count(*) AS n FROM ccgw.audit WHERE type = 'call' AND (record::jsonb)->>'key' = 'cc' GROUP BY chain`,
    );
    const byChain = new Map(chains.rows.map((r) => [r.chain, Number(r.n)]));
    assert.ok(byChain.get(A.instanceId)! >= 1 && byChain.get(B.instanceId)! >= 1, `calls recorded by A and by B: ${JSON.stringify([...byChain])}`);
    const spent = (await usage('cc')).totals.costUsd;
    assert.ok(spent > 0);
    // One budget: the store's key:cc window holds the spend of both turns, whichever replica served them.
    await within(5000, `the store's key:cc window holds both turns ($${spent})`, async () => {
      const inStore = await storeSpent('key:cc');
      return Math.abs(inStore - spent) < 1e-6 || `$${inStore}`;
    });
  });

  it(`a replica killed with kill -9: its reservations come back within the lease (${LEASE_MS / 1000} s)`, async () => {
    // C admits ten streams that hold all of key:victim's $0.10, then is killed while they are in flight.
    const before = anthropic.requests.length;
    for (let i = 0; i < 10; i++) anthropic.script.push({ holdAfterStart: true });
    const controller = new AbortController();
    const held = await Promise.all(
      Array.from({ length: 10 }, () =>
        fetch(`${C.url}/anthropic/v1/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${KEYS.victim}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
          body: JSON.stringify({ model: MODEL, max_tokens: MAX_TOKENS, stream: true, messages: [{ role: 'user', content: 'hold' }] }),
          signal: controller.signal,
        }),
      ),
    );
    assert.deepEqual(held.map((r) => r.status), Array(10).fill(200));
    assert.equal(anthropic.requests.length - before, 10);
    const refusedBefore = await call(A, KEYS.victim);
    assert.equal(refusedBefore.status, 429, 'the room is held by C');
    C.child.kill('SIGKILL');
    await C.exited;
    const killedAt = Date.now();
    controller.abort();
    anthropic.release();
    const back = await within(LEASE_MS + 2000, "C's reservations released to A", async () => (await call(A, KEYS.victim)).status === 200);
    assert.ok(Date.now() - killedAt <= LEASE_MS + 2000);
    console.log(`      kill -9: room back ${(back / 1000).toFixed(1)} s after the kill (lease ${LEASE_MS / 1000} s)`);
  });

  it('the audit over the store verifies after the fault tests: intact, with the killed replica named as a gap', async () => {
    for (const r of [A, B]) r.child.kill('SIGTERM');
    assert.deepEqual(await Promise.all([A.exited, B.exited]), [0, 0]);
    const result = await verifyStoreAudit(owner);
    assert.deepEqual(result.tamper, []);
    assert.equal(result.intact, true);
    assert.ok(result.chains >= 3);
    const gapChains = new Set(result.gaps.map((g) => g.chain));
    assert.ok(gapChains.has(C.instanceId), `the killed replica's chain is a gap: ${JSON.stringify(result.gaps)}`);
    assert.ok(!gapChains.has(A.instanceId) && !gapChains.has(B.instanceId), 'the stopped replicas wrote their stop records');
  });
});
