import * as assert from 'node:assert/strict';
import { messagesBody, rawRequest, startAbuseGateway, type AbuseGateway, type RawResponse } from '../helpers/abuse';

/** Every route that needs a gateway key, with a request that would succeed with one. */
const KEYED: Array<{ method: string; path: string; body?: string }> = [
  { method: 'POST', path: '/anthropic/v1/messages', body: messagesBody() },
  { method: 'POST', path: '/anthropic/v1/messages/count_tokens', body: messagesBody() },
  { method: 'GET', path: '/anthropic/v1/models' },
  { method: 'POST', path: '/v1/messages', body: messagesBody() },
  { method: 'POST', path: '/v1/messages/count_tokens', body: messagesBody() },
  { method: 'GET', path: '/v1/models' },
  { method: 'POST', path: '/profiles/lite/v1/messages', body: messagesBody() },
  { method: 'POST', path: '/profiles/anthropic/anthropic/v1/messages', body: messagesBody() },
  { method: 'POST', path: '/bedrock/model/anthropic.claude-sonnet-4-5/invoke', body: messagesBody() },
  { method: 'POST', path: '/vertex_ai/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5:rawPredict', body: messagesBody() },
  { method: 'GET', path: '/usage' },
  { method: 'GET', path: '/metrics' },
  { method: 'GET', path: '/budgets' },
  { method: 'POST', path: '/budgets/override', body: JSON.stringify({ scope: 'global', period: 'day', usd: 1000 }) },
  { method: 'GET', path: '/events' },
  { method: 'PUT', path: '/control/keys/intruder', body: JSON.stringify({ key: 'intruder-key-0123456789abcdef' }) },
  { method: 'POST', path: '/control/tokens', body: JSON.stringify({ keyId: 'test' }) },
];

