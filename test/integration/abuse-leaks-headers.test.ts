import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKey, sha256 } from '../../src/core/gateway/keys';
import { startGateway, type TestGateway } from '../helpers/gateway';

/** An upstream for every provider at once: records every request's raw header lines and answers a small Messages reply. */
class RecordingUpstream {
  readonly seen: Array<{ url: string; rawHeaders: string[] }> = [];
  private server?: http.Server;

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        this.seen.push({ url: req.url ?? '', rawHeaders: req.rawHeaders });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-haiku-4-5', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', usage: { input_tokens: 3, output_tokens: 1 } }));
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }
}

const HASHED_KEY = `hashed-only-${generateKey()}`;
const USER_OAUTH = 'sk-ant-oat01-the-users-own-subscription-token';
const MESSAGES = JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] });
const VERTEX_BODY = JSON.stringify({ anthropic_version: 'vertex-2023-10-16', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] });
const BEDROCK_BODY = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] });

/**
 * No header whose value is a gateway key or a token this gateway signed leaves the gateway, on any route and whatever
 * its name: a `credentials: "client"` profile passes the client's own Authorization through, and a client whose shell
 * still holds ANTHROPIC_AUTH_TOKEN=<gateway key> (what `eval "$(claude-code-gateway env)"` then `env --profile sub`
 * leaves) sends the gateway key there as well as in Proxy-Authorization.
 */
describe('abuse: gateway keys and tokens never leave in a header', () => {
  let upstream: RecordingUpstream;
  let gw: TestGateway;
  let token: string;
  const env = { LEAK_BEDROCK_TOKEN: 'bedrock-api-key-for-the-leak-test', LEAK_PROVIDER_KEY: 'sk-ant-provider-key-for-the-leak-test' };

  before(async () => {
    upstream = await new RecordingUpstream().start();
    gw = await startGateway(
      {
        profiles: [
          { name: 'sub', provider: 'anthropic', credentials: 'client', baseUrl: upstream.url },
          { name: 'anth', provider: 'anthropic', apiKey: '${env:LEAK_PROVIDER_KEY}', baseUrl: upstream.url },
          { name: 'lite', provider: 'litellm', apiKey: '${env:LEAK_PROVIDER_KEY}', baseUrl: upstream.url },
          { name: 'bed', provider: 'bedrock', region: 'us-east-1', bearerToken: '${env:LEAK_BEDROCK_TOKEN}', endpoint: upstream.url },
          { name: 'vtx', provider: 'vertex', projectId: 'leak-proj', region: 'us-east5', credentials: 'client', endpoint: upstream.url },
        ],
        keys: [{ id: 'hashed', sha256: sha256(HASHED_KEY).toString('hex') }],
      },
      { env },
    );
    token = gw.runtime.keys.issueToken('test', 60_000);
    // A key configured by its hash shows its length when it first authenticates; from then on it is found inside values.
    assert.equal((await fetch(`${gw.url}/budgets`, { headers: { 'x-api-key': HASHED_KEY } })).status, 200);
  });
  after(async () => {
    await gw.close();
    await upstream.stop();
  });

  /** Every gateway credential a client could hold: the key itself, a key known only by its hash, a signed token. */
  const credentials = () => [gw.key, HASHED_KEY, token];

  function assertNoCredentialUpstream(from: number, what: string): void {
    for (const r of upstream.seen.slice(from)) {
      const lines = r.rawHeaders.join('\n');
      for (const c of credentials()) assert.ok(!lines.includes(c), `${what}: a gateway credential reached the upstream in a header:\n${lines}`);
    }
  }

  const routes: Array<{ name: string; path: string; body: string; client?: boolean }> = [
    { name: 'anthropic passthrough, client credentials', path: '/profiles/sub/anthropic/v1/messages', body: MESSAGES, client: true },
    { name: 'unified, anthropic with client credentials', path: '/profiles/sub/v1/messages', body: MESSAGES, client: true },
    { name: 'anthropic passthrough, gateway credentials', path: '/profiles/anth/anthropic/v1/messages', body: MESSAGES },
    { name: 'litellm', path: '/profiles/lite/anthropic/v1/messages', body: MESSAGES },
    { name: 'unified, litellm', path: '/profiles/lite/v1/messages', body: MESSAGES },
    { name: 'bedrock passthrough', path: '/profiles/bed/bedrock/model/anthropic.claude-haiku-4-5-20251001-v1:0/invoke', body: BEDROCK_BODY },
    { name: 'unified, bedrock', path: '/profiles/bed/v1/messages', body: MESSAGES },
    { name: 'vertex passthrough, client credentials', path: '/profiles/vtx/vertex_ai/v1/projects/leak-proj/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001:rawPredict', body: VERTEX_BODY, client: true },
    { name: 'unified, vertex with client credentials', path: '/profiles/vtx/v1/messages', body: MESSAGES, client: true },
  ];

  for (const route of routes) {
    it(`${route.name}: the key, a hash-only key and a token in any header are dropped; the client's own credential passes`, async () => {
      for (const [i, credential] of credentials().entries()) {
        const from = upstream.seen.length;
        const res = await fetch(gw.url + route.path, {
          method: 'POST',
          headers: {
            'proxy-authorization': `Bearer ${gw.key}`,
            // The user's own credential, where client-credentials profiles read it; the gateway key in every other place.
            authorization: `Bearer ${route.client ? USER_OAUTH : credential}`,
            'x-api-key': credential,
            'x-custom-header': `note ${credential}; more`,
            'anthropic-beta': `claude-code-20250219,${credential}`,
            'x-stainless-retry-count': '0',
            'content-type': 'application/json',
            'anthropic-version': '2023-06-01',
          },
          body: route.body,
        });
        assert.equal(res.status, 200, `${route.name} #${i}: ${await res.text()}`);
        await res.arrayBuffer().catch(() => undefined);
        assert.equal(upstream.seen.length, from + 1, `${route.name}: one request upstream`);
        assertNoCredentialUpstream(from, `${route.name} #${i}`);
        const lines = upstream.seen[from].rawHeaders.map((h) => h.toLowerCase());
        // What is not a credential still goes through: the gateway removes values, not the headers it has no reason to.
        assert.ok(lines.includes('x-stainless-retry-count'), `${route.name}: other headers pass`);
        if (route.client) assert.ok(upstream.seen[from].rawHeaders.includes(`Bearer ${USER_OAUTH}`), `${route.name}: the client's own Authorization passes through`);
      }
    });
  }

  for (const route of routes.filter((r) => r.client)) {
    it(`${route.name}: the gateway key in Proxy-Authorization and Authorization (a stale shell) is a 400 naming Authorization; nothing is sent`, async () => {
      const from = upstream.seen.length;
      const res = await fetch(gw.url + route.path, {
        method: 'POST',
        headers: { 'proxy-authorization': `Bearer ${gw.key}`, authorization: `Bearer ${gw.key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
        body: route.body,
      });
      const body = (await res.json()) as { type: string; error: { type: string; message: string } };
      assert.equal(res.status, 400);
      assert.equal(body.type, 'error');
      assert.equal(body.error.type, 'invalid_request_error');
      assert.match(body.error.message, /authorization header carries this gateway's key/);
      assert.ok(!body.error.message.includes(gw.key));
      assert.equal(upstream.seen.length, from, 'nothing reached the upstream');
    });
  }
});
