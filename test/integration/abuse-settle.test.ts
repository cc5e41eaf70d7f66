import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import type { SettledCall } from '../../src/core/gateway/call';
import { encodeEventStreamMessage } from '../../src/core/streams/eventstream';
import { writtenCalls } from '../helpers/audit';
import { cloudHeaders, cloudProfiles } from '../helpers/cloud';
import { nextSettled, startGateway, type TestGateway } from '../helpers/gateway';

const BEDROCK_TOKEN = 'bedrock-api-key-settle-test';
const VERTEX_TOKEN = 'ya29.settle-client-token';

/** How the scripted upstream answers the next request. */
type Script = 'cut-error' | 'count-html' | 'count-no-number' | 'deep-event' | 'error-huge';

/**
 * An upstream that answers at the byte level, so it can send what no well-behaved server would: a 503 whose body stops
 * halfway and is reset, a count_tokens answer in HTML, an event-stream chunk nested too deeply to re-serialise.
 */
class ScriptedUpstream {
  readonly script: Script[] = [];
  requests = 0;
  private server?: net.Server;
  private sockets = new Set<net.Socket>();

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as net.AddressInfo).port}`;
  }

  async start(): Promise<this> {
    this.server = net.createServer((s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString('latin1');
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
        if (Buffer.byteLength(buf, 'latin1') < end + 4 + length) return;
        buf = '';
        this.requests++;
        this.answer(s, this.script.shift() ?? 'cut-error');
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return this;
  }

  private answer(s: net.Socket, script: Script): void {
    const head = (status: string, type: string, length: number) => `HTTP/1.1 ${status}\r\nContent-Type: ${type}\r\nContent-Length: ${length}\r\n\r\n`;
    switch (script) {
      case 'cut-error':
        // 1,000 bytes announced, 30 sent, then a reset.
        s.write(`${head('503 Service Unavailable', 'application/json', 1000)}{"message":"The service is unav`, () => s.resetAndDestroy());
        return;
      case 'error-huge': {
        // A 400 whose body never ends: the gateway reads a bounded prefix and answers.
        s.write(head('400 Bad Request', 'application/json', 50 << 20));
        const chunk = Buffer.alloc(64 * 1024, 'x');
        const pump = () => {
          while (!s.destroyed && s.write(chunk));
          if (!s.destroyed) s.once('drain', pump);
        };
        s.write('{"message":"');
        pump();
        return;
      }
      case 'count-html': {
        const body = '<html><body>502 Bad Gateway</body></html>';
        s.end(head('200 OK', 'text/html', body.length) + body);
        return;
      }
      case 'count-no-number': {
        const body = JSON.stringify({ inputTokens: 'many' });
        s.end(head('200 OK', 'application/json', body.length) + body);
        return;
      }
      case 'deep-event': {
        const deep = `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"},"extra":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
        const frame = encodeEventStreamMessage({ ':event-type': 'chunk', ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify({ bytes: Buffer.from(deep).toString('base64') }));
        s.write(`HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nTransfer-Encoding: chunked\r\n\r\n${frame.length.toString(16)}\r\n`);
        s.end(Buffer.concat([frame, Buffer.from('\r\n0\r\n\r\n')]));
        return;
      }
    }
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }
}

/** A call that settles within a bound, or a clear failure (on the old code these never settled). */
function settledWithin(gw: TestGateway, ms = 15_000): Promise<SettledCall> {
  const settled = nextSettled(gw);
  return Promise.race([settled, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the call did not settle within ${ms} ms`)), ms).unref())]);
}

/**
 * Every call settles exactly once, whatever goes wrong after the gateway has taken the response over: the client gets an
 * answer or a closed connection, one audit line is written, /health's callsInFlight returns to 0 and /budgets holds no
 * reservation. The unified Bedrock and Vertex routes, where a cut error body or a count_tokens answer that is not JSON
 * once left the client waiting forever.
 */
