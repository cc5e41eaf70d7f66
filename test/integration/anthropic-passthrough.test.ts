import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import Anthropic from '@anthropic-ai/sdk';
import { MockAnthropic } from '../helpers/mock-anthropic';
import { startGateway, type TestGateway } from '../helpers/gateway';

const PROVIDER_KEY = 'sk-ant-test-provider-key-0001';

describe('Anthropic profile: passthrough and unified routes with the real SDK', () => {
  let upstream: MockAnthropic;
  let gw: TestGateway;

  before(async () => {
    upstream = await new MockAnthropic().start();
    upstream.requireApiKey = PROVIDER_KEY;
    gw = await startGateway(
      { profiles: [{ name: 'anthropic', provider: 'anthropic', apiKey: '${env:TEST_PROVIDER_KEY}', baseUrl: upstream.url }] },
      { env: { TEST_PROVIDER_KEY: PROVIDER_KEY } },
    );
  });
  after(async () => {
    await gw.close();
    await upstream.stop();
  });

  for (const [route, base] of [
    ['/anthropic', '/anthropic'],
    ['unified /v1/messages', ''],
  ] as const) {
    it(`${route}: a streamed turn arrives intact and upstream sees the profile key, never the gateway key`, async () => {
      const client = new Anthropic({ baseURL: gw.url + base, authToken: gw.key, apiKey: null });
      const stream = client.beta.messages.stream(
        { model: 'claude-opus-4-8', max_tokens: 64, messages: [{ role: 'user', content: 'say pong' }], betas: ['claude-code-20250219'] },
        { headers: { 'x-claude-code-session-id': 'sess-1', 'anthropic-version': '2023-06-01' } },
      );
      const final = await stream.finalMessage();
      assert.equal(final.content[0].type === 'text' && final.content[0].text, 'pong');
      assert.equal(final.usage.cache_read_input_tokens, 2000);
      const seen = upstream.last!;
      assert.equal(seen.url.split('?')[0], '/v1/messages');
      assert.equal(seen.headers['x-api-key'], PROVIDER_KEY);
      assert.equal(seen.headers.authorization, undefined);
      assert.equal(seen.headers['anthropic-beta'], 'claude-code-20250219');
      assert.equal(seen.headers['anthropic-version'], '2023-06-01');
      assert.equal(seen.headers['x-claude-code-session-id'], 'sess-1');
      assert.ok(!JSON.stringify(seen.headers).includes(gw.key), 'the gateway key must not reach the upstream');
    });

    it(`${route}: non-streaming JSON works and the body reaches upstream byte for byte`, async () => {
      const body = JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }], unknown_future_field: { a: [1, 2] } });
      const res = await fetch(`${gw.url}${base}/v1/messages?beta=true`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
        body,
      });
      assert.equal(res.status, 200);
      const json = (await res.json()) as { content: Array<{ text: string }> };
      assert.equal(json.content[0].text, 'pong');
      assert.equal(upstream.last!.body.toString('utf8'), body);
      assert.equal(upstream.last!.url, '/v1/messages?beta=true', '?beta=true is kept');
    });
  }

  it('upstream errors come back unchanged: status, body, retry-after, x-should-retry and request-id', async () => {
    const errorBody = JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    upstream.script.push({ status: 529, body: errorBody, headers: { 'retry-after': '7', 'x-should-retry': 'true' } });
    const res = await fetch(`${gw.url}/anthropic/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': gw.key, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 5, messages: [] }),
    });
    assert.equal(res.status, 529);
    assert.equal(await res.text(), errorBody);
    assert.equal(res.headers.get('retry-after'), '7');
    assert.equal(res.headers.get('x-should-retry'), 'true');
    assert.equal(res.headers.get('request-id'), 'req_mock_error');
  });

  it('streams without buffering: message_start reaches the client while upstream holds the stream open', async () => {
    upstream.script.push({ holdAfterStart: true });
    const res = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'x' }] }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('message_start')) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'stream ended before message_start');
      text += Buffer.from(value).toString('utf8');
    }
    await upstream.waitForHold();
    // The upstream is still holding the stream: what we have is what streamed through, not a buffered whole.
    assert.ok(!text.includes('message_stop'));
    upstream.release();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
    }
    assert.ok(text.includes('event: ping'), 'ping events pass through');
    assert.ok(text.includes('message_stop'));
  });

  it('a client that disconnects mid-stream aborts the upstream request', async () => {
    upstream.script.push({ holdAfterStart: true });
    const settled = new Promise<string>((resolve) => {
      const sub = gw.runtime.onDidSettleCall((c) => {
        sub.dispose();
        resolve(c.status);
      });
    });
    const req = http.request(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json' },
    });
    req.on('response', (res) => {
      res.once('data', () => req.destroy());
    });
    req.on('error', () => undefined);
    req.end(JSON.stringify({ model: 'm', max_tokens: 5, stream: true, messages: [] }));
    await upstream.waitForHold();
    assert.equal(await settled, 'client_aborted');
    upstream.release();
  });
});
