import * as assert from 'node:assert/strict';
import { cloudHeaders, cloudProfiles, startCloudMocks } from '../helpers/cloud';
import { startGateway, type TestGateway } from '../helpers/gateway';
import type { MockBedrock } from '../helpers/mock-bedrock';
import type { MockVertex } from '../helpers/mock-vertex';

const BEDROCK_TOKEN = 'bedrock-api-key-upstream-url-test';
const VERTEX_TOKEN = 'ya29.upstream-url-client-token';
const VERTEX_NATIVE = '/vertex_ai/v1/projects/url-proj/locations/us-east5/publishers/anthropic/models';

/**
 * A model id chosen by the client (the unified route's body `model`, a native route's path segment) or by a profile's
 * model map goes into the upstream URL only when it is in the provider's id grammar, as exactly one path segment.
 * Anything else is an Anthropic-shaped 400 (CCGW_UNSAFE_PATH) and neither mock upstream receives a byte.
 */
describe('abuse: client-controlled values in upstream URLs', () => {
  let bedrock: MockBedrock;
  let vertex: MockVertex;
  let gw: TestGateway;

  before(async () => {
    ({ bedrock, vertex } = await startCloudMocks(BEDROCK_TOKEN, VERTEX_TOKEN));
    const { bedrock: bedrockProfile, vertex: vertexProfile } = cloudProfiles({ bedrockUrl: bedrock.url, vertexUrl: vertex.url, projectId: 'url-proj', tokenEnv: 'URL_BEDROCK_TOKEN' });
    gw = await startGateway(
      {
        profiles: [
          { name: 'bedrock', ...bedrockProfile },
          { name: 'vertex', ...vertexProfile },
          { name: 'bedrock-mapped', ...bedrockProfile, models: { map: { 'claude-sonnet-4-5': '../../foundation-models', good: 'anthropic.claude-haiku-4-5-20251001-v1:0' } } },
          { name: 'vertex-mapped', ...vertexProfile, models: { map: { 'claude-sonnet-4-5': '../../../../../projects/victim-proj/locations/us-east5/publishers/anthropic/models/claude-opus-4-1@20250805', 'claude-haiku-4-5@20251001': 'x:streamRawPredict?' } } },
        ],
      },
      { env: { URL_BEDROCK_TOKEN: BEDROCK_TOKEN } },
    );
  });
  after(async () => {
    await gw.close();
    await bedrock.stop();
    await vertex.stop();
  });

  function headers(profile: string): Record<string, string> {
    return cloudHeaders(gw, profile.startsWith('vertex'), VERTEX_TOKEN);
  }

  /** Every request either mock received (Bedrock's refused ones and Vertex's refused tokens included). */
  function upstreamCount(): number {
    return bedrock.requests.length + bedrock.rejected.length + vertex.requests.length + vertex.rejectedTokens;
  }

  async function post(path: string, profile: string, body: string): Promise<{ status: number; code: string | null; type?: string; message: string; reached: number }> {
    const before = upstreamCount();
    const res = await fetch(`${gw.url}/profiles/${profile}${path}`, { method: 'POST', headers: headers(profile), body, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    let error: { type?: string; message?: string } = {};
    try {
      error = (JSON.parse(text) as { error?: typeof error }).error ?? {};
    } catch {
      // not JSON: the assertions below name it
    }
    return { status: res.status, code: res.headers.get('x-gateway-error'), type: error.type, message: error.message ?? text, reached: upstreamCount() - before };
  }

  const VICTIM = '../../../../../../../projects/victim-proj/locations/us-east5/publishers/anthropic/models/claude-opus-4-1@20250805';
  const hostile: Array<[string, string]> = [
    ['dot-dot', '..'],
    ['dot', '.'],
    ['another project (the issue\'s example)', VICTIM],
    ['a method switch with a query', 'claude-opus-4-1@20250805:streamRawPredict?'],
    ['a method switch with a fragment', 'claude-opus-4-1@20250805:rawPredict#'],
    ['another publisher', '../../google/models/gemini-2.5-pro'],
    ['a slash', 'anthropic/claude-sonnet-4-5'],
    ['percent-encoded dots', '%2e%2e'],
    ['a percent-encoded slash', 'claude-sonnet-4-5%2f..'],
    ['a backslash', '..\\..\\x'],
    ['leading whitespace', ' claude-sonnet-4-5@20250929'],
    ['a trailing newline', 'claude-sonnet-4-5@20250929\n'],
    ['a tab inside', 'claude\tsonnet'],
    ['a unicode two-dot leader', '\u2025'],
    ['fullwidth dots', '\uff0e\uff0e'],
    ['a non-ASCII letter', 'claud\u00e9-sonnet-4-5'],
    ['a NUL byte', 'claude\u0000'],
    ['a question mark', 'claude?x=1'],
    ['a hash', 'claude#x'],
    ['very long (5,000 characters)', `claude-${'a'.repeat(5000)}`],
  ];
  // Grammar details of one provider: ':' and '@' are fine in their place, not in the other's.
  const vertexOnly: Array<[string, string]> = [
    ['a colon (Vertex ids have none)', 'claude-sonnet-4-5:rawPredict'],
    ['two versions', 'claude@1@2'],
    ['a Bedrock ARN', 'arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc'],
  ];
  const bedrockOnly: Array<[string, string]> = [
    ['an empty label', 'anthropic..claude'],
    ['an ARN with a dot segment', 'arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/../../x'],
    ['an ARN with an empty segment', 'arn:aws:bedrock:us-east-1:111122223333:application-inference-profile//x'],
    ['an @ (Bedrock ids have none)', 'anthropic.claude@x'],
  ];

  const routes: Array<[string, string]> = [
    ['unified', '/v1/messages'],
    ['unified count_tokens', '/v1/messages/count_tokens'],
    ['/anthropic translated', '/anthropic/v1/messages'],
  ];
  for (const profile of ['bedrock', 'vertex']) {
    const cases = [...hostile, ...(profile === 'bedrock' ? bedrockOnly : vertexOnly)];
    for (const [route, path] of routes) {
      for (const stream of route === 'unified' ? [false, true] : [false]) {
        it(`${profile}, ${route}${stream ? ' (stream)' : ''}: every hostile model id is a 400 CCGW_UNSAFE_PATH and nothing reaches the upstream`, async () => {
          for (const [what, model] of cases) {
            const r = await post(path, profile, JSON.stringify({ model, max_tokens: 8, stream, messages: [{ role: 'user', content: 'hi' }] }));
            assert.equal(r.status, 400, `${what}: ${r.status} ${r.message}`);
            assert.equal(r.code, 'CCGW_UNSAFE_PATH', `${what}: ${r.message}`);
            assert.equal(r.type, 'invalid_request_error', what);
            assert.match(r.message, /is not a (Bedrock|Vertex AI) model id/, what);
            assert.equal(r.reached, 0, `${what}: the upstream received a request`);
          }
        });
      }
    }
  }

  it('an empty or missing model is a 400 and nothing reaches the upstream', async () => {
    for (const profile of ['bedrock', 'vertex']) {
      for (const model of ['', undefined, 7, ['claude-sonnet-4-5']]) {
        const r = await post('/v1/messages', profile, JSON.stringify({ model, max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }));
        assert.equal(r.status, 400, `${profile} ${JSON.stringify(model)}: ${r.message}`);
        assert.equal(r.reached, 0);
      }
    }
  });

  it('valid ids still pass, each as one encoded path segment', async () => {
    const cases: Array<[string, string, string]> = [
      ['bedrock', 'claude-sonnet-4-5-20250929', `/model/${encodeURIComponent('us.anthropic.claude-sonnet-4-5-20250929-v1:0')}/invoke`],
      ['bedrock', 'eu.anthropic.claude-haiku-4-5-20251001-v1:0', `/model/${encodeURIComponent('eu.anthropic.claude-haiku-4-5-20251001-v1:0')}/invoke`],
      ['bedrock', 'arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123', `/model/${encodeURIComponent('arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123')}/invoke`],
      ['vertex', 'claude-sonnet-4-5-20250929', '/v1/projects/url-proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict'],
      ['vertex', 'claude-3-5-sonnet-v2@20241022', '/v1/projects/url-proj/locations/us-east5/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:rawPredict'],
    ];
    for (const [profile, model, url] of cases) {
      const r = await post('/v1/messages', profile, JSON.stringify({ model, max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }));
      assert.equal(r.status, 200, `${profile} ${model}: ${r.message}`);
      assert.equal(r.reached, 1);
      const seen = profile === 'bedrock' ? bedrock.last!.url : vertex.last!.url;
      assert.equal(seen, url);
    }
  });

  it('a profile model map that points outside the model segment is refused on every route, naming the profile', async () => {
    const body = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] });
    for (const profile of ['bedrock-mapped', 'vertex-mapped']) {
      for (const path of ['/v1/messages', '/v1/messages/count_tokens', '/anthropic/v1/messages']) {
        const r = await post(path, profile, body);
        assert.equal(r.status, 400, `${profile} ${path}: ${r.message}`);
        assert.equal(r.code, 'CCGW_UNSAFE_PATH');
        assert.match(r.message, new RegExp(`profile "${profile}" maps "claude-sonnet-4-5"`, 'i'));
        assert.equal(r.reached, 0);
      }
    }
    // Native routes: the path's model id is fine, the map's output is not.
    const native = await post('/bedrock/model/claude-sonnet-4-5/invoke', 'bedrock-mapped', JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [] }));
    assert.equal(native.status, 400, native.message);
    assert.equal(native.code, 'CCGW_UNSAFE_PATH');
    assert.equal(native.reached, 0);
    for (const model of ['claude-sonnet-4-5', 'claude-haiku-4-5@20251001']) {
      const v = await post(`${VERTEX_NATIVE}/${model}:rawPredict`, 'vertex-mapped', JSON.stringify({ anthropic_version: 'vertex-2023-10-16', max_tokens: 5, messages: [] }));
      assert.equal(v.status, 400, `${model}: ${v.message}`);
      assert.equal(v.code, 'CCGW_UNSAFE_PATH');
      assert.equal(v.reached, 0, `${model}: the map's output reached Vertex`);
    }
    // A map entry that is a valid id still works.
    const good = await post('/bedrock/model/good/invoke', 'bedrock-mapped', JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }));
    assert.equal(good.status, 200, good.message);
    assert.equal(bedrock.last!.url, `/model/${encodeURIComponent('anthropic.claude-haiku-4-5-20251001-v1:0')}/invoke`);
  });

  it('the native routes refuse path tricks with the same error code', async () => {
    const bedrockBody = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [] });
    // (Dot segments there are covered over raw sockets by abuse-cloud: fetch() would resolve them first.)
    for (const path of ['/bedrock/model/anthropic.claude@x/invoke', '/bedrock/model/a%2f..%2fb/invoke']) {
      const r = await post(path, 'bedrock', bedrockBody);
      assert.equal(r.status, 400, `${path}: ${r.message}`);
      assert.equal(r.code, 'CCGW_UNSAFE_PATH', path);
      assert.equal(r.reached, 0);
    }
    const vertexBody = JSON.stringify({ anthropic_version: 'vertex-2023-10-16', max_tokens: 5, messages: [] });
    // A malformed escape is refused by the router itself (FST_ERR_BAD_URL), in the Anthropic shape.
    for (const path of [`${VERTEX_NATIVE}/..:rawPredict`, '/bedrock/model/%zz/invoke', `${VERTEX_NATIVE}/.claude:rawPredict`, '/vertex_ai/v1/projects/%zz/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5:rawPredict']) {
      const r = await post(path, 'vertex', vertexBody);
      assert.equal(r.status, 400, `${path}: ${r.message}`);
      assert.equal(r.type, 'invalid_request_error');
      assert.equal(r.reached, 0);
    }
  });
});
