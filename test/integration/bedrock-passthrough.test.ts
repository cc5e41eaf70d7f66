import * as assert from 'node:assert/strict';
import { AnthropicBedrock } from '@anthropic-ai/bedrock-sdk';
import { writeAwsFiles, STATIC_KEY, type AwsTestFiles } from '../helpers/aws-files';
import { nextSettled, startGateway, type TestGateway } from '../helpers/gateway';
import { MockBedrock } from '../helpers/mock-bedrock';

const MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';

describe('Bedrock profile: /bedrock passthrough, SigV4 from the AWS credential chain', () => {
  let aws: AwsTestFiles;
  let bedrock: MockBedrock;
  let gw: TestGateway;
  let client: AnthropicBedrock;

  before(async () => {
    aws = writeAwsFiles();
    bedrock = await new MockBedrock((id, token) => aws.lookup(id, token)).start();
    bedrock.bearerToken = 'bedrock-api-key-test-0001';
    const common = { provider: 'bedrock', region: 'us-east-1', endpoint: bedrock.url };
    gw = await startGateway(
      {
        activeProfile: 'bedrock',
        profiles: [
          { name: 'bedrock', awsProfile: 'static', ...common },
          { name: 'default-chain', ...common },
          { name: 'wrong-secret', awsProfile: 'wrong-secret', ...common },
          { name: 'missing', awsProfile: 'no-such-profile', ...common },
          { name: 'sso', awsProfile: 'sso-expired', ...common },
          { name: 'api-key', bearerToken: '${env:TEST_BEDROCK_KEY}', ...common },
          { name: 'stored-key', ...common },
        ],
      },
      // The editor keeps a Bedrock API key in its SecretStorage, keyed by profile.
      { env: { ...aws.env, TEST_BEDROCK_KEY: 'bedrock-api-key-test-0001' }, secrets: { get: (name) => (name === 'stored-key' ? 'bedrock-api-key-test-0001' : undefined) } },
    );
    client = new AnthropicBedrock({ awsRegion: 'us-east-1', baseURL: `${gw.url}/bedrock`, skipAuth: true, defaultHeaders: { authorization: `Bearer ${gw.key}` } });
  });
  after(async () => {
    await gw.close();
    await bedrock.stop();
    aws.cleanup();
  });

  it('the real Bedrock SDK completes a turn; upstream sees a valid SigV4 signature and never the gateway key', async () => {
    const settled = nextSettled(gw);
    const msg = await client.messages.create({ model: MODEL, max_tokens: 16, messages: [{ role: 'user', content: 'say pong' }] });
    assert.equal(msg.content[0].type === 'text' && msg.content[0].text, 'pong from bedrock');
    const seen = bedrock.last!;
    assert.equal(seen.signer, STATIC_KEY.id);
    assert.equal(seen.url, `/model/${MODEL}/invoke`);
    assert.ok(!JSON.stringify(seen.headers).includes(gw.key), 'the gateway key must not reach AWS');
    const call = await settled;
    assert.equal(call.route, 'bedrock');
    assert.equal(call.usage.cacheRead, 700);
    assert.equal(call.usage.output, 9);
  });

  it('streams through the real SDK; usage is read from the event-stream frames', async () => {
    const settled = nextSettled(gw);
    const stream = client.messages.stream({ model: MODEL, max_tokens: 16, messages: [{ role: 'user', content: 'say pong' }] });
    const final = await stream.finalMessage();
    assert.equal(final.content[0].type === 'text' && final.content[0].text, 'pong from bedrock');
    const call = await settled;
    assert.equal(call.status, 'ok');
    assert.equal(call.streaming, true);
    assert.deepEqual([call.usage.input, call.usage.output, call.usage.cacheWrite5m, call.usage.cacheRead], [30, 9, 50, 700]);
  });

  it('a raw ":" in the model id (as Claude Code sends it) and a URL-encoded ARN both pass signature checks unchanged', async () => {
    const body = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    const headers = { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json' };
    const arn = encodeURIComponent('arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123');
    for (const id of [MODEL, arn]) {
      const res = await fetch(`${gw.url}/bedrock/model/${id}/invoke`, { method: 'POST', headers, body });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(bedrock.last!.url, `/model/${id}/invoke`);
      assert.equal(bedrock.last!.body.toString(), body, 'the body reaches Bedrock byte for byte');
    }
    assert.equal(bedrock.rejected.length, 0);
  });

  it('the event stream passes byte for byte with its content type, even split into 7-byte TCP chunks', async () => {
    bedrock.script.push({ chunkBytes: 7 });
    const settled = nextSettled(gw);
    const res = await fetch(`${gw.url}/bedrock/model/${MODEL}/invoke-with-response-stream`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
    });
    assert.equal(res.headers.get('content-type'), 'application/vnd.amazon.eventstream');
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.ok(bytes.equals(bedrock.lastStreamBytes!), 'identical bytes');
    const call = await settled;
    assert.equal(call.usage.input, 30);
    assert.equal(call.usage.output, 9);
  });

  it('an exception frame reaches the SDK as an error and is recorded', async () => {
    bedrock.script.push({ exception: { type: 'throttlingException', message: 'Too many requests, please wait before trying again.' } });
    const settled = nextSettled(gw);
    const stream = client.messages.stream({ model: MODEL, max_tokens: 16, messages: [{ role: 'user', content: 'x' }] }, { maxRetries: 0 });
    await assert.rejects(stream.finalMessage(), /Too many requests/);
    assert.equal((await settled).errorType, 'rate_limit_error');
  });

  it('a stream cut mid-frame is cut for the client too and settles as upstream_cut', async () => {
    bedrock.script.push({ cutMidFrame: true });
    const settled = nextSettled(gw);
    const res = await fetch(`${gw.url}/bedrock/model/${MODEL}/invoke-with-response-stream`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [] }),
    });
    await assert.rejects(res.arrayBuffer());
    assert.equal((await settled).status, 'upstream_cut');
  });

  it('anonymous control-plane calls are answered locally with 404; with a gateway key they are signed and forwarded', async () => {
    const before = bedrock.requests.length;
    const anon = await fetch(`${gw.url}/bedrock/inference-profiles?type=SYSTEM_DEFINED`, { headers: { 'x-amz-user-agent': 'aws-sdk-js/3.936.0' } });
    assert.equal(anon.status, 404);
    assert.equal(bedrock.requests.length, before, 'nothing was sent to AWS');
    const ok = await fetch(`${gw.url}/bedrock/inference-profiles?type=SYSTEM_DEFINED`, { headers: { authorization: `Bearer ${gw.key}` } });
    assert.equal(ok.status, 200);
    assert.equal(bedrock.last!.url, '/inference-profiles?type=SYSTEM_DEFINED');
    const model = await fetch(`${gw.url}/bedrock/model/${MODEL}/invoke`, { method: 'POST', body: '{}' });
    assert.equal(model.status, 401, 'model calls always need the gateway key');
  });

  it('the default chain (no awsProfile) and a Bedrock API key (bearerToken, or stored in the editor) all work', async () => {
    const body = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [] });
    for (const [profile, signer] of [
      ['default-chain', 'AKIATESTDEFAULT00001'],
      ['api-key', 'bearer'],
      ['stored-key', 'bearer'],
    ]) {
      const res = await fetch(`${gw.url}/profiles/${profile}/bedrock/model/${MODEL}/invoke`, { method: 'POST', headers: { authorization: `Bearer ${gw.key}` }, body });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(bedrock.last!.signer, signer);
    }
  });

  it("AWS's own 403 for a bad signature comes back unchanged", async () => {
    const res = await fetch(`${gw.url}/profiles/wrong-secret/bedrock/model/${MODEL}/invoke`, { method: 'POST', headers: { authorization: `Bearer ${gw.key}` }, body: '{}' });
    assert.equal(res.status, 403);
    assert.match(res.headers.get('x-amzn-errortype') ?? '', /^InvalidSignatureException/);
    assert.match(((await res.json()) as { message: string }).message, /signature we calculated does not match/);
  });

  it('when the chain fails: 502 with the SDK reason and what to run, no stack trace', async () => {
    for (const [profile, hint] of [
      ['missing', /aws configure --profile no-such-profile/],
      ['sso', /aws sso login --profile sso-expired/],
    ] as const) {
      const res = await fetch(`${gw.url}/profiles/${profile}/bedrock/model/${MODEL}/invoke`, { method: 'POST', headers: { authorization: `Bearer ${gw.key}` }, body: '{}' });
      assert.equal(res.status, 502);
      const body = (await res.json()) as { error: { type: string; message: string } };
      assert.equal(body.error.type, 'api_error');
      assert.match(body.error.message, hint);
      assert.doesNotMatch(body.error.message, /\n\s+at /);
    }
  });
});
