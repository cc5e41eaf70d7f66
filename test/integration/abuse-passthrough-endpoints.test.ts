import * as assert from 'node:assert/strict';
import { writtenCalls } from '../helpers/audit';
import { startGateway, type TestGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

const env = { EP_PROVIDER_KEY: 'sk-ant-endpoints-provider-key-0042', EP_LITELLM_KEY: 'sk-litellm-endpoints-0042' };

/** A Message Batch of `n` Opus requests, as the Batches API takes it. */
function batchBody(n: number): string {
  const requests = Array.from({ length: n }, (_, i) => ({
    custom_id: `r${i}`,
    params: { model: 'claude-opus-4-1', max_tokens: 4096, messages: [{ role: 'user', content: 'write an essay' }] },
  }));
  return JSON.stringify({ requests });
}

interface Answer {
  status: number;
  body: { type?: string; error?: { type: string; message: string } } & Record<string, unknown>;
}

async function call(gw: TestGateway, method: string, path: string, body?: string): Promise<Answer> {
  const res = await fetch(`${gw.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
    body,
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Answer['body']) : {} };
}

/**
 * Passthrough endpoints that cost money the gateway cannot see: Message Batches are refused unless a profile allows
 * them, and then forwarded and recorded as unmetered; an endpoint the gateway does not know is refused the same way.
 * One body parser: what the gateway prices is what the upstream's JSON parser reads.
 */
describe('abuse: passthrough endpoints the gateway cannot meter, and one reading of the body', () => {
  let upstream: MockAnthropic;
  let litellm: MockAnthropic;
  let gw: TestGateway;

  before(async () => {
    upstream = await new MockAnthropic().start();
    litellm = await new MockAnthropic().start();
    gw = await startGateway(
      {
        profiles: [
          { name: 'anthropic', provider: 'anthropic', apiKey: '${env:EP_PROVIDER_KEY}', baseUrl: upstream.url, models: { map: { 'claude-sonnet-4-5': 'claude-sonnet-4-5-20250929' } } },
          { name: 'batches', provider: 'anthropic', apiKey: '${env:EP_PROVIDER_KEY}', baseUrl: upstream.url, allowUnmetered: ['POST /v1/messages/batches', '* /v1/experimental/**'] },
          { name: 'lite', provider: 'litellm', apiKey: '${env:EP_LITELLM_KEY}', baseUrl: litellm.url },
        ],
        budgets: [{ scope: 'profile:batches', usd: 0.001, period: 'day' }],
      },
      { env },
    );
  });
  after(async () => {
    await gw.close();
    await Promise.all([upstream.stop(), litellm.stop()]);
  });

  it('refuses a Message Batch of 1,000 Opus requests by default, naming the profile option; nothing reaches the upstream', async () => {
    const before = upstream.requests.length;
    for (const path of ['/anthropic/v1/messages/batches', '/anthropic/v1/messages/batches?beta=true', '/profiles/lite/anthropic/v1/messages/batches']) {
      const r = await call(gw, 'POST', path, batchBody(1000));
      assert.equal(r.status, 403, path);
      assert.equal(r.body.error?.type, 'permission_error');
      assert.match(r.body.error!.message, /POST \/v1\/messages\/batches is not forwarded: Message Batches are billed when the batch runs/);
      assert.match(r.body.error!.message, /"allowUnmetered"/);
    }
    assert.equal(upstream.requests.length, before);
    assert.equal(litellm.requests.length, 0);
  });

  it('refuses endpoints the gateway does not know (they may cost money), on Anthropic and LiteLLM profiles', async () => {
    const before = upstream.requests.length;
    for (const [method, path] of [
      ['POST', '/anthropic/v1/complete'],
      ['POST', '/anthropic/v1/messages/batches/msgbatch_1/results'],
      ['PUT', '/anthropic/v1/messages'],
      ['GET', '/anthropic/v1/messages'],
      ['POST', '/anthropic/v2/messages'],
      ['POST', '/profiles/lite/anthropic/v1/complete'],
    ] as const) {
      const r = await call(gw, method, path, method === 'GET' ? undefined : '{"prompt":"x"}');
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.match(r.body.error!.message, /the gateway does not know this endpoint, so it cannot tell whether or what it costs/);
    }
    assert.equal(upstream.requests.length, before);
    assert.equal(litellm.requests.length, 0);
  });

  it('forwards free endpoints (models, batch reads and cancels, files) and records them at $0', async () => {
    const paths: Array<[string, string]> = [
      ['GET', '/anthropic/v1/models'],
      ['GET', '/anthropic/v1/models/claude-sonnet-4-5'],
      ['GET', '/anthropic/v1/messages/batches'],
      ['GET', '/anthropic/v1/messages/batches/msgbatch_01abc'],
      ['GET', '/anthropic/v1/messages/batches/msgbatch_01abc/results'],
      ['POST', '/anthropic/v1/messages/batches/msgbatch_01abc/cancel'],
      ['DELETE', '/anthropic/v1/messages/batches/msgbatch_01abc'],
      ['GET', '/anthropic/v1/files'],
    ];
    const before = upstream.requests.length;
    for (const [method, path] of paths) {
      const r = await call(gw, method, path);
      assert.notEqual(r.status, 403, `${method} ${path}: ${JSON.stringify(r.body)}`);
    }
    assert.deepEqual(
      upstream.requests.slice(before).map((r) => `${r.method} ${r.url}`),
      paths.map(([m, p]) => `${m} ${p.replace('/anthropic', '')}`),
    );
    const records = (await writtenCalls(gw.auditDir)).slice(-paths.length);
    assert.deepEqual(records.map((r) => [r.method, r.costUsd, r.unmetered]), paths.map(([m]) => [m, 0, undefined]));
  });

  it('a profile that allows batches forwards them recorded as unmetered, and still refuses them on a spent budget', async () => {
    const r = await call(gw, 'POST', '/profiles/batches/anthropic/v1/messages/batches', batchBody(3));
    assert.equal(r.status, 404, 'forwarded: the mock upstream answers 404 for a batch');
    assert.equal(upstream.last!.url, '/v1/messages/batches');
    const rec = (await writtenCalls(gw.auditDir)).at(-1)!;
    assert.equal(rec.unmetered, true);
    assert.equal(rec.path, '/profiles/batches/anthropic/v1/messages/batches');

    const wild = await call(gw, 'POST', '/profiles/batches/anthropic/v1/experimental/thing/run', '{}');
    assert.equal(wild.status, 404, 'an allowed pattern forwards');
    assert.equal((await writtenCalls(gw.auditDir)).at(-1)!.unmetered, true);

    // One Opus call spends the $0.001 budget of the profile; the next batch is refused by the budget.
    const spend = await call(gw, 'POST', '/profiles/batches/anthropic/v1/messages', JSON.stringify({ model: 'claude-opus-4-1', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }));
    assert.equal(spend.status, 200);
    const forwarded = upstream.requests.length;
    const refused = await call(gw, 'POST', '/profiles/batches/anthropic/v1/messages/batches', batchBody(1000));
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error?.type, 'billing_error');
    assert.equal(upstream.requests.length, forwarded);
  });

  it('prices the model the upstream reads: escaped key names, duplicated keys (the last wins) and whitespace before a comma', async () => {
    const cases: Array<[string, string, boolean]> = [
      ['{"mod\\u0065l":"claude-opus-4-1","max_tokens":8,"messages":[{"role":"user","content":"x"}]}', 'claude-opus-4-1', false],
      ['{"model":"claude-haiku-4-5","max_tokens":8,"messages":[{"role":"user","content":"x"}],"model":"claude-opus-4-1"}', 'claude-opus-4-1', false],
      ['{"model":"claude-opus-4-1","stream":true\t,"max_tokens":8,"messages":[{"role":"user","content":"x"}]}', 'claude-opus-4-1', true],
    ];
    for (const [body, model, stream] of cases) {
      const res = await fetch(`${gw.url}/anthropic/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
        body,
      });
      await res.text();
      assert.equal(res.status, 200, body);
      assert.equal(upstream.last!.json!.model, model, 'the upstream reads this model');
      const rec = (await writtenCalls(gw.auditDir)).at(-1)!;
      assert.equal(rec.requestedModel, model, `recorded model for ${body}`);
      assert.equal(rec.streaming, stream, `recorded stream flag for ${body}`);
      assert.equal(rec.family, 'opus-4', 'priced as Opus 4.1');
    }
  });

  it('the unified endpoint maps models by the profile\'s own entries only (a model named after an Object member is sent as is)', async () => {
    for (const model of ['constructor', 'toString', '__proto__', 'claude-sonnet-4-5']) {
      const res = await fetch(`${gw.url}/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
        body: JSON.stringify({ model, max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }),
      });
      await res.text();
      assert.equal(upstream.last!.json!.model, model === 'claude-sonnet-4-5' ? 'claude-sonnet-4-5-20250929' : model, model);
    }
  });

  it('a body that is not JSON is refused by the gateway with the position, before it is forwarded or priced', async () => {
    const before = upstream.requests.length;
    const r = await call(gw, 'POST', '/anthropic/v1/messages', '{"model":"claude-opus-4-1",');
    assert.equal(r.status, 400);
    assert.equal(r.body.error?.type, 'invalid_request_error');
    assert.match(r.body.error!.message, /not valid JSON: .* at byte \d+/);
    assert.equal(upstream.requests.length, before);
  });
});
