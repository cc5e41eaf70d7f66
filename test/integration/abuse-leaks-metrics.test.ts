import * as assert from 'node:assert/strict';
import { sha256 } from '../../src/core/gateway/keys';
import { startGateway, type TestGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

const BOB_KEY = 'ccgw-bob-key-for-the-metrics-abuse-test-01';
const ALICE_KEY = 'ccgw-alice-key-for-the-metrics-abuse-test-1';
const METRICS_TOKEN = 'metrics-scraper-token-for-the-abuse-test-0001';

/**
 * /metrics shows every budget's spend and limit and every team's name: only admin keys and the metrics token read it
 * (a key gets a 403 permission_error, as it would for another key's usage), and its labels never carry key ids.
 */
describe('abuse: /metrics is for admins and the metrics token, and names no key', () => {
  let upstream: MockAnthropic;
  let gw: TestGateway;

  before(async () => {
    upstream = await new MockAnthropic().start();
    gw = await startGateway(
      {
        profiles: [{ name: 'anthropic', provider: 'anthropic', apiKey: 'sk-ant-metrics-test', baseUrl: upstream.url }],
        keys: [
          { id: 'bob', key: BOB_KEY, team: 'secret-team' },
          { id: 'alice', key: ALICE_KEY },
        ],
        budgets: [
          { scope: 'key:bob', usd: 5, period: 'day' },
          { scope: 'team:secret-team', usd: 50, period: 'day' },
          { scope: 'global', usd: 500, period: 'month' },
        ],
        metrics: { token: '${env:METRICS_TEST_TOKEN}' },
      },
      { env: { METRICS_TEST_TOKEN: METRICS_TOKEN } },
    );
    const res = await fetch(`${gw.url}/anthropic/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': BOB_KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(res.status, 200);
    await res.text();
  });
  after(async () => {
    await gw.close();
    await upstream.stop();
  });

  const scrape = (authorization?: string) => fetch(`${gw.url}/metrics`, { headers: authorization ? { authorization } : {} });

  it('a key that is not an admin key gets a 403 permission_error, whatever header carries it', async () => {
    for (const headers of [{ authorization: `Bearer ${ALICE_KEY}` }, { 'x-api-key': BOB_KEY }, { 'proxy-authorization': `Bearer ${BOB_KEY}` }] as Array<Record<string, string>>) {
      const res = await fetch(`${gw.url}/metrics`, { headers });
      const text = await res.text();
      assert.equal(res.status, 403, text);
      const body = JSON.parse(text) as { type: string; error: { type: string; message: string } };
      assert.equal(body.error.type, 'permission_error');
      assert.match(body.error.message, /admin keys and the metrics token/);
      assert.ok(!text.includes('secret-team') && !text.includes('ccgw_budget'));
    }
    assert.equal((await scrape()).status, 401);
    assert.equal((await scrape('Bearer not-the-token')).status, 403);
  });

  it('an admin key and the metrics token read it; no label names a key', async () => {
    for (const authorization of [`Bearer ${gw.key}`, `Bearer ${METRICS_TOKEN}`]) {
      const res = await scrape(authorization);
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.match(text, /ccgw_requests_total\{profile="anthropic",provider="anthropic",model="claude-haiku-4-5",status="ok"\} 1/);
      assert.match(text, /ccgw_budget_remaining_usd\{scope="team:secret-team",period="day"\}/);
      assert.match(text, /ccgw_budget_limit_usd\{scope="global",period="month"\} 500/);
      assert.ok(!/key:|bob|alice/.test(text), `a label names a key:\n${text.split('\n').filter((l) => /key:|bob|alice/.test(l)).join('\n')}`);
    }
  });

  it('the metrics token opens /metrics only: not the model routes, not /usage or /budgets', async () => {
    for (const path of ['/usage', '/budgets', '/anthropic/v1/models']) {
      const res = await fetch(gw.url + path, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      assert.equal(res.status, 403, path);
      await res.text();
    }
  });

  it('the token may be configured by its SHA-256', async () => {
    const other = await startGateway({ profiles: [{ name: 'a', provider: 'anthropic', apiKey: 'x', baseUrl: upstream.url }], metrics: { sha256: sha256(METRICS_TOKEN).toString('hex') } });
    try {
      assert.equal((await fetch(`${other.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status, 200);
      assert.equal((await fetch(`${other.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}x` } })).status, 403);
    } finally {
      await other.close();
    }
  });
});
