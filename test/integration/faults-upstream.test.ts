import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { auditCalls, until } from '../helpers/audit';
import { startGateway, type TestGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';
import { MockBedrock } from '../helpers/mock-bedrock';

const BEDROCK_TOKEN = 'faults-bedrock-api-key-0123456789';
const BEDROCK_MODEL = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';
const BEDROCK_BODY = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
type Rec = Record<string, unknown> & { usage: { input: number; output: number }; status: string };
type ErrorBody = { type: string; error: { type: string; message: string } };

/** A port where nothing listens (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Reads a response body to its end, or to the error that cut it; never hangs past `ms`. */
async function drain(res: Response, ms = 10_000): Promise<{ text: string; error?: string }> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = '';
  const deadline = setTimeout(() => void reader.cancel('test deadline'), ms);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text };
      text += dec.decode(value, { stream: true });
    }
  } catch (err) {
    return { text, error: String((err as Error).cause ?? err) };
  } finally {
    clearTimeout(deadline);
  }
}

/**
 * Upstream faults: every failure reaches the client as the upstream's own error where there is one, else as a clear
 * 502/504 in Anthropic's shape; nothing hangs; and the audit log records what happened, with the usage seen.
 */
describe('faults: the upstream misbehaves', function () {
  this.timeout(30_000);
  let upstream: MockAnthropic;
  let bedrock: MockBedrock;
  let gw: TestGateway;
  let strict: TestGateway;
  let dead: TestGateway;

  const messages = (g: TestGateway, stream: boolean, signal?: AbortSignal, route = '/v1/messages') =>
    fetch(`${g.url}${route}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-sonnet-4-5-20250929', max_tokens: 5, stream, messages: [{ role: 'user', content: 'x' }] }),
      signal,
    });
  const bedrockCall = (g: TestGateway, action: string, profile = 'bedrock') =>
    fetch(`${g.url}/profiles/${profile}/bedrock/model/${BEDROCK_MODEL}/${action}`, { method: 'POST', headers: { authorization: `Bearer ${g.key}` }, body: BEDROCK_BODY });
  /** The call record the next settlement writes. */
  async function nextRecord(g: TestGateway, before: number): Promise<Rec> {
    await until(() => auditCalls(g.auditDir).length > before);
    return auditCalls(g.auditDir)[before] as Rec;
  }
  const count = (g: TestGateway) => auditCalls(g.auditDir).length;

  before(async () => {
    upstream = await new MockAnthropic().start();
    bedrock = await new MockBedrock(() => undefined).start();
    bedrock.bearerToken = BEDROCK_TOKEN;
    const env = { FAULTS_BEDROCK_TOKEN: BEDROCK_TOKEN };
    const profiles = (anthropicUrl: string, bedrockUrl: string) => [
      { name: 'a', provider: 'anthropic', apiKey: 'sk-ant-x', baseUrl: anthropicUrl },
      { name: 'bedrock', provider: 'bedrock', region: 'us-east-1', bearerToken: '${env:FAULTS_BEDROCK_TOKEN}', endpoint: bedrockUrl },
      { name: 'bedrock-unified', provider: 'bedrock', mode: 'unified', region: 'us-east-1', bearerToken: '${env:FAULTS_BEDROCK_TOKEN}', endpoint: bedrockUrl },
    ];
    gw = await startGateway({ profiles: profiles(upstream.url, bedrock.url) }, { env });
    strict = await startGateway({ profiles: profiles(upstream.url, bedrock.url), upstream: { timeoutMs: 600 } }, { env });
    const port = await closedPort();
    dead = await startGateway({ profiles: profiles(`http://127.0.0.1:${port}`, `http://127.0.0.1:${port}`) }, { env });
  });
  after(async () => {
    upstream.release();
    await Promise.all([gw.close(), strict.close(), dead.close()]);
    await Promise.all([upstream.stop(), bedrock.stop()]);
  });

  it('refuses connections: 502 in Anthropic shape naming the upstream and the reason, on every route; recorded as gateway_error', async () => {
    for (const call of [() => messages(dead, false), () => messages(dead, true, undefined, '/anthropic/v1/messages'), () => bedrockCall(dead, 'invoke')]) {
      const before = count(dead);
      const res = await call();
      assert.equal(res.status, 502);
      const body = (await res.json()) as ErrorBody;
      assert.equal(body.type, 'error');
      assert.equal(body.error.type, 'api_error');
      assert.match(body.error.message, /Could not reach the upstream of profile "(a|bedrock)" \(http:\/\/127\.0\.0\.1:\d+\): ECONNREFUSED/);
      const rec = await nextRecord(dead, before);
      assert.equal(rec.status, 'gateway_error');
      assert.equal(rec.httpStatus, 502);
      assert.equal(rec.errorType, 'CCGW_UPSTREAM_UNREACHABLE');
      assert.match(rec.error as string, /ECONNREFUSED/);
    }
  });

  it('resets mid-stream (SSE): the client sees message_start, then the cut; the record says upstream_cut with the input usage seen', async () => {
    for (const route of ['/v1/messages', '/anthropic/v1/messages']) {
      upstream.script.push({ cutAfterStart: true });
      const before = count(gw);
      const res = await messages(gw, true, undefined, route);
      assert.equal(res.status, 200, 'the stream had started: the status is the upstream\'s');
      const r = await drain(res);
      assert.match(r.text, /event: message_start/);
      assert.ok(r.error, 'the client sees the cut, not a clean end');
      const rec = await nextRecord(gw, before);
      assert.equal(rec.status, 'upstream_cut');
      assert.equal(rec.usage.input, 25);
      assert.ok(rec.costUsd as number > 0, 'the usage seen is priced');
    }
  });

  it('resets mid-frame (Bedrock event stream), native and unified: cut at the client too, upstream_cut with the usage seen', async () => {
    bedrock.script.push({ cutMidFrame: true });
    let before = count(gw);
    const res = await bedrockCall(gw, 'invoke-with-response-stream');
    assert.equal(res.status, 200);
    assert.ok((await drain(res)).error);
    let rec = await nextRecord(gw, before);
    assert.equal(rec.status, 'upstream_cut');
    assert.equal(rec.usage.input, 30);

    bedrock.script.push({ cutMidFrame: true });
    before = count(gw);
    const unified = await messages(gw, true, undefined, '/profiles/bedrock-unified/v1/messages');
    assert.equal(unified.status, 200);
    const u = await drain(unified);
    assert.match(u.text, /event: message_start/);
    assert.ok(u.error, 'the translated SSE stream is cut too (no clean message_stop)');
    assert.doesNotMatch(u.text, /message_stop/);
    rec = await nextRecord(gw, before);
    assert.equal(rec.status, 'upstream_cut');
    assert.equal(rec.usage.input, 30);
  });

  it('stalls after message_start, the client gives up: upstream aborted, client_aborted with the usage seen', async () => {
    upstream.script.push({ holdAfterStart: true });
    const aborted = upstream.abortedStreams;
    const before = count(gw);
    const ac = new AbortController();
    const res = await messages(gw, true, ac.signal);
    await upstream.waitForHold();
    const reader = res.body!.getReader();
    assert.match(new TextDecoder().decode((await reader.read()).value), /message_start/);
    ac.abort();
    const rec = await nextRecord(gw, before);
    assert.equal(rec.status, 'client_aborted');
    assert.equal(rec.usage.input, 25);
    await until(() => upstream.abortedStreams > aborted);
    upstream.release();
  });

  it('stalls after message_start with upstream.timeoutMs set: the gateway ends it at the timeout; upstream_cut, UND_ERR_BODY_TIMEOUT, usage seen', async () => {
    upstream.script.push({ holdAfterStart: true });
    const before = count(strict);
    const t0 = Date.now();
    const res = await messages(strict, true);
    const r = await drain(res);
    const took = Date.now() - t0;
    assert.match(r.text, /message_start/);
    assert.ok(r.error, 'the client sees the cut');
    assert.ok(took >= 500 && took < 5000, `ended after ${took} ms`);
    const rec = await nextRecord(strict, before);
    assert.equal(rec.status, 'upstream_cut');
    assert.equal(rec.error, 'UND_ERR_BODY_TIMEOUT');
    assert.equal(rec.usage.input, 25);
    upstream.release();
  });

  for (const status of [429, 500, 529]) {
    it(`answers ${status} with retry-after: passed through unchanged (status, retry-after, body) on /v1/messages, /anthropic and /bedrock`, async () => {
      const body = JSON.stringify({ type: 'error', error: { type: status === 429 ? 'rate_limit_error' : status === 529 ? 'overloaded_error' : 'api_error', message: `upstream says ${status}` } });
      for (const route of ['/v1/messages', '/anthropic/v1/messages']) {
        upstream.script.push({ status, headers: { 'retry-after': '17', 'x-should-retry': 'true' }, body });
        const before = count(gw);
        const res = await messages(gw, true, undefined, route);
        assert.equal(res.status, status);
        assert.equal(res.headers.get('retry-after'), '17');
        assert.equal(res.headers.get('x-should-retry'), 'true');
        assert.equal(await res.text(), body);
        const rec = await nextRecord(gw, before);
        assert.equal(rec.status, 'upstream_error');
        assert.equal(rec.upstreamStatus, status);
      }
      const awsBody = JSON.stringify({ message: `Too many requests (${status})` });
      bedrock.script.push({ status, headers: { 'retry-after': '9' }, body: awsBody });
      const before = count(gw);
      const res = await bedrockCall(gw, 'invoke');
      assert.equal(res.status, status);
      assert.equal(res.headers.get('retry-after'), '9');
      assert.equal(await res.text(), awsBody);
      const rec = await nextRecord(gw, before);
      assert.equal(rec.status, 'upstream_error');
      assert.equal(rec.upstreamStatus, status);
    });
  }

  it('answers slowly: slow headers and a slow stream are served in full; beyond upstream.timeoutMs, a 504 in Anthropic shape', async () => {
    upstream.script.push({ delayMs: 1200 });
    let before = count(gw);
    const t0 = Date.now();
    const slow = await messages(gw, false);
    assert.equal(slow.status, 200);
    assert.equal(((await slow.json()) as { usage: { input_tokens: number } }).usage.input_tokens, 25);
    assert.ok(Date.now() - t0 >= 1200);
    let rec = await nextRecord(gw, before);
    assert.equal(rec.status, 'ok');
    assert.ok((rec.latencyMs as number) >= 1200);

    upstream.script.push({ eventGapMs: 100 });
    before = count(gw);
    const trickle = await drain(await messages(strict, true));
    assert.equal(trickle.error, undefined, 'gaps shorter than the timeout are fine');
    assert.match(trickle.text, /message_stop/);
    before = count(strict) - 1;
    rec = await nextRecord(strict, before);
    assert.equal(rec.status, 'ok');

    upstream.script.push({ delayMs: 1500 });
    before = count(strict);
    const late = await messages(strict, false);
    assert.equal(late.status, 504);
    const body = (await late.json()) as ErrorBody;
    assert.equal(body.error.type, 'api_error');
    assert.match(body.error.message, /did not answer in time: UND_ERR_HEADERS_TIMEOUT/);
    rec = await nextRecord(strict, before);
    assert.equal(rec.status, 'gateway_error');
    assert.equal(rec.errorType, 'CCGW_UPSTREAM_TIMEOUT');
  });

  it('returns a huge body (48 MiB JSON): every byte arrives, and the usage at its end is still read and priced', async () => {
    const MiB = 1 << 20;
    const big = http.createServer((req, res) => {
      req.resume();
      req.on('end', async () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"id":"msg_huge","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"');
        const chunk = Buffer.alloc(MiB, 'x');
        for (let i = 0; i < 48; i++) if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
        res.end('"}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":12000000,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}');
      });
    });
    await new Promise<void>((r) => big.listen(0, '127.0.0.1', r));
    const g = await startGateway({ profiles: [{ name: 'big', provider: 'anthropic', apiKey: 'sk-ant-x', baseUrl: `http://127.0.0.1:${(big.address() as AddressInfo).port}` }] });
    try {
      const res = await messages(g, false);
      assert.equal(res.status, 200);
      const r = await drain(res, 20_000);
      assert.equal(r.error, undefined);
      assert.ok(r.text.length > 48 * MiB);
      assert.ok(r.text.endsWith('"cache_read_input_tokens":0}}'));
      const rec = await nextRecord(g, 0);
      assert.equal(rec.status, 'ok');
      assert.equal(rec.usage.output, 12_000_000);
      assert.equal(rec.responseModel, 'claude-sonnet-4-5-20250929');
      assert.ok((rec.costUsd as number) > 100, 'a huge answer is not free');
    } finally {
      await g.close();
      big.closeAllConnections();
      await new Promise((r) => big.close(r));
    }
  });
});