describe('abuse: authentication and browser attacks', () => {
  let gw: AbuseGateway;

  before(async () => {
    gw = await startAbuseGateway();
  });
  after(async () => {
    await gw.assertNoLeaks();
    await gw.close();
  });

  function upstreamCount(): number {
    return gw.upstream.requests.length + gw.litellm.requests.length;
  }

  async function call(route: (typeof KEYED)[number], headers: Record<string, string>) {
    return gw.fetch(route.path, { method: route.method, headers: { 'content-type': 'application/json', ...headers }, body: route.body });
  }

  function errorOf(body: string): { type: string; message: string } {
    const json = JSON.parse(body) as { type: string; error: { type: string; message: string } };
    assert.equal(json.type, 'error');
    return json.error;
  }

  describe('authentication', () => {
    it('no key: 401 authentication_error on every keyed route, and nothing reaches an upstream', async () => {
      const before = upstreamCount();
      for (const route of KEYED) {
        const res = await call(route, {});
        if (res.status === 404) continue; // a route another part of the gateway has not registered yet
        assert.equal(res.status, 401, `${route.method} ${route.path}: ${res.body}`);
        assert.equal(errorOf(res.body).type, 'authentication_error');
      }
      assert.equal(upstreamCount(), before);
    });

    it('a wrong key: 403 on every keyed route, in each of the three headers', async () => {
      const before = upstreamCount();
      for (const route of KEYED) {
        for (const headers of [{ authorization: 'Bearer ccgw-wrong' }, { 'x-api-key': 'ccgw-wrong' }, { 'proxy-authorization': 'Bearer ccgw-wrong' }] as Array<Record<string, string>>) {
          const res = await call(route, headers);
          if (res.status === 404) continue;
          assert.equal(res.status, 403, `${route.method} ${route.path} ${JSON.stringify(headers)}: ${res.body}`);
          assert.equal(errorOf(res.body).type, 'permission_error');
        }
      }
      assert.equal(upstreamCount(), before);
    });

    it('the right key in the wrong place is not accepted', async () => {
      const k = gw.secrets.key;
      const before = upstreamCount();
      const misplaced: Array<[string, Record<string, string>]> = [
        ['/anthropic/v1/messages', { 'x-auth-token': k }],
        ['/anthropic/v1/messages', { cookie: `key=${k}` }],
        ['/anthropic/v1/messages', { authorization: k }],
        ['/anthropic/v1/messages', { authorization: `Basic ${Buffer.from(`${k}:`).toString('base64')}` }],
        ['/anthropic/v1/messages', { authorization: `Token ${k}` }],
        ['/anthropic/v1/messages', { 'x-api-key': `Bearer ${k}` }],
        ['/anthropic/v1/messages', { 'anthropic-api-key': k }],
        [`/anthropic/v1/messages?key=${k}`, {}],
        [`/anthropic/v1/messages?api_key=${k}`, {}],
      ];
      for (const [path, headers] of misplaced) {
        const res = await gw.fetch(path, { method: 'POST', headers, body: messagesBody() });
        assert.ok(res.status === 401 || res.status === 403, `${path} ${Object.keys(headers)}: ${res.status}`);
      }
      assert.equal(upstreamCount(), before);
    });

    it('wrong keys of every length get the same answer as a wrong key of the right length', async () => {
      const k = gw.secrets.key;
      const answers = new Set<string>();
      for (const wrong of ['x', k.slice(0, -1), `${k.slice(0, -1)}${k.endsWith('A') ? 'B' : 'A'}`, `${k}x`, k.toUpperCase(), ` ${k}x `, 'x'.repeat(8000)]) {
        const res = await gw.fetch('/v1/messages', { method: 'POST', headers: { authorization: `Bearer ${wrong}` }, body: messagesBody() });
        answers.add(`${res.status} ${res.body}`);
      }
      assert.equal(answers.size, 1, [...answers].join('\n'));
    });

    it('a revoked key is refused with 403 and never reaches an upstream', async () => {
      const before = upstreamCount();
      for (const headers of [{ authorization: `Bearer ${gw.secrets.revokedKey}` }, { 'x-api-key': gw.secrets.revokedKey }] as Array<Record<string, string>>) {
        const res = await gw.fetch('/anthropic/v1/messages', { method: 'POST', headers, body: messagesBody() });
        assert.equal(res.status, 403);
        assert.match(errorOf(res.body).message, /revoked/);
        assert.equal(res.headers.get('x-should-retry'), 'false');
      }
      assert.equal(upstreamCount(), before);
    });

    it('a revoked key cannot ride along: a valid key in another header does not rescue it, nor it a wrong one', async () => {
      const res = await gw.fetch('/anthropic/v1/messages', {
        method: 'POST',
        headers: { 'proxy-authorization': `Bearer ${gw.secrets.revokedKey}`, authorization: `Bearer ${gw.secrets.key}` },
        body: messagesBody(),
      });
      assert.equal(res.status, 403);
    });

    it('the gateway key and the client credentials never reach the upstream; the provider key is never sent back', async () => {
      const res = await gw.fetch('/anthropic/v1/messages', { method: 'POST', headers: { authorization: `Bearer ${gw.secrets.key}` }, body: messagesBody() });
      assert.equal(res.status, 200);
      const seen = JSON.stringify(gw.upstream.last!.headers);
      assert.ok(!seen.includes(gw.secrets.key));
      assert.equal(gw.upstream.last!.headers['x-api-key'], gw.secrets.providerKey);
    });

    it('a provider key sent by mistake as the gateway key is refused and never echoed or logged', async () => {
      for (const headers of [{ 'x-api-key': gw.secrets.providerKey }, { authorization: `Bearer ${gw.secrets.litellmKey}` }] as Array<Record<string, string>>) {
        const res = await gw.fetch('/anthropic/v1/messages', { method: 'POST', headers, body: messagesBody() });
        assert.equal(res.status, 403);
      }
      // assertNoLeaks in after() checks logs and bodies for both.
    });

    it('/health and the preconnect routes answer without a key and say nothing about keys, profiles or upstreams', async () => {
      const forbidden = [gw.upstream.url, gw.litellm.url, String(new URL(gw.upstream.url).port), '/team/proxy', 'ccgw-', 'sk-', 'tmp', 'apiKey', 'baseUrl'];
      for (const [method, path] of [
        ['GET', '/health'],
        ['HEAD', '/'],
        ['GET', '/'],
        ['HEAD', '/anthropic'],
        ['GET', '/anthropic/'],
      ] as const) {
        for (const headers of [{}, { authorization: `Bearer ${gw.secrets.key}` }, { authorization: 'Bearer wrong' }] as Array<Record<string, string>>) {
          const res = await gw.fetch(path, { method, headers });
          assert.equal(res.status, 200, `${method} ${path}`);
          for (const f of forbidden) assert.ok(!res.body.includes(f), `${method} ${path} mentions ${f}: ${res.body}`);
          for (const name of res.headers.keys()) assert.ok(!name.startsWith('access-control-'), `${method} ${path}: ${name}`);
        }
      }
    });
  });

  describe('browser attacks', () => {
    async function raw(method: string, path: string, headers: string[]): Promise<RawResponse> {
      return gw.record(await rawRequest(gw.port, `${method} ${path} HTTP/1.1\r\n${headers.join('\r\n')}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`));
    }

    function assertNoCors(res: RawResponse, what: string): void {
      for (const name of Object.keys(res.headers)) assert.ok(!name.startsWith('access-control-'), `${what}: ${name}: ${res.headers[name]}`);
    }

    it('any Origin is refused with 403, even with a valid key, on every route; no CORS headers', async () => {
      const before = upstreamCount();
      for (const origin of ['https://evil.example', 'null', `http://127.0.0.1:${gw.port}`, 'http://localhost', 'file://']) {
        for (const [method, path] of [['GET', '/health'], ['HEAD', '/'], ['POST', '/v1/messages'], ['POST', '/anthropic/v1/messages'], ['GET', '/v1/models'], ['GET', '/events']]) {
          const res = await raw(method, path, ['Host: 127.0.0.1', `Origin: ${origin}`, `Authorization: Bearer ${gw.secrets.key}`]);
          assert.equal(res.status, 403, `${origin} ${method} ${path}`);
          assertNoCors(res, `${origin} ${method} ${path}`);
        }
      }
      assert.equal(upstreamCount(), before);
    });

    it('CORS preflights (OPTIONS) get no permissive headers, with or without Origin', async () => {
      for (const path of ['/v1/messages', '/anthropic/v1/messages', '/health', '/', '*']) {
        for (const origin of [[], ['Origin: https://evil.example']]) {
          const res = await raw('OPTIONS', path, ['Host: 127.0.0.1', ...origin, 'Access-Control-Request-Method: POST', 'Access-Control-Request-Headers: authorization, x-api-key']);
          assert.ok(res.status >= 400, `OPTIONS ${path} ${origin}: ${res.status}`);
          assertNoCors(res, `OPTIONS ${path}`);
        }
      }
    });

    it('DNS rebinding: a Host that is not a loopback name is refused, even with a valid key', async () => {
      const before = upstreamCount();
      for (const host of [
        'evil.example',
        `evil.example:${gw.port}`,
        '127.0.0.1.evil.example',
        'localhost.evil.example',
        'localhost.',
        `user@127.0.0.1:${gw.port}`,
        '0x7f000001',
        '2130706433',
        '[::ffff:127.0.0.1]',
        '127.1',
        '',
      ]) {
        const res = await raw('POST', '/anthropic/v1/messages', [`Host: ${host}`, `Authorization: Bearer ${gw.secrets.key}`]);
        assert.equal(res.status, 403, `Host ${JSON.stringify(host)}: ${res.body}`);
        assertNoCors(res, host);
      }
      const noHost = gw.record(await rawRequest(gw.port, `GET /health HTTP/1.0\r\n\r\n`));
      assert.ok(noHost.status === 400 || noHost.status === 403, `no Host: ${noHost.status}`);
      assert.equal(upstreamCount(), before);
    });

    it('loopback Host names are served', async () => {
      for (const host of ['127.0.0.1', `127.0.0.1:${gw.port}`, `localhost:${gw.port}`, 'LOCALHOST', `[::1]:${gw.port}`]) {
        const res = await raw('GET', '/health', [`Host: ${host}`]);
        assert.equal(res.status, 200, `Host ${host}: ${res.body}`);
      }
    });

    it('a cross-site no-cors request (no Origin, Sec-Fetch-Site: cross-site) is refused', async () => {
      for (const site of ['cross-site', 'same-site']) {
        const res = await raw('GET', '/health', ['Host: 127.0.0.1', `Sec-Fetch-Site: ${site}`, 'Sec-Fetch-Mode: no-cors']);
        assert.equal(res.status, 403, site);
      }
      const typed = await raw('GET', '/health', ['Host: 127.0.0.1', 'Sec-Fetch-Site: none', 'Sec-Fetch-Mode: navigate']);
      assert.equal(typed.status, 200, 'a URL typed in the address bar may read /health');
    });
  });
});
