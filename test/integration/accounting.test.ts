import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import type { BudgetStatus } from '../../src/core/accounting/budgets';
import type { SettledCall } from '../../src/core/gateway/call';
import { allText, auditCalls, readAudit, until, writtenCalls } from '../helpers/audit';
import { startGateway, type TestGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

const PROVIDER_KEY = 'sk-ant-accounting-provider-key-0042';
const TEAM_KEY = 'ccgw-team-key-for-accounting-tests-0001';
const env = { ACC_PROVIDER_KEY: PROVIDER_KEY, ACC_TEAM_KEY: TEAM_KEY };
const profile = (url: string) => ({ name: 'anthropic', provider: 'anthropic', apiKey: '${env:ACC_PROVIDER_KEY}', baseUrl: url });
// Opus 4.8 with the mock's usage: 25*5 + 7*25 + 60*6.25 + 40*10 + 2000*0.5 per million.
const CALL_COST = 0.002075;

interface ErrorBody {
  type: string;
  error: { type: string; message: string };
}

function post(gw: TestGateway, path: string, body: Record<string, unknown>, headers: Record<string, string> = {}, key = gw.key): Promise<Response> {
  return fetch(`${gw.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...headers },
    body: JSON.stringify(body),
  });
}

const msg = (extra: Record<string, unknown> = {}) => ({ model: 'claude-opus-4-8', max_tokens: 16, messages: [{ role: 'user' as const, content: 'say pong' }], ...extra });

describe('accounting: usage, cost and the audit log on every route', () => {
  let upstream: MockAnthropic;
  let gw: TestGateway;
  const settled: SettledCall[] = [];

  before(async () => {
    upstream = await new MockAnthropic().start();
    upstream.requireApiKey = PROVIDER_KEY;
    gw = await startGateway(
      {
        profiles: [profile(upstream.url)],
        keys: [{ id: 'team-key', key: '${env:ACC_TEAM_KEY}', team: 'red', project: 'web' }],
        audit: { bodies: 'redacted' },
      },
      { env },
    );
    gw.runtime.onDidSettleCall((c) => settled.push(c));
    // The tests charge project "proj-h" through the project header: the key must be allowed to.
    gw.runtime.keys.add({ id: 'test', admin: true, projects: ['proj-h'] }, gw.key);
  });
  after(async () => {
    await gw.close();
    await upstream.stop();
  });

  for (const [route, base] of [
    ['/anthropic', '/anthropic'],
    ['unified /v1/messages', ''],
  ] as const) {
    for (const streaming of [true, false]) {
      it(`${route}, ${streaming ? 'streaming' : 'JSON'}: the audit record equals what the upstream reported, to the token`, async () => {
        const before = auditCalls(gw.auditDir).length;
        const client = new Anthropic({ baseURL: gw.url + base, authToken: gw.key, apiKey: null, defaultHeaders: { 'x-claude-code-session-id': 'sess-42', 'x-claude-code-agent-id': 'agent-7', 'x-claude-code-gateway-project': 'proj-h' } });
        if (streaming) await client.messages.stream(msg()).finalMessage();
        else await client.messages.create(msg());
        const calls = await writtenCalls(gw.auditDir);
        assert.equal(calls.length, before + 1);
        const r = calls[calls.length - 1];
        const u = upstream.usage;
        assert.deepEqual(r.usage, {
          input: u.input_tokens,
          output: u.output_tokens,
          cacheWrite5m: u.cache_creation!.ephemeral_5m_input_tokens,
          cacheWrite1h: u.cache_creation!.ephemeral_1h_input_tokens,
          cacheRead: u.cache_read_input_tokens,
        });
        assert.ok(Math.abs((r.costUsd as number) - CALL_COST) < 1e-12, String(r.costUsd));
        assert.equal(r.priceKnown, true);
        assert.equal(r.family, 'opus-4.5');
        assert.equal(r.status, 'ok');
        assert.equal(r.httpStatus, 200);
        assert.equal(r.streaming, streaming);
        assert.equal(r.route, base ? 'anthropic' : 'unified');
        assert.equal(r.path, `${base}/v1/messages`);
        assert.equal(r.key, 'test');
        assert.equal(r.session, 'sess-42');
        assert.equal(r.agent, 'agent-7');
        assert.equal(r.project, 'proj-h');
        assert.equal(r.requestedModel, 'claude-opus-4-8');
        assert.equal(r.responseModel, 'claude-opus-4-8');
        assert.equal(typeof r.latencyMs, 'number');
        assert.equal(typeof r.ttfbMs, 'number');
        const event = settled[settled.length - 1];
        assert.equal(event.requestId, r.id);
        assert.equal(event.costUsd, r.costUsd);
      });
    }
  }

  it("attributes a key's team and project; the query string never reaches the log", async () => {
    const res = await post(gw, '/anthropic/v1/messages?beta=true&token=secret-in-query', msg(), {}, TEAM_KEY);
    assert.equal(res.status, 200);
    await res.text();
    const r = (await writtenCalls(gw.auditDir)).pop()!;
    assert.equal(r.key, 'team-key');
    assert.equal(r.team, 'red');
    assert.equal(r.project, 'web');
    assert.equal(r.path, '/anthropic/v1/messages');
    assert.ok(!allText(gw.auditDir).includes('secret-in-query'));
  });

  it('a stream cut by the upstream is recorded with the usage seen so far and status upstream_cut', async () => {
    // An upstream that sends message_start, then drops the connection.
    const cutter = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const usage = { input_tokens: 25, output_tokens: 1, cache_creation_input_tokens: 100, cache_read_input_tokens: 2000, cache_creation: { ephemeral_5m_input_tokens: 60, ephemeral_1h_input_tokens: 40 } };
      res.write(`event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { model: 'claude-opus-4-8', usage } })}\n\n`);
      setTimeout(() => res.socket?.destroy(), 30);
    });
    await new Promise<void>((r) => cutter.listen(0, '127.0.0.1', r));
    const cutGw = await startGateway({ profiles: [{ ...profile(`http://127.0.0.1:${(cutter.address() as { port: number }).port}`), apiKey: 'sk-ant-x' }] });
    try {
      const res = await post(cutGw, '/anthropic/v1/messages', msg({ stream: true }));
      assert.equal(res.status, 200);
      await res.text().catch(() => undefined);
      await until(() => auditCalls(cutGw.auditDir).length === 1);
      const r = auditCalls(cutGw.auditDir)[0];
      assert.equal(r.status, 'upstream_cut');
      assert.deepEqual(r.usage, { input: 25, output: 1, cacheWrite5m: 60, cacheWrite1h: 40, cacheRead: 2000 });
      assert.ok((r.costUsd as number) > 0);
    } finally {
      await cutGw.close();
      cutter.closeAllConnections();
      cutter.close();
    }
  });

  it('upstream errors are recorded with their type and cost nothing', async () => {
    upstream.script.push({ status: 529, body: JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }) });
    const res = await post(gw, '/v1/messages', msg());
    assert.equal(res.status, 529);
    await res.text();
    const r = (await writtenCalls(gw.auditDir)).pop()!;
    assert.equal(r.status, 'upstream_error');
    assert.equal(r.errorType, 'overloaded_error');
    assert.equal(r.costUsd, 0);
  });

  it('count_tokens calls are recorded at no cost', async () => {
    const res = await post(gw, '/v1/messages/count_tokens', { model: 'claude-opus-4-8', messages: [] });
    assert.equal(res.status, 200);
    await res.text();
    const r = (await writtenCalls(gw.auditDir)).pop()!;
    assert.equal(r.countTokens, true);
    assert.equal(r.costUsd, 0);
  });

  it('redacted bodies keep the request but no credential; GET /usage and /metrics agree with the log', async () => {
    const r = (await writtenCalls(gw.auditDir)).find((c) => c.key === 'team-key')!;
    const req = r.request as { headers: Record<string, string>; body: string };
    assert.equal(JSON.parse(req.body).model, 'claude-opus-4-8');
    assert.equal(req.headers.authorization, undefined);
    assert.equal(req.headers['anthropic-version'], '2023-06-01');

    const own = (await (await fetch(`${gw.url}/usage?by=key`, { headers: { authorization: `Bearer ${TEAM_KEY}` } })).json()) as { key: string; totals: { requests: number; costUsd: number } };
    assert.equal(own.key, 'team-key');
    assert.equal(own.totals.requests, 1);
    const all = (await (await fetch(`${gw.url}/usage?by=model`, { headers: { authorization: `Bearer ${gw.key}` } })).json()) as { totals: { requests: number; costUsd: number; cacheWrite1h: number }; groups: Array<{ group: string }> };
    const calls = await writtenCalls(gw.auditDir);
    assert.equal(all.totals.requests, calls.length);
    const total = calls.reduce((s, c) => s + (c.costUsd as number), 0);
    assert.ok(Math.abs(all.totals.costUsd - total) < 1e-12);
    assert.ok(all.groups.some((g) => g.group === 'claude-opus-4-8'));
    assert.equal((await fetch(`${gw.url}/usage`)).status, 401);

    // /metrics shows every team's and project's budgets: an admin key reads it, a team's key may not.
    assert.equal((await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${TEAM_KEY}` } })).status, 403);
    const metrics = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${gw.key}` } })).text();
    assert.match(metrics, /ccgw_requests_total\{profile="anthropic",provider="anthropic",model="claude-opus-4-8",status="ok"\} \d+/);
    assert.match(metrics, /ccgw_tokens_total\{profile="anthropic",model="claude-opus-4-8",kind="cache_write_1h"\} \d+/);
    assert.match(metrics, /ccgw_upstream_latency_seconds_bucket/);
    assert.match(metrics, /ccgw_errors_total\{type="overloaded_error"\} 1/);
    assert.equal((await fetch(`${gw.url}/metrics`)).status, 401);
    assert.ok(!metrics.includes('team-key'));

    const health = (await (await fetch(`${gw.url}/health`)).json()) as { accounting: { audit: { writable: boolean } } };
    assert.equal(health.accounting.audit.writable, true);
  });

  it('no gateway key or provider key ever reaches the audit folder', () => {
    const text = allText(gw.auditDir);
    for (const secret of [gw.key, TEAM_KEY, PROVIDER_KEY]) assert.ok(!text.includes(secret), `a secret leaked into the audit log`);
    assert.ok(readAudit(gw.auditDir)[0].type === 'start');
  });
});

