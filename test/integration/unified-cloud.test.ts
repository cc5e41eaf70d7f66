import * as assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { writeAwsFiles, type AwsTestFiles } from '../helpers/aws-files';
import { nextSettled, startGateway, type TestGateway } from '../helpers/gateway';
import { MockBedrock } from '../helpers/mock-bedrock';
import { MockGoogleSts } from '../helpers/mock-google';
import { MockVertex } from '../helpers/mock-vertex';

describe('unified endpoint (Anthropic format) on Bedrock and Vertex AI profiles, with the Anthropic SDK', () => {
  let aws: AwsTestFiles;
  let bedrock: MockBedrock;
  let sts: MockGoogleSts;
  let vertex: MockVertex;
  let gw: TestGateway;

  before(async () => {
    aws = writeAwsFiles();
    bedrock = await new MockBedrock((id, token) => aws.lookup(id, token), 'eu-west-1').start();
    sts = await new MockGoogleSts().start();
    vertex = await new MockVertex((t) => sts.issuer.valid(t)).start();
    gw = await startGateway(
      {
        profiles: [
          { name: 'bedrock', provider: 'bedrock', mode: 'unified', region: 'eu-west-1', awsProfile: 'static', endpoint: bedrock.url },
          { name: 'vertex', provider: 'vertex', mode: 'unified', projectId: 'test-proj', region: 'global', keyFile: sts.credentialsFile, endpoint: vertex.url },
        ],
      },
      { env: aws.env },
    );
  });
  after(async () => {
    await gw.close();
    await bedrock.stop();
    await vertex.stop();
    await sts.stop();
    aws.cleanup();
  });

  const client = (profile: string) => new Anthropic({ baseURL: `${gw.url}/profiles/${profile}`, authToken: gw.key, apiKey: null, maxRetries: 0 });

  it('Bedrock: a streamed turn arrives as Anthropic SSE; the model id is mapped and the beta header becomes anthropic_beta', async () => {
    const settled = nextSettled(gw);
    const stream = client('bedrock').beta.messages.stream({ model: 'claude-sonnet-4-5-20250929', max_tokens: 32, messages: [{ role: 'user', content: 'say pong' }], betas: ['interleaved-thinking-2025-05-14'] });
    const final = await stream.finalMessage();
    assert.equal(final.content[0].type === 'text' && final.content[0].text, 'pong from bedrock');
    const seen = bedrock.last!;
    assert.equal(seen.url, `/model/${encodeURIComponent('eu.anthropic.claude-sonnet-4-5-20250929-v1:0')}/invoke-with-response-stream`);
    assert.equal(seen.json!.anthropic_version, 'bedrock-2023-05-31');
    assert.deepEqual(seen.json!.anthropic_beta, ['interleaved-thinking-2025-05-14']);
    assert.ok(!('model' in seen.json!) && !('stream' in seen.json!));
    const call = await settled;
    assert.equal(call.upstreamModel, 'eu.anthropic.claude-sonnet-4-5-20250929-v1:0');
    assert.deepEqual([call.usage.input, call.usage.output, call.usage.cacheRead], [30, 9, 700]);
  });

  it('a session on an Anthropic route (/anthropic) keeps working when its key is switched to Bedrock or Vertex', async () => {
    // Claude Code started with ANTHROPIC_BASE_URL=<gateway>/anthropic; Switch Provider then pins its key elsewhere.
    const viaAnthropicRoute = (profile: string) => new Anthropic({ baseURL: `${gw.url}/profiles/${profile}/anthropic`, authToken: gw.key, apiKey: null, maxRetries: 0 });
    for (const [profile, text] of [
      ['bedrock', 'pong from bedrock'],
      ['vertex', 'pong from vertex'],
    ]) {
      const final = await viaAnthropicRoute(profile).messages.stream({ model: 'claude-sonnet-4-5-20250929', max_tokens: 16, messages: [{ role: 'user', content: 'say pong' }] }).finalMessage();
      assert.equal(final.content[0].type === 'text' && final.content[0].text, text);
    }
    assert.match(bedrock.last!.url, /\/invoke-with-response-stream$/);
    // Anything but the Messages API still says which route to use.
    const res = await fetch(`${gw.url}/profiles/bedrock/anthropic/v1/files`, { headers: { authorization: `Bearer ${gw.key}` } });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /Profile "bedrock" \(bedrock\)/);
  });

  it('Bedrock: non-streaming, count_tokens and an exception mid-stream (as an SSE error event)', async () => {
    const c = client('bedrock');
    const msg = await c.messages.create({ model: 'haiku', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(msg.content[0].type === 'text' && msg.content[0].text, 'pong from bedrock');
    assert.match(bedrock.last!.url, /eu\.anthropic\.claude-haiku-4-5-20251001-v1%3A0\/invoke$/);
    const count = await c.messages.countTokens({ model: 'claude-opus-4-6', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(count.input_tokens, 42);
    bedrock.script.push({ exception: { type: 'throttlingException', message: 'Too many tokens, please wait.' } });
    await assert.rejects(c.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }).finalMessage(), /Too many tokens/);
  });

  it('Bedrock: upstream errors keep their status and message in Anthropic\'s error shape', async () => {
    bedrock.script.push({ status: 429, body: JSON.stringify({ message: 'Too many requests, please wait before trying again.' }), headers: { 'x-amzn-errortype': 'ThrottlingException' } });
    const err = await client('bedrock').messages.create({ model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    assert.ok(err instanceof Anthropic.RateLimitError);
    assert.match(err.message, /Too many requests, please wait/);
  });

  it('Vertex: streamed and non-streamed turns and count_tokens through count-tokens:rawPredict', async () => {
    const c = client('vertex');
    const settled = nextSettled(gw);
    const final = await c.messages.stream({ model: 'claude-opus-4-6', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }).finalMessage();
    assert.equal(final.content[0].type === 'text' && final.content[0].text, 'pong from vertex');
    assert.equal(vertex.last!.url, '/v1/projects/test-proj/locations/global/publishers/anthropic/models/claude-opus-4-6:streamRawPredict');
    assert.equal(vertex.last!.json!.anthropic_version, 'vertex-2023-10-16');
    assert.equal((await settled).usage.cacheRead, 300);
    const msg = await c.messages.create({ model: 'claude-haiku-4-5-20251001', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(msg.content[0].type === 'text' && msg.content[0].text, 'pong from vertex');
    assert.match(vertex.last!.url, /models\/claude-haiku-4-5@20251001:rawPredict$/);
    const count = await c.messages.countTokens({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(count.input_tokens, 17);
    assert.match(vertex.last!.url, /models\/count-tokens:rawPredict$/);
    assert.equal(vertex.last!.json!.model, 'claude-sonnet-4-5@20250929');
  });

  it('/v1/models lists the profile\'s models with Anthropic ids', async () => {
    const page = await client('vertex').models.list();
    const ids = page.data.map((m) => m.id);
    assert.ok(ids.includes('claude-sonnet-4-5-20250929'));
    assert.ok(ids.includes('claude-opus-4-6'));
    const one = await client('bedrock').models.retrieve('claude-haiku-4-5-20251001');
    assert.equal(one.display_name, 'Claude Haiku 4.5');
  });
});
