import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { messagesBody, rawRequest, startAbuseGateway, type AbuseGateway, type RawResponse } from '../helpers/abuse';

/** Route prefixes the router knows (and some it does not), to which fuzzed path tails are appended. */
const PREFIXES = ['/anthropic', '/v1/messages', '/v1', '', '/profiles/anthropic', '/profiles/anthropic/anthropic', '/profiles/lite', '/profiles/lite/anthropic', '/profiles/mapped', '/bedrock', '/vertex_ai/v1', '/health', 'http://evil.example', '//evil.example'];
/** Path pieces that have broken path handling somewhere before. */
const PIECES = ['/', '..', '.', '%2e', '%2E', '%252e', '%2f', '%2F', '%252f', '%5c', '\\', '@', '#', '?', '&', '=', '%', '%25', '%00', '%0d%0a', '%20', ';', ':', 'v1', 'messages', 'count_tokens', 'models', 'evil.example', '127.0.0.1', '%6d', '%C0%AE', '%ff', '~', '%7e', 'beta=true', 'http:', '*'];

/** Decodes %XX escapes once, leaving malformed ones as they are. */
function decodeOnce(s: string): string {
  return s.replace(/%([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** What must hold for any path the upstream received: origin-form, no dot segment even after one decoding, inside the prefix. */
function assertConfined(received: string, prefix: string, target: string): void {
  const path = received.split('?')[0];
  assert.ok(received.startsWith('/'), `${target} → upstream ${received}: not origin-form`);
  assert.ok(!received.includes('#'), `${target} → upstream ${received}: fragment forwarded`);
  assert.ok(path.startsWith(prefix), `${target} → upstream ${received}: left the profile prefix ${prefix}`);
  for (const seg of decodeOnce(path).split(/[/\\]/)) assert.ok(seg !== '.' && seg !== '..', `${target} → upstream ${received}: dot segment`);
  assert.ok(!/[\x00-\x1f\x7f]/.test(decodeOnce(path)), `${target} → upstream ${received}: control character`);
}

function assertGatewayAnswer(res: RawResponse, what: string, method: string): void {
  assert.ok(res.status >= 100 && res.status < 600, `${what}: no HTTP status in ${JSON.stringify(res.raw.slice(0, 120))}`);
  assert.ok(res.status < 500, `${what}: ${res.status} ${res.body.slice(0, 300)}`);
  if (res.status >= 400 && method !== 'HEAD') {
    const json = JSON.parse(res.body) as { type?: string; error?: { type?: string } };
    assert.equal(json.type, 'error', `${what}: not the Anthropic error shape: ${res.body.slice(0, 200)}`);
    assert.equal(typeof json.error?.type, 'string');
  }
  for (const name of Object.keys(res.headers)) assert.ok(!name.startsWith('access-control-'), `${what}: ${name}`);
}

/**
 * Property-based fuzzing of the request path parser, the router and header handling against a real gateway: whatever
 * the target and headers, the gateway answers well-formed (never a 5xx of its own), and every request that reaches an
 * upstream reaches the profile's upstream, inside its prefix. Counterexamples that found bugs live in
 * abuse-regressions.test.ts.
 */
describe('abuse: fuzzing the path parser, router and headers (fast-check)', function () {
  this.timeout(60_000);
  let gw: AbuseGateway;
  const body = messagesBody();

  before(async () => {
    gw = await startAbuseGateway();
  });
  after(async () => {
    await gw.assertNoLeaks();
    await gw.close();
  });

  async function sendAndCheck(method: string, target: string, headerLines: string[]): Promise<RawResponse> {
    const a = gw.upstream.requests.length;
    const l = gw.litellm.requests.length;
    const head = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', `Authorization: Bearer ${gw.secrets.key}`, ...headerLines, `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'];
    const res = gw.record(await rawRequest(gw.port, `${head.join('\r\n')}\r\n\r\n${body}`));
    const what = `${method} ${JSON.stringify(target)} ${JSON.stringify(headerLines)}`;
    assertGatewayAnswer(res, what, method);
    for (const r of gw.upstream.requests.slice(a)) {
      assertConfined(r.url, '/', what);
      assert.equal(r.headers['x-api-key'], gw.secrets.providerKey, `${what}: upstream credential`);
      assert.ok(!JSON.stringify(r.headers).includes(gw.secrets.key), `${what}: gateway key forwarded`);
    }
    for (const r of gw.litellm.requests.slice(l)) {
      assertConfined(r.url, '/team/proxy/', what);
      assert.ok(!JSON.stringify(r.headers).includes(gw.secrets.key), `${what}: gateway key forwarded`);
    }
    assert.equal(gw.evil.connections, 0, `${what}: the evil server was contacted`);
    return res;
  }

  it('request targets built from hostile pieces', async () => {
    const target = fc
      .tuple(fc.constantFrom(...PREFIXES), fc.array(fc.oneof(fc.constantFrom(...PIECES), fc.stringMatching(/^[A-Za-z0-9._~%-]{1,6}$/)), { maxLength: 8 }))
      .map(([prefix, pieces]) => prefix + pieces.join(''))
      .filter((t) => t.length > 0 && !/[\s]/.test(t));
    await fc.assert(
      fc.asyncProperty(target, fc.constantFrom('POST', 'GET', 'PUT', 'DELETE', 'HEAD'), async (t, method) => {
        await sendAndCheck(method, t, ['Content-Type: application/json']);
      }),
      { numRuns: 300, seed: Number(process.env.ABUSE_FUZZ_SEED ?? 42) },
    );
  });

  it('arbitrary header names and values', async () => {
    const name = fc.oneof(
      fc.constantFrom('host', 'x-api-key', 'authorization', 'proxy-authorization', 'content-length', 'transfer-encoding', 'connection', 'x-forwarded-host', 'forwarded', 'anthropic-beta', 'x-claude-code-gateway-project', 'expect', 'upgrade', 'te', 'origin', 'sec-fetch-site'),
      fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}$/),
    );
    const value = fc.oneof(
      fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 }),
      fc.constantFrom('evil.example', '127.0.0.1:1', 'chunked', 'close', '100-continue', 'websocket', 'Bearer ', '\t', 'a\u0080b', 'é'),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(name, value), { maxLength: 4 }), async (headers) => {
        await sendAndCheck('POST', '/anthropic/v1/messages?beta=true', headers.map(([n, v]) => `${n}: ${v}`));
      }),
      { numRuns: 300, seed: Number(process.env.ABUSE_FUZZ_SEED ?? 42) },
    );
  });
});
