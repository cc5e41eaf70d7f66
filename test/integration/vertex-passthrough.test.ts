import * as assert from 'node:assert/strict';
import { AnthropicVertex } from '@anthropic-ai/vertex-sdk';
import { OAuth2Client } from 'google-auth-library';
import { vertexBaseUrl } from '../../src/core/providers/vertex';
import type { Profile } from '../../src/core/config/validate';
import { nextSettled, startGateway, type TestGateway } from '../helpers/gateway';
import { MockGoogleSts } from '../helpers/mock-google';
import { MockVertex } from '../helpers/mock-vertex';

describe('Vertex AI profile: /vertex_ai/v1 passthrough with Application Default Credentials (workload identity)', () => {
  let sts: MockGoogleSts;
  let vertex: MockVertex;
  let gw: TestGateway;
  let savedAdc: string | undefined;
  const clientToken = 'ya29.client-own-token';

  before(async () => {
    sts = await new MockGoogleSts().start();
    // google-auth-library finds ADC through this variable: an external_account file with its own token_url.
    savedAdc = process.env.GOOGLE_APPLICATION_CREDENTIALS;
    process.env.GOOGLE_APPLICATION_CREDENTIALS = sts.credentialsFile;
    vertex = await new MockVertex((t) => sts.issuer.valid(t) || t === clientToken).start();
    gw = await startGateway({
      activeProfile: 'vertex',
      profiles: [
        { name: 'vertex', provider: 'vertex', projectId: 'test-proj', region: 'us-east5', endpoint: vertex.url, models: { map: { 'claude-opus-4-6': 'claude-opus-4-6@custom' } } },
        { name: 'vertex-client', provider: 'vertex', projectId: 'test-proj', region: 'us-east5', endpoint: vertex.url, credentials: 'client' },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await vertex.stop();
    await sts.stop();
    if (savedAdc === undefined) delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
    else process.env.GOOGLE_APPLICATION_CREDENTIALS = savedAdc;
  });

  /** An auth client that sends a fixed bearer token (what Claude Code's SKIP auth + ANTHROPIC_AUTH_TOKEN amount to). */
  const bearer = (token: string) => {
    const c = new OAuth2Client();
    c.setCredentials({ access_token: token, expiry_date: Date.now() + 3_600_000 });
    return c;
  };
  const sdk = (extra: Partial<ConstructorParameters<typeof AnthropicVertex>[0]> = {}) =>
    new AnthropicVertex({ region: 'us-east5', projectId: 'test-proj', baseURL: `${gw.url}/vertex_ai/v1`, authClient: bearer(gw.key), ...extra });

  it('the real Vertex SDK completes a turn, streaming and not; Vertex sees a token google-auth-library obtained, never the gateway key', async () => {
    const client = sdk();
    const msg = await client.messages.create({ model: 'claude-sonnet-4-5@20250929', max_tokens: 16, messages: [{ role: 'user', content: 'say pong' }] });
    assert.equal(msg.content[0].type === 'text' && msg.content[0].text, 'pong from vertex');
    assert.equal(vertex.last!.url, '/v1/projects/test-proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict');
    assert.match(String(vertex.last!.headers.authorization), /^Bearer ya29\.test-wif-/);
    assert.ok(!JSON.stringify(vertex.last!.headers).includes(gw.key));
    const settled = nextSettled(gw);
    const final = await client.messages.stream({ model: 'claude-sonnet-4-5@20250929', max_tokens: 16, messages: [{ role: 'user', content: 'say pong' }] }).finalMessage();
    assert.equal(final.content[0].type === 'text' && final.content[0].text, 'pong from vertex');
    const call = await settled;
    assert.equal(call.route, 'vertex');
    assert.equal(call.streaming, true);
    assert.equal(call.usage.cacheRead, 300);
    assert.equal(sts.issuer.log.length, 1, 'one token, cached across calls');
  });

  it('count-tokens:rawPredict works; the profile model map applies to the path', async () => {
    const client = sdk();
    const count = await client.messages.countTokens({ model: 'claude-sonnet-4-5@20250929', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(count.input_tokens, 17);
    await client.messages.create({ model: 'claude-opus-4-6', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    assert.match(vertex.last!.url, /models\/claude-opus-4-6@custom:rawPredict$/);
  });

  it('a project other than the profile\'s is refused with 400 naming both', async () => {
    const res = await fetch(`${gw.url}/vertex_ai/v1/projects/other-proj/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001:rawPredict`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.key}` },
      body: '{}',
    });
    assert.equal(res.status, 400);
    const msg = ((await res.json()) as { error: { message: string } }).error.message;
    assert.match(msg, /other-proj/);
    assert.match(msg, /test-proj/);
  });

  it('credentials "client": the client\'s Google token passes through; the gateway key travels in Proxy-Authorization', async () => {
    const client = sdk({ authClient: bearer(clientToken), defaultHeaders: { 'proxy-authorization': `Bearer ${gw.key}` }, baseURL: `${gw.url}/profiles/vertex-client/vertex_ai/v1` });
    const msg = await client.messages.create({ model: 'claude-haiku-4-5@20251001', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(msg.content[0].type === 'text' && msg.content[0].text, 'pong from vertex');
    assert.equal(vertex.last!.headers.authorization, `Bearer ${clientToken}`);
    assert.equal(vertex.last!.headers['proxy-authorization'], undefined);
    const noKey = await fetch(`${gw.url}/profiles/vertex-client/vertex_ai/v1/projects/test-proj/locations/us-east5/publishers/anthropic/models/m:rawPredict`, {
      method: 'POST',
      headers: { authorization: `Bearer ${clientToken}` },
      body: '{}',
    });
    assert.equal(noKey.status, 403, 'a Google token alone is not a gateway key');
  });

  it('the region in the path picks the host: regional, global and the us/eu multi-regions', () => {
    const p = { provider: 'vertex' } as Profile;
    assert.equal(vertexBaseUrl(p, 'europe-west1'), 'https://europe-west1-aiplatform.googleapis.com');
    assert.equal(vertexBaseUrl(p, 'global'), 'https://aiplatform.googleapis.com');
    assert.equal(vertexBaseUrl(p, 'us'), 'https://aiplatform.us.rep.googleapis.com');
    assert.equal(vertexBaseUrl(p, 'eu'), 'https://aiplatform.eu.rep.googleapis.com');
  });
});
