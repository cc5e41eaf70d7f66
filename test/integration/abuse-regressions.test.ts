import * as assert from 'node:assert/strict';
import { messagesBody, rawRequest, startAbuseGateway, type AbuseGateway } from '../helpers/abuse';

/** One request that once found a bug, and what the gateway must do with it now. */
interface Regression {
  /** What was wrong. */
  bug: string;
  method?: string;
  target: string;
  /** Extra header lines. */
  headers?: string[];
  status: number;
  /** Exact paths the Anthropic upstream must receive ([] = none). */
  upstream: string[];
}

const KEY = '<gateway key>';

/** The corpus: counterexamples from the fast-check runs (abuse-fuzz) and from hand probing during the abuse review. */
const CORPUS: Regression[] = [
  { bug: 'pinned profile named like the route: indexOf found the wrong "/anthropic"', target: '/profiles/anthropic/anthropic/v1/messages', status: 200, upstream: ['/v1/messages'] },
  { bug: 'encoded profile name: marker not found, POST forwarded to "/"', target: '/profiles/%61nthropic/v1/messages', status: 200, upstream: ['/v1/messages'] },
  { bug: 'route prefix in another spelling was matched by the decoding router', target: '/profiles/anthropic/%61nthropic/v1/messages', status: 400, upstream: [] },
  { bug: 'encoded unreserved character: matched /v1/messages, forwarded unaccounted', target: '/v1/%6dessages', status: 400, upstream: [] },
  { bug: 'encoded unreserved character on the passthrough route', target: '/anthropic/v1/messag%65s', status: 400, upstream: [] },
  { bug: 'fragment forwarded upstream, model not accounted', target: '/v1/messages#x', status: 400, upstream: [] },
  { bug: 'fragment on the passthrough route', target: '/anthropic/v1/messages#/../../x', status: 400, upstream: [] },
  { bug: 'absolute-form target routed on its path and forwarded as /.evil/anthropic/...', target: 'http://anthropic.evil/anthropic/v1/messages', status: 400, upstream: [] },
  { bug: 'absolute-form target naming the gateway itself', target: 'http://127.0.0.1:1/anthropic/v1/messages', status: 400, upstream: [] },
  { bug: 'two Host lines: Node used the first', target: '/anthropic/v1/messages', headers: ['Host: evil.example'], status: 400, upstream: [] },
  { bug: 'malformed escape answered in Fastify\'s error shape (FST_ERR_BAD_URL)', target: '/anthropic/%u002e%u002e/v1/messages', status: 400, upstream: [] },
  { bug: 'fast-check: "Expect: 100-continue" was forwarded and undici refused it (502)', target: '/anthropic/v1/messages', headers: ['Expect: 100-continue'], status: 200, upstream: ['/v1/messages'] },
  { bug: 'fast-check: an empty Expect got an empty 417 from Node', target: '/anthropic/v1/messages', headers: ['Expect: '], status: 417, upstream: [] },
  { bug: 'cross-site no-cors request (no Origin) answered', method: 'GET', target: '/health', headers: ['Sec-Fetch-Site: cross-site'], status: 403, upstream: [] },
];

describe('abuse: regressions (corpus of requests that found bugs)', () => {
  let gw: AbuseGateway;
  const body = messagesBody();

  before(async () => {
    gw = await startAbuseGateway();
  });
  after(async () => {
    await gw.assertNoLeaks();
    await gw.close();
  });

  for (const r of CORPUS) {
    it(`${r.bug}: ${r.method ?? 'POST'} ${r.target} ${r.headers?.join(' ') ?? ''}`, async () => {
      const before = gw.upstream.requests.length;
      const head = [`${r.method ?? 'POST'} ${r.target} HTTP/1.1`, 'Host: 127.0.0.1', `Authorization: Bearer ${KEY}`, ...(r.headers ?? []), `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'];
      const res = gw.record(await rawRequest(gw.port, `${head.join('\r\n').replace(KEY, gw.secrets.key)}\r\n\r\n${body}`));
      assert.equal(res.status, r.status, res.raw.slice(0, 400));
      if (res.status >= 400) assert.equal((JSON.parse(res.body) as { type: string }).type, 'error', 'Anthropic error shape');
      assert.deepEqual(
        gw.upstream.requests.slice(before).map((u) => u.url),
        r.upstream,
      );
      assert.equal(gw.evil.connections, 0);
    });
  }

  it('a request Node cannot parse is logged without its raw bytes (Fastify logged rawPacket, credentials included)', async () => {
    await rawRequest(gw.port, `POST /anthropic/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${gw.secrets.key}\r\nX-A: a\rb\r\n\r\n`);
    const line = gw.logs.find((l) => l.includes('client error'));
    assert.ok(line, 'the parse error is logged');
    assert.ok(!line.includes('rawPacket'), line);
  });

  it('deeply nested JSON with a model map: a 400, where JSON.stringify threw a RangeError answered as 500', async () => {
    const depth = 50_000;
    const res = await gw.fetch('/profiles/mapped/v1/messages', {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.secrets.key}` },
      body: `{"model":"claude-sonnet-4-5","messages":${'['.repeat(depth)}${']'.repeat(depth)}}`,
    });
    assert.equal(res.status, 400);
  });
});