describe('accounting: budgets and rate limits', function () {
  this.timeout(30_000);
  let upstream: MockAnthropic;

  before(async () => {
    upstream = await new MockAnthropic().start();
  });
  after(() => upstream.stop());

  it('a budget whose room is only held by a call in flight refuses with a retryable 429: the SDK retries and gets through once that call settles', async () => {
    // One call reserves its max_tokens at Opus prices ($0.03) against a $0.02 budget: admitted, since nothing is spent.
    const gw = await startGateway({ profiles: [{ ...profile(upstream.url), apiKey: 'sk-ant-x' }], budgets: [{ scope: 'global', usd: 0.02, period: 'day' }] });
    try {
      upstream.script.push({ holdAfterStart: true });
      const first = await post(gw, '/v1/messages', msg({ max_tokens: 1000, stream: true }));
      assert.equal(first.status, 200);
      await upstream.waitForHold();
      const refusedOnce = new Promise<SettledCall>((resolve) => {
        const sub = gw.runtime.onDidSettleCall((c) => {
          if (c.status !== 'rejected') return;
          sub.dispose();
          resolve(c);
        });
      });
      const client = new Anthropic({ baseURL: gw.url, authToken: gw.key, apiKey: null, maxRetries: 3 });
      const second = client.messages.create(msg({ max_tokens: 1000 }));
      const refusal = await refusedOnce;
      assert.equal(refusal.errorType, 'budget_held');
      upstream.release();
      await first.text();
      const answer = await second;
      assert.equal(answer.content[0].type, 'text', 'the retried call was answered');
      const calls = await writtenCalls(gw.auditDir);
      assert.deepEqual(calls.map((c) => c.status), ['rejected', 'ok', 'ok'], 'refused while held, then the held call and the retry');
    } finally {
      await gw.close();
    }
  });

  it('200 concurrent calls at a nearly spent budget: overshoot bounded by the calls in flight; restart rebuilds the spend', async () => {
    const raw = { profiles: [{ ...profile(upstream.url), apiKey: 'sk-ant-x' }], budgets: [{ scope: 'global', usd: 0.02, period: 'day' }] };
    const gw = await startGateway(raw, { keepDataDir: true });
    const budgetEvents: BudgetStatus[][] = [];
    gw.runtime.onDidChangeBudgets((b) => budgetEvents.push(b));
    let dataDir: string | undefined;
    try {
      // 9 calls spend $0.018675 of $0.02: less than one call's cost is left.
      for (let i = 0; i < 9; i++) assert.equal((await (await post(gw, '/v1/messages', msg())).json()) && 200, 200);
      assert.equal(budgetEvents.length, 9);
      const results = await Promise.all(
        Array.from({ length: 200 }, async () => {
          const res = await post(gw, '/v1/messages', msg());
          return { status: res.status, headers: res.headers, body: await res.text() };
        }),
      );
      const ok = results.filter((r) => r.status === 200);
      const refused = results.filter((r) => r.status === 429);
      assert.equal(ok.length + refused.length, 200);
      assert.ok(ok.length >= 1 && ok.length <= 2, `admitted ${ok.length}`);
      const spent = gw.runtime.budgets()[0].spentUsd;
      assert.ok(Math.abs(spent - (9 + ok.length) * CALL_COST) < 1e-9);
      assert.ok(spent - 0.02 <= ok.length * CALL_COST, 'overshoot is at most the cost of the calls in flight');

      // A refusal while the room is only held by the call in flight (its max_tokens reservation) is a retryable 429; once
      // the spend itself reaches the limit, it is a billing_error until midnight.
      const typeOf = (x: { body: string }) => (JSON.parse(x.body) as ErrorBody).error.type;
      for (const h of refused.filter((x) => typeOf(x) === 'rate_limit_error')) {
        assert.equal(h.headers.get('retry-after'), '2');
        assert.notEqual(h.headers.get('x-should-retry'), 'false');
        assert.match((JSON.parse(h.body) as ErrorBody).error.message, /^global budget of \$0\.02 per day is held by calls in flight \(\$0\.0\d+ spent, \$[0-9.]+ reserved for their max_tokens\); retry in 2 s$/);
      }
      assert.equal(refused.filter((x) => !['rate_limit_error', 'billing_error'].includes(typeOf(x))).length, 0);
      const after = await post(gw, '/v1/messages', msg());
      const r = { status: after.status, headers: after.headers, body: await after.text() };
      assert.equal(r.status, 429);
      refused.push(r);

      const midnight = new Date(new Date().toISOString().slice(0, 10) + 'T00:00:00Z').getTime() + 86_400_000;
      assert.equal(r.headers.get('x-should-retry'), 'false');
      const retry = Number(r.headers.get('retry-after'));
      assert.ok(Math.abs(retry - (midnight - Date.now()) / 1000) < 5, `retry-after ${retry}`);
      const body = JSON.parse(r.body) as ErrorBody;
      assert.equal(body.type, 'error');
      assert.equal(body.error.type, 'billing_error');
      assert.match(body.error.message, /^global budget of \$0\.02 per day reached \(\$0\.0\d+ spent(?:, \$0\.0\d+ held by calls in flight)?\); resets \d{4}-\d{2}-\d{2}T00:00:00\.000Z$/);
      assert.ok(body.error.message.endsWith(`resets ${new Date(midnight).toISOString()}`));
      const calls = await writtenCalls(gw.auditDir);
      assert.equal(calls.filter((c) => c.status === 'rejected').length, refused.length);
      assert.equal(upstream.requests.length >= 9 + ok.length, true);
    } finally {
      dataDir = gw.dataDir;
      await gw.close();
    }
    // Restart on the same data folder: the spend comes back from the audit log, and the budget still holds.
    const again = await startGateway(raw, { dataDir });
    try {
      const b = again.runtime.budgets()[0];
      assert.ok(b.spentUsd >= 0.02, `rebuilt spend ${b.spentUsd}`);
      const res = await post(again, '/anthropic/v1/messages', msg());
      assert.equal(res.status, 429);
      // count_tokens is never blocked.
      assert.equal((await post(again, '/v1/messages/count_tokens', { model: 'claude-opus-4-8', messages: [] })).status, 200);
    } finally {
      await again.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('requests per minute: remaining headers on every response, then 429 rate_limit_error with retry-after', async () => {
    const gw = await startGateway({ profiles: [{ ...profile(upstream.url), apiKey: 'sk-ant-x' }], rateLimits: [{ scope: 'global', requestsPerMinute: 3, tokensPerMinute: 1_000_000 }] });
    try {
      for (const left of ['2', '1', '0']) {
        const res = await post(gw, '/anthropic/v1/messages', msg({ stream: true }));
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('x-gateway-ratelimit-requests-remaining'), left);
        assert.equal(res.headers.get('x-gateway-ratelimit-requests-limit'), '3');
        assert.ok(Number(res.headers.get('x-gateway-ratelimit-tokens-remaining')) <= 1_000_000);
        await res.text();
      }
      const res = await post(gw, '/v1/messages', msg());
      assert.equal(res.status, 429);
      const retry = Number(res.headers.get('retry-after'));
      assert.ok(retry >= 1 && retry <= 60);
      assert.equal(res.headers.get('x-gateway-ratelimit-requests-remaining'), '0');
      const body = (await res.json()) as ErrorBody;
      assert.equal(body.error.type, 'rate_limit_error');
      assert.match(body.error.message, /^global rate limit of 3 requests per minute reached/);
    } finally {
      await gw.close();
    }
  });

  it('tokens per minute: counted when calls settle', async () => {
    const gw = await startGateway({ profiles: [{ ...profile(upstream.url), apiKey: 'sk-ant-x' }], rateLimits: [{ scope: 'global', tokensPerMinute: 3000 }] });
    try {
      // Each call reports 2132 tokens: the first fits, the second starts under the limit, the third is refused.
      for (let i = 0; i < 2; i++) assert.equal((await post(gw, '/v1/messages', msg())).status, 200);
      const res = await post(gw, '/v1/messages', msg());
      assert.equal(res.status, 429);
      assert.equal(((await res.json()) as ErrorBody).error.type, 'rate_limit_error');
    } finally {
      await gw.close();
    }
  });

  it('an unwritable audit folder refuses model calls with 503 and says so in /health, unless failOpen', async () => {
    // Root writes anywhere, so the folder is made impossible rather than read-only: a path below a regular file.
    const blocker = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-block-'));
    fs.writeFileSync(`${blocker}/file`, 'x');
    for (const failOpen of [false, true]) {
      const gw = await startGateway({ profiles: [{ ...profile(upstream.url), apiKey: 'sk-ant-x' }], audit: { dir: `${blocker}/file/audit`, failOpen } });
      try {
        const health = (await (await fetch(`${gw.url}/health`)).json()) as { accounting: { audit: { writable: boolean; failOpen: boolean } } };
        assert.equal(health.accounting.audit.writable, false);
        assert.equal(health.accounting.audit.failOpen, failOpen);
        const res = await post(gw, '/v1/messages', msg());
        assert.equal(res.status, failOpen ? 200 : 503);
        if (!failOpen) assert.match(((await res.json()) as ErrorBody).error.message, /audit log/);
      } finally {
        await gw.close();
      }
    }
    fs.rmSync(blocker, { recursive: true, force: true });
  });
});
