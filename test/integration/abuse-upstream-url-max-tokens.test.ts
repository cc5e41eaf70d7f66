import * as assert from 'node:assert/strict';
import { cloudHeaders, cloudProfiles, startCloudMocks } from '../helpers/cloud';
import { nextSettled, startGateway, type TestGateway } from '../helpers/gateway';
import type { MockBedrock } from '../helpers/mock-bedrock';
import type { MockVertex } from '../helpers/mock-vertex';

const BEDROCK_TOKEN = 'bedrock-api-key-max-tokens-test';
const VERTEX_TOKEN = 'ya29.max-tokens-client-token';
const MODEL = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';
const VERTEX_PATH = '/vertex_ai/v1/projects/mt-proj/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001';

/**
 * The routes whose model ids this part confines also tell the accountant what a call may generate (`max_tokens`), read
 * from the one parse of the body: the unified route's JSON.parse, the native routes' scanner (their body is forwarded
 * unchanged). A native body that is not JSON is still forwarded as before, and the upstream answers it.
 */
describe('abuse: cloud routes report max_tokens for the reservation', () => {
  let bedrock: MockBedrock;
  let vertex: MockVertex;
  let gw: TestGateway;

  before(async () => {
    ({ bedrock, vertex } = await startCloudMocks(BEDROCK_TOKEN, VERTEX_TOKEN));
    const p = cloudProfiles({ bedrockUrl: bedrock.url, vertexUrl: vertex.url, projectId: 'mt-proj', tokenEnv: 'MT_BEDROCK_TOKEN' });
    gw = await startGateway({ profiles: [{ name: 'bedrock', ...p.bedrock }, { name: 'vertex', ...p.vertex }] }, { env: { MT_BEDROCK_TOKEN: BEDROCK_TOKEN } });
  });
  after(async () => {
    await gw.close();
    await bedrock.stop();
    await vertex.stop();
  });

  async function maxTokensOf(profile: string, path: string, body: string): Promise<{ status: number; maxTokens?: number }> {
    const settled = nextSettled(gw);
    const res = await fetch(`${gw.url}/profiles/${profile}${path}`, { method: 'POST', headers: cloudHeaders(gw, profile === 'vertex', VERTEX_TOKEN), body });
    await res.text();
    return { status: res.status, maxTokens: (await settled).maxTokens };
  }

  const anthropic = (extra: Record<string, unknown>) => JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', messages: [{ role: 'user', content: 'x' }], ...extra });

  it('native Bedrock: invoke and invoke-with-response-stream carry max_tokens; count-tokens does not', async () => {
    assert.deepEqual(await maxTokensOf('bedrock', `/bedrock/model/${MODEL}/invoke`, anthropic({ max_tokens: 4000 })), { status: 200, maxTokens: 4000 });
    assert.deepEqual(await maxTokensOf('bedrock', `/bedrock/model/${MODEL}/invoke-with-response-stream`, anthropic({ max_tokens: 321 })), { status: 200, maxTokens: 321 });
    // As JSON.parse reads it: the last of duplicated keys, escapes in the key.
    assert.equal((await maxTokensOf('bedrock', `/bedrock/model/${MODEL}/invoke`, '{"anthropic_version":"bedrock-2023-05-31","max_tokens":1,"max_tok\\u0065ns":9000,"messages":[]}')).maxTokens, 9000);
    const count = await maxTokensOf('bedrock', `/bedrock/model/${MODEL}/count-tokens`, JSON.stringify({ input: { invokeModel: { body: 'e30=' } } }));
    assert.equal(count.maxTokens, undefined);
  });

  it('native Bedrock: a body that is not JSON is forwarded as before, without a max_tokens', async () => {
    const before = bedrock.requests.length;
    const r = await maxTokensOf('bedrock', `/bedrock/model/${MODEL}/invoke`, '{"max_tokens": 4000,');
    assert.equal(bedrock.requests.length, before + 1, 'forwarded');
    assert.equal(r.status, 400, 'the upstream answers it');
    assert.equal(r.maxTokens, undefined);
  });

  it('native Vertex: rawPredict and streamRawPredict carry max_tokens', async () => {
    const body = JSON.stringify({ anthropic_version: 'vertex-2023-10-16', max_tokens: 777, messages: [{ role: 'user', content: 'x' }] });
    assert.deepEqual(await maxTokensOf('vertex', `${VERTEX_PATH}:rawPredict`, body), { status: 200, maxTokens: 777 });
    assert.deepEqual(await maxTokensOf('vertex', `${VERTEX_PATH}:streamRawPredict`, body), { status: 200, maxTokens: 777 });
  });

  it('unified: messages carry max_tokens; count_tokens does not', async () => {
    for (const profile of ['bedrock', 'vertex']) {
      const body = JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 2500, messages: [{ role: 'user', content: 'x' }] });
      assert.deepEqual(await maxTokensOf(profile, '/v1/messages', body), { status: 200, maxTokens: 2500 }, profile);
      assert.equal((await maxTokensOf(profile, '/v1/messages/count_tokens', body)).maxTokens, undefined, profile);
    }
  });
});
