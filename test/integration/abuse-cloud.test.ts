import * as assert from 'node:assert/strict';
import { rawRequest, startAbuseGateway, VERTEX_CLIENT_TOKEN, type AbuseGateway, type RawResponse } from '../helpers/abuse';

const BEDROCK_BODY = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
const VERTEX_BODY = JSON.stringify({ anthropic_version: 'vertex-2023-10-16', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
const VERTEX_MODEL = '/vertex_ai/v1/projects/abuse-proj/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001';

/**
 * Confinement of the Bedrock and Vertex passthrough routes: no dot segment, fragment, backslash or encoded dot or slash
 * reaches the upstream, except the URL-encoded ARN Claude Code sends as a Bedrock model id. Raw sockets, so that no
 * client library normalises the target first.
 */
describe('abuse: Bedrock and Vertex AI passthrough confinement', () => {
  let gw: AbuseGateway;

  before(async () => {
    gw = await startAbuseGateway({ cloud: true });
  });
  after(async () => {
    await gw.assertNoLeaks();
    await gw.close();
  });

  function send(target: string, profile: 'bedrock' | 'vertex', method = 'POST'): Promise<RawResponse> {
    const body = profile === 'bedrock' ? BEDROCK_BODY : VERTEX_BODY;
    const head = [
      `${method} /profiles/${profile}${target} HTTP/1.1`,
      `Host: 127.0.0.1:${gw.port}`,
      profile === 'bedrock' ? `Authorization: Bearer ${gw.secrets.key}` : `Proxy-Authorization: Bearer ${gw.secrets.key}`,
      ...(profile === 'vertex' ? [`Authorization: Bearer ${VERTEX_CLIENT_TOKEN}`] : []),
      'Content-Type: application/json',
      `Content-Length: ${method === 'GET' ? 0 : Buffer.byteLength(body)}`,
      'Connection: close',
    ];
    return rawRequest(gw.port, `${head.join('\r\n')}\r\n\r\n${method === 'GET' ? '' : body}`).then(gw.record);
  }

  async function attack(target: string, profile: 'bedrock' | 'vertex', method?: string): Promise<{ res: RawResponse; reached: string[] }> {
    const b = gw.bedrock!.requests.length + gw.bedrock!.rejected.length;
    const v = gw.vertex!.requests.length;
    const vr = gw.vertex!.rejectedTokens;
    const res = await send(target, profile, method);
    const reached = [...gw.bedrock!.requests.map((r) => r.url), ...gw.bedrock!.rejected.map((r) => r.url)].slice(b);
    reached.push(...gw.vertex!.requests.slice(v).map((r) => r.url));
    if (gw.vertex!.rejectedTokens > vr) reached.push('(a request Vertex refused)');
    assert.equal(gw.evil.connections, 0);
    return { res, reached };
  }

  const bedrockRefused = [
    '/bedrock/model/../invoke',
    '/bedrock/model/./invoke',
    '/bedrock/model/%2e%2e/invoke',
    '/bedrock/model/%2E%2e/invoke',
    '/bedrock/model/x/../../inference-profiles',
    '/bedrock/model/anthropic.claude-haiku-4-5-20251001-v1:0/invoke#frag',
    '/bedrock/model/anthropic.claude#x/invoke',
    '/bedrock/model/anthropic%2eclaude-haiku-4-5-20251001-v1:0/invoke',
    '/bedrock/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile%2F..%2Fx/invoke',
    '/bedrock/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile%2F%2Fx/invoke',
    '/bedrock/model/a%5c..%5cb/invoke',
    '/bedrock/model/a\\b/invoke',
    '/bedrock//model/x/invoke',
    '/bedrock/model/x/invoke%2f..',
  ];
  for (const target of bedrockRefused) {
    it(`Bedrock: ${target} is refused and nothing reaches Bedrock`, async () => {
      const r = await attack(target, 'bedrock');
      assert.ok(r.res.status === 400 || r.res.status === 404, `${r.res.status} ${r.res.body}`);
      assert.equal(JSON.parse(r.res.body).type, 'error');
      assert.deepEqual(r.reached, []);
    });
  }

  const controlRefused = ['/bedrock/inference-profiles/..', '/bedrock/inference-profiles/.', '/bedrock/inference-profiles/%2e%2e', '/bedrock/inference-profiles/a#b', '/bedrock/foundation-models/x%2f..%2fy'];
  for (const target of controlRefused) {
    it(`Bedrock control plane: GET ${target} with a key is refused and nothing reaches Bedrock`, async () => {
      const r = await attack(target, 'bedrock', 'GET');
      assert.ok(r.res.status === 400 || r.res.status === 404, `${r.res.status} ${r.res.body}`);
      assert.deepEqual(r.reached, []);
    });
  }

  it('Bedrock: a plain model id and a URL-encoded ARN still pass, encoded as sent', async () => {
    const plain = await attack('/bedrock/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/invoke', 'bedrock');
    assert.equal(plain.res.status, 200, plain.res.body);
    assert.deepEqual(plain.reached, ['/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/invoke']);
    const arn = encodeURIComponent('arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123');
    const r = await attack(`/bedrock/model/${arn}/invoke`, 'bedrock');
    assert.equal(r.res.status, 200, r.res.body);
    assert.deepEqual(r.reached, [`/model/${arn}/invoke`]);
  });

  const vertexRefused = [
    `${VERTEX_MODEL.replace('/models/', '/models/../models/')}:rawPredict`,
    '/vertex_ai/v1/projects/abuse-proj/locations/us-east5/publishers/anthropic/models/..:rawPredict',
    '/vertex_ai/v1/projects/abuse-proj/locations/%2e%2e/publishers/anthropic/models/claude-haiku-4-5@20251001:rawPredict',
    '/vertex_ai/v1/projects/%2e%2e/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001:rawPredict',
    `${VERTEX_MODEL}:rawPredict#x`,
    `${VERTEX_MODEL.replace('/publishers/', '/publishers%2f')}:rawPredict`,
    `${VERTEX_MODEL.replace('/publishers/', '//publishers/')}:rawPredict`,
    `${VERTEX_MODEL.replace('claude', '%63laude')}:rawPredict`,
  ];
  for (const target of vertexRefused) {
    it(`Vertex: ${target} is refused and nothing reaches Vertex`, async () => {
      const r = await attack(target, 'vertex');
      assert.ok(r.res.status === 400 || r.res.status === 404, `${r.res.status} ${r.res.body}`);
      assert.deepEqual(r.reached, []);
    });
  }

  it('Vertex: the plain path still passes', async () => {
    const r = await attack(`${VERTEX_MODEL}:rawPredict`, 'vertex');
    assert.equal(r.res.status, 200, r.res.body);
    assert.deepEqual(r.reached, ['/v1/projects/abuse-proj/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001:rawPredict']);
  });
});
