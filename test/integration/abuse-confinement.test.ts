import * as assert from 'node:assert/strict';
import { messagesBody, rawRequest, startAbuseGateway, type AbuseGateway, type RawResponse } from '../helpers/abuse';

/**
 * Passthrough confinement: whatever the request target or Host header says, a request leaves only for the profile's
 * upstream, under the profile's path prefix, and never steps out of it. Requests go over raw sockets so that no client
 * library normalises the target first.
 */
describe('abuse: passthrough confinement', () => {
  let gw: AbuseGateway;
  const body = messagesBody();

  before(async () => {
    gw = await startAbuseGateway();
  });
  after(async () => {
    await gw.assertNoLeaks();
    await gw.close();
  });

  function send(target: string, opts: { host?: string; method?: string; extra?: string } = {}): Promise<RawResponse> {
    const head = [
      `${opts.method ?? 'POST'} ${target} HTTP/1.1`,
      `Host: ${opts.host ?? `127.0.0.1:${gw.port}`}`,
      `Authorization: Bearer ${gw.secrets.key}`,
      'Content-Type: application/json',
      `Content-Length: ${Buffer.byteLength(body)}`,
      ...(opts.extra ? [opts.extra] : []),
      'Connection: close',
    ];
    return rawRequest(gw.port, `${head.join('\r\n')}\r\n\r\n${body}`).then(gw.record);
  }

  /** Runs one attack and returns the paths each upstream received for it. */
  async function attack(target: string, opts?: Parameters<typeof send>[1]): Promise<{ res: RawResponse; anthropic: string[]; litellm: string[] }> {
    const a = gw.upstream.requests.length;
    const l = gw.litellm.requests.length;
    const res = await send(target, opts);
    const anthropic = gw.upstream.requests.slice(a).map((r) => r.url);
    const litellm = gw.litellm.requests.slice(l).map((r) => r.url);
    assert.equal(gw.evil.connections, 0, `${target}: the evil server was contacted`);
    for (const p of [...anthropic, ...litellm]) {
      assert.ok(p.startsWith('/'), `${target}: upstream path ${p} is not origin-form`);
      assert.ok(!/(^|\/)\.\.?(\/|$)|\\|#/.test(p.split('?')[0]), `${target}: upstream path ${p} has a dot segment, backslash or fragment`);
    }
    for (const p of litellm) assert.ok(p.startsWith('/team/proxy/'), `${target}: LiteLLM path ${p} left the profile's prefix`);
    return { res, anthropic, litellm };
  }

  /** Refused: a 400, or a 404 where no route matches at all. */
  function assertRefused(r: { res: RawResponse; anthropic: string[]; litellm: string[] }, target: string): void {
    assert.ok(r.res.status === 400 || r.res.status === 404, `${target}: ${r.res.status} ${r.res.body}`);
    assert.equal(JSON.parse(r.res.body).type, 'error', `${target}: Anthropic error shape`);
    assert.deepEqual([...r.anthropic, ...r.litellm], [], `${target}: nothing may reach an upstream`);
  }

  const refused = [
    '/anthropic/../v1/messages',
    '/anthropic/./v1/messages',
    '/anthropic/v1/messages/..',
    '/anthropic/%2e%2e/v1/messages',
    '/anthropic/%2E%2E/v1/messages',
    '/anthropic/.%2e/v1/messages',
    '/anthropic/%2e./v1/messages',
    '/anthropic/v1%2fmessages',
    '/anthropic/v1%2Fmessages',
    '/anthropic/..%2fv1/messages',
    '/anthropic/v1%5cmessages',
    '/anthropic\\..\\v1/messages',
    '/anthropic/v1\\messages',
    '/anthropic//evil.example/v1/messages',
    '/anthropic/v1//messages',
    '/anthropic/v1/messages#frag',
    '/anthropic/v1/messages?beta=true#frag',
    '/v1/messages#frag',
    '/anthropic/v1/%6dessages',
    '/v1/%6dessages',
    '/anthropic/v1/messages%00',
    '/anthropic/v1/messages%0d%0aX-Injected:%201',
    '/profiles/lite/anthropic/../../v1/messages',
    '/profiles/lite/%2e%2e/v1/messages',
    '/profiles/anthropic/%61nthropic/v1/messages',
    '/anthropic/%u002e%u002e/v1/messages',
    '/anthropic/%zz/v1/messages',
  ];
  for (const target of refused) {
    it(`refuses ${JSON.stringify(target)} (400/404) and sends nothing upstream`, async () => {
      assertRefused(await attack(target), target);
    });
  }

  it('refuses absolute-form request targets (POST http://evil/...): the gateway is not a forward proxy', async () => {
    for (const target of [
      `http://${gw.evil.hostPort}/anthropic/v1/messages`,
      `http://${gw.evil.hostPort}/v1/messages`,
      `https://${gw.evil.hostPort}/anthropic/v1/messages`,
      `http://anthropic.evil/anthropic/v1/messages`,
      `http://127.0.0.1:${gw.port}/anthropic/v1/messages`,
      `${gw.evil.hostPort}/v1/messages`,
      '*',
    ]) {
      assertRefused(await attack(target), target);
    }
  });

  it('double encoding and "@" in the path never reach another host: such paths name no endpoint the gateway meters, so they are refused', async () => {
    // Before the gateway knew its endpoints these were forwarded literally to the profile host (never decoded into a dot
    // segment or userinfo); now an endpoint it cannot meter is refused before anything is sent.
    for (const target of ['/anthropic/%252e%252e/%252fv1/messages', `/anthropic/@${gw.evil.hostPort}/v1/messages`, `/profiles/lite/anthropic/@${gw.evil.hostPort}/v1/messages`]) {
      const r = await attack(target);
      assert.equal(r.res.status, 403, `${target}: ${r.res.body}`);
      assert.match(r.res.body, /is not forwarded: the gateway does not know this endpoint/);
      assert.deepEqual([...r.anthropic, ...r.litellm], [], target);
    }
  });

  it('a Host header naming another (loopback) server changes nothing: the request goes to the profile upstream', async () => {
    for (const host of [gw.evil.hostPort, `localhost:${gw.evil.port}`, '127.0.0.2']) {
      const r = await attack('/anthropic/v1/messages?beta=true', { host });
      assert.equal(r.res.status, 200, r.res.body);
      assert.deepEqual(r.anthropic, ['/v1/messages?beta=true']);
    }
  });

  it('forwarding headers (X-Forwarded-Host, Forwarded, X-Original-URL) do not move the request', async () => {
    for (const extra of [`X-Forwarded-Host: ${gw.evil.hostPort}`, `Forwarded: host=${gw.evil.hostPort}`, 'X-Original-URL: /../../etc', 'X-Rewrite-URL: //evil/']) {
      const r = await attack('/anthropic/v1/messages', { extra });
      assert.equal(r.res.status, 200, r.res.body);
      assert.deepEqual(r.anthropic, ['/v1/messages']);
    }
  });

  it('a profile pinned in the path is found by position: /profiles/anthropic/anthropic/... reaches /v1/messages (regression)', async () => {
    const r = await attack('/profiles/anthropic/anthropic/v1/messages?beta=true');
    assert.equal(r.res.status, 200, r.res.body);
    assert.deepEqual(r.anthropic, ['/v1/messages?beta=true']);
    const r2 = await attack('/profiles/%61nthropic/v1/messages');
    assert.equal(r2.res.status, 200, r2.res.body);
    assert.deepEqual(r2.anthropic, ['/v1/messages'], 'an encoded profile name must not turn the upstream path into "/" (regression)');
  });

  it('LiteLLM profiles keep their path prefix on every route', async () => {
    const r = await attack('/profiles/lite/anthropic/v1/messages');
    assert.deepEqual(r.litellm, ['/team/proxy/anthropic/v1/messages']);
    const r2 = await attack('/profiles/lite/v1/messages?beta=true');
    assert.deepEqual(r2.litellm, ['/team/proxy/v1/messages?beta=true']);
  });

  it('a profile name in the path cannot be a URL', async () => {
    for (const target of [`/profiles/http:%2f%2f${gw.evil.hostPort}/v1/messages`, `/profiles/${gw.evil.hostPort}/v1/messages`, '/profiles/../v1/messages']) {
      const r = await attack(target);
      assert.ok(r.res.status >= 400 && r.res.status < 500, `${target}: ${r.res.status}`);
      assert.deepEqual([...r.anthropic, ...r.litellm], []);
    }
  });
});
