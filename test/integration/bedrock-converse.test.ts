// Bedrock's Converse API through /bedrock: any AWS SDK client (not Claude Code, which uses InvokeModel) can call it
// with a gateway key, and the call must be metered like any other: tokens, cost, budgets and the audit record.
import * as assert from 'node:assert/strict';
import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { writtenCalls } from '../helpers/audit';
import { writeAwsFiles, STATIC_KEY, type AwsTestFiles } from '../helpers/aws-files';
import { nextSettled, startGateway, type TestGateway } from '../helpers/gateway';
import { MockBedrock } from '../helpers/mock-bedrock';

const MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';

describe('Bedrock Converse and ConverseStream through /bedrock, with the real AWS SDK client', function () {
  this.timeout(20_000);
  let aws: AwsTestFiles;
  let bedrock: MockBedrock;
  let gw: TestGateway;
  let client: BedrockRuntimeClient;
  let savedToken: string | undefined;

  before(async () => {
    aws = writeAwsFiles();
    bedrock = await new MockBedrock((id, token) => aws.lookup(id, token)).start();
    gw = await startGateway(
      {
        activeProfile: 'bedrock',
        profiles: [{ name: 'bedrock', provider: 'bedrock', region: 'us-east-1', awsProfile: 'static', endpoint: bedrock.url }],
        budgets: [{ scope: 'global', usd: 0.02, period: 'day' }],
      },
      { env: aws.env },
    );
    // A Bedrock API key in AWS_BEARER_TOKEN_BEDROCK: the SDK sends it as `Authorization: Bearer`, and the gateway key
    // is accepted there; the gateway signs again with the profile's credentials.
    savedToken = process.env.AWS_BEARER_TOKEN_BEDROCK;
    process.env.AWS_BEARER_TOKEN_BEDROCK = gw.key;
    client = new BedrockRuntimeClient({
      region: 'us-east-1',
      endpoint: `${gw.url}/bedrock`,
      maxAttempts: 1,
      // This client speaks HTTP/2 by default; the gateway serves HTTP/1.1 (as Claude Code and the other SDKs use).
      requestHandler: new NodeHttpHandler(),
    });
  });
  after(async () => {
    if (savedToken === undefined) delete process.env.AWS_BEARER_TOKEN_BEDROCK;
    else process.env.AWS_BEARER_TOKEN_BEDROCK = savedToken;
    client.destroy();
    await gw.close();
    await bedrock.stop();
    aws.cleanup();
  });

  const messages = [{ role: 'user' as const, content: [{ text: 'say pong' }] }];

  it('Converse: the answer comes back; AWS sees the profile signature and never the gateway key; tokens and cost are recorded', async () => {
    const settled = nextSettled(gw);
    const out = await client.send(new ConverseCommand({ modelId: MODEL, messages, inferenceConfig: { maxTokens: 16 } }));
    assert.equal(out.output?.message?.content?.[0]?.text, 'pong from bedrock');
    assert.equal(out.usage?.inputTokens, 30);
    const seen = bedrock.last!;
    assert.equal(seen.signer, STATIC_KEY.id);
    assert.equal(decodeURIComponent(seen.url), `/model/${MODEL}/converse`);
    assert.ok(!JSON.stringify(seen.headers).includes(gw.key), 'the gateway key must not reach AWS');
    const call = await settled;
    assert.equal(call.status, 'ok');
    assert.equal(call.streaming, false);
    assert.deepEqual([call.usage.input, call.usage.output, call.usage.cacheWrite5m, call.usage.cacheRead], [30, 9, 50, 700]);
    assert.equal(call.stopReason, 'end_turn');
    assert.ok(call.costUsd > 0, `priced: $${call.costUsd}`);
    const record = (await writtenCalls(gw.auditDir)).at(-1)!;
    assert.deepEqual(record.usage, { input: 30, output: 9, cacheWrite5m: 50, cacheWrite1h: 0, cacheRead: 700 });
  });

  it('ConverseStream: the SDK reads every event; usage comes from the metadata event after messageStop', async () => {
    const settled = nextSettled(gw);
    const out = await client.send(new ConverseStreamCommand({ modelId: MODEL, messages, inferenceConfig: { maxTokens: 16 } }));
    let text = '';
    let usage: { inputTokens?: number } | undefined;
    for await (const e of out.stream!) {
      if (e.contentBlockDelta?.delta?.text) text += e.contentBlockDelta.delta.text;
      if (e.metadata) usage = e.metadata.usage;
    }
    assert.equal(text, 'pong from bedrock');
    assert.equal(usage?.inputTokens, 30);
    const call = await settled;
    assert.equal(call.status, 'ok');
    assert.equal(call.streaming, true);
    assert.deepEqual([call.usage.input, call.usage.output, call.usage.cacheWrite5m, call.usage.cacheRead], [30, 9, 50, 700]);
    assert.equal(call.stopReason, 'end_turn');
    assert.ok(call.costUsd > 0);
  });

  it('a ConverseStream cut mid-frame is cut for the client too and settles as upstream_cut with the usage seen', async () => {
    bedrock.script.push({ cutMidFrame: true });
    const settled = nextSettled(gw);
    await assert.rejects(async () => {
      const out = await client.send(new ConverseStreamCommand({ modelId: MODEL, messages }));
      for await (const _e of out.stream!) void _e;
    });
    const call = await settled;
    assert.equal(call.status, 'upstream_cut');
  });

  it('Converse calls spend the budget: once it is used up the next call is refused with 429 before reaching AWS', async () => {
    const before = bedrock.requests.length;
    let refused: Error | undefined;
    for (let i = 0; i < 50 && !refused; i++) {
      try {
        await client.send(new ConverseCommand({ modelId: MODEL, messages }));
      } catch (err) {
        refused = err as Error;
      }
    }
    assert.ok(refused, 'the budget never ran out: Converse calls were not priced');
    // The AWS SDK names the error by x-amzn-errortype and reads its message from the top level of the body.
    assert.equal((refused as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode, 429);
    assert.equal(refused.name, 'ThrottlingException');
    assert.match(refused.message, /global budget of \$0\.02 per day reached/);
    const served = bedrock.requests.length - before;
    assert.ok(served >= 1 && served < 50, `${served} calls reached AWS`);
  });
});