describe('abuse: calls that never settled', () => {
  let upstream: ScriptedUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await new ScriptedUpstream().start();
    const p = cloudProfiles({ bedrockUrl: upstream.url, vertexUrl: upstream.url, projectId: 'settle-proj', tokenEnv: 'SETTLE_BEDROCK_TOKEN' });
    gw = await startGateway(
      { budgets: [{ scope: 'global', usd: 1000, period: 'day' }], profiles: [{ name: 'bedrock', ...p.bedrock }, { name: 'vertex', ...p.vertex }] },
      { env: { SETTLE_BEDROCK_TOKEN: BEDROCK_TOKEN } },
    );
  });
  after(async () => {
    await gw.close();
    await upstream.stop();
  });

  function headers(profile: string): Record<string, string> {
    return cloudHeaders(gw, profile === 'vertex', VERTEX_TOKEN);
  }

  /** Sends one call; resolves with what the client saw (a response, or the error of a closed connection). */
  async function call(profile: string, path: string, body: string): Promise<{ status?: number; text?: string; closed?: string }> {
    try {
      const res = await fetch(`${gw.url}/profiles/${profile}${path}`, { method: 'POST', headers: headers(profile), body, signal: AbortSignal.timeout(15_000) });
      return { status: res.status, text: await res.text() };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      if (e.name === 'TimeoutError') throw new Error('the client was left waiting: no answer and no closed connection within 15 s');
      return { closed: e.cause?.code ?? e.cause?.message ?? e.message };
    }
  }

  /** The gateway's state once a call has settled: nothing in flight, nothing reserved. */
  async function assertNothingHeld(): Promise<void> {
    const health = (await (await fetch(`${gw.url}/health`)).json()) as { callsInFlight: number };
    assert.equal(health.callsInFlight, 0, '/health callsInFlight');
    const budgets = (await (await fetch(`${gw.url}/budgets`, { headers: { authorization: `Bearer ${gw.key}` } })).json()) as { budgets: Array<{ scope: string; reservedUsd: number }> };
    assert.equal(budgets.budgets.find((b) => b.scope === 'global')?.reservedUsd, 0, '/budgets reservedUsd');
  }

  const messages = (extra: Record<string, unknown> = {}) => JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 4000, messages: [{ role: 'user', content: 'hi' }], ...extra });

  const cases: Array<{ name: string; profile: string; path: string; script: Script; body?: string; status: SettledCall['status']; message: RegExp }> = [
    { name: 'Bedrock: a 503 whose error body is cut short, then reset', profile: 'bedrock', path: '/v1/messages', script: 'cut-error', status: 'upstream_cut', message: /cut its answer short: its error answer \(HTTP 503\) ended after/ },
    { name: 'Vertex: a 503 whose error body is cut short, then reset', profile: 'vertex', path: '/v1/messages', script: 'cut-error', status: 'upstream_cut', message: /cut its answer short/ },
    { name: 'Bedrock: a cut error body on a streaming call', profile: 'bedrock', path: '/v1/messages', script: 'cut-error', body: messages({ stream: true }), status: 'upstream_cut', message: /cut its answer short/ },
    { name: 'Bedrock: count_tokens answered in HTML', profile: 'bedrock', path: '/v1/messages/count_tokens', script: 'count-html', status: 'gateway_error', message: /sent an answer the gateway cannot read: count_tokens answered HTTP 200 \(text\/html/ },
    { name: 'Bedrock: count_tokens answered JSON without a count', profile: 'bedrock', path: '/v1/messages/count_tokens', script: 'count-no-number', status: 'gateway_error', message: /cannot read: count_tokens/ },
    { name: 'Bedrock: a cut error body on count_tokens', profile: 'bedrock', path: '/v1/messages/count_tokens', script: 'cut-error', status: 'upstream_cut', message: /cut its answer short/ },
  ];
  for (const c of cases) {
    it(`${c.name}: the client gets a 502 naming the upstream, one audit line, nothing held`, async () => {
      const before = (await writtenCalls(gw.auditDir)).length;
      upstream.script.push(c.script);
      const settled = settledWithin(gw);
      const res = await call(c.profile, c.path, c.body ?? messages());
      const s = await settled;
      assert.equal(res.status, 502, JSON.stringify(res));
      const error = (JSON.parse(res.text!) as { type: string; error: { type: string; message: string } });
      assert.equal(error.type, 'error');
      assert.equal(error.error.type, 'api_error');
      assert.match(error.error.message, new RegExp(`profile "${c.profile}" \\(${upstream.url.replace(/[.]/g, '\\.')}\\)`));
      assert.match(error.error.message, c.message);
      assert.equal(s.status, c.status);
      assert.equal(s.httpStatus, 502);
      const calls = (await writtenCalls(gw.auditDir)).slice(before);
      assert.equal(calls.length, 1, 'exactly one audit line');
      assert.equal(calls[0].status, c.status);
      await assertNothingHeld();
    });
  }

  it('an error body that never ends is read to a bound: the client gets the upstream status and the start of its message', async () => {
    upstream.script.push('error-huge');
    const settled = settledWithin(gw);
    const res = await call('bedrock', '/v1/messages', messages());
    const s = await settled;
    assert.equal(res.status, 400, JSON.stringify(res).slice(0, 300));
    assert.ok(res.text!.length < 100 * 1024, `${res.text!.length} characters`);
    assert.equal(s.status, 'upstream_error');
    await assertNothingHeld();
  });

  it('Bedrock stream: an event too deeply nested to re-emit ends the stream with an error event; the call settles', async () => {
    upstream.script.push('deep-event');
    const settled = settledWithin(gw);
    const res = await call('bedrock', '/v1/messages', messages({ stream: true }));
    const s = await settled;
    assert.equal(res.status, 200, JSON.stringify(res).slice(0, 300));
    assert.match(res.text!, /event: error\ndata: .*nested too deeply to re-emit/);
    assert.equal(s.errorType, 'api_error');
    await assertNothingHeld();
  });

  it('a deeply nested body is a 400 "nested too deeply" on every unified Bedrock and Vertex route; nothing is sent', async () => {
    const deep = `{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}],"metadata":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const sent = upstream.requests;
    for (const profile of ['bedrock', 'vertex']) {
      for (const path of ['/v1/messages', '/v1/messages/count_tokens', '/anthropic/v1/messages']) {
        const res = await call(profile, path, deep);
        assert.equal(res.status, 400, `${profile} ${path}: ${JSON.stringify(res).slice(0, 300)}`);
        assert.match(res.text!, /nested too deeply/);
      }
    }
    assert.equal(upstream.requests, sent);
    await assertNothingHeld();
  });
});
