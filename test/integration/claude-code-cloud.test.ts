import * as assert from 'node:assert/strict';
import { claudeCodeEnv, withKey } from '../../src/core/env';
import { writeAwsFiles, type AwsTestFiles } from '../helpers/aws-files';
import { runClaude } from '../helpers/claude-cli';
import { startGateway, type TestGateway } from '../helpers/gateway';
import { MockBedrock } from '../helpers/mock-bedrock';
import { MockGoogleSts } from '../helpers/mock-google';
import { MockVertex } from '../helpers/mock-vertex';

/** The real Claude Code CLI (2.1.197) in Bedrock and Vertex modes, and in Anthropic format on a Bedrock profile. */
describe('the real Claude Code CLI through the gateway: Bedrock and Vertex AI', function () {
  this.timeout(120_000);
  let aws: AwsTestFiles;
  let bedrock: MockBedrock;
  let sts: MockGoogleSts;
  let vertex: MockVertex;
  let gw: TestGateway;

  before(async () => {
    aws = writeAwsFiles();
    bedrock = await new MockBedrock((id, token) => aws.lookup(id, token)).start();
    sts = await new MockGoogleSts().start();
    vertex = await new MockVertex((t) => sts.issuer.valid(t)).start();
    const bedrockProfile = { provider: 'bedrock', region: 'us-east-1', awsProfile: 'static', endpoint: bedrock.url };
    const vertexProfile = { provider: 'vertex', projectId: 'test-proj', region: 'us-east5', endpoint: vertex.url };
    gw = await startGateway(
      {
        activeProfile: 'bedrock',
        profiles: [
          { name: 'bedrock', ...bedrockProfile },
          { name: 'bedrock-unified', mode: 'unified', ...bedrockProfile },
          { name: 'vertex', keyFile: sts.credentialsFile, ...vertexProfile },
          { name: 'vertex-client', credentials: 'client', ...vertexProfile },
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

  function envFor(name: string): Record<string, string> {
    const profile = gw.runtime.profile(name)!;
    return withKey(claudeCodeEnv({ gatewayUrl: gw.url, profile, pinInPath: name !== gw.config.activeProfile }), gw.key);
  }

  it('Bedrock mode (CLAUDE_CODE_USE_BEDROCK, SKIP auth): a turn completes over the event stream, signed by the gateway', async () => {
    const before = bedrock.requests.length;
    const run = await runClaude('say pong', envFor('bedrock'));
    assert.equal(run.result?.is_error, false, `claude failed: ${run.stdout}\n${run.stderr}`);
    assert.equal(run.result?.result, 'pong from bedrock');
    const calls = bedrock.requests.slice(before);
    const turn = calls.find((r) => r.url.endsWith('/invoke-with-response-stream'));
    assert.ok(turn, 'Claude Code streamed its turn');
    assert.match(turn.url, /^\/model\/[a-z.]*anthropic\.claude-[a-z0-9-]+-v1:0\/invoke-with-response-stream$/, 'raw ":" kept');
    assert.equal(turn.signer, 'AKIATESTSTATIC000001');
    assert.ok(!calls.some((c) => c.url.startsWith('/inference-profiles')), 'anonymous control-plane calls never reach AWS');
    assert.equal(bedrock.rejected.length, 0);
  });

  it('Vertex mode with gateway credentials (SKIP auth): a turn completes with a token from google-auth-library', async () => {
    const before = vertex.requests.length;
    const run = await runClaude('say pong', envFor('vertex'));
    assert.equal(run.result?.is_error, false, `claude failed: ${run.stdout}\n${run.stderr}`);
    assert.equal(run.result?.result, 'pong from vertex');
    const turn = vertex.requests.slice(before).find((r) => r.url.endsWith(':streamRawPredict'));
    assert.ok(turn);
    assert.match(String(turn.headers.authorization), /^Bearer ya29\.test-wif-/);
  });

  it('Vertex mode with client credentials: Claude Code\'s own Google token passes through, the gateway key rides in Proxy-Authorization', async () => {
    const env = envFor('vertex-client');
    assert.equal(env.CLAUDE_CODE_SKIP_VERTEX_AUTH, undefined);
    assert.match(env.ANTHROPIC_CUSTOM_HEADERS, /^Proxy-Authorization: Bearer /);
    const before = vertex.requests.length;
    // With workload identity, google-auth-library looks the project up at Resource Manager unless it is given one.
    const run = await runClaude('say pong', { ...env, GOOGLE_APPLICATION_CREDENTIALS: sts.credentialsFile, GOOGLE_CLOUD_PROJECT: 'test-proj' });
    assert.equal(run.result?.is_error, false, `claude failed: ${run.stdout}\n${run.stderr}`);
    assert.equal(run.result?.result, 'pong from vertex');
    const turn = vertex.requests.slice(before).find((r) => r.url.endsWith(':streamRawPredict'))!;
    assert.match(String(turn.headers.authorization), /^Bearer ya29\.test-wif-/, 'the token Claude Code obtained itself');
    assert.equal(turn.headers['proxy-authorization'], undefined, 'the gateway key stays at the gateway');
  });

  it('Anthropic format (ANTHROPIC_BASE_URL=<gateway>) on a Bedrock profile: translated both ways', async () => {
    const env = envFor('bedrock-unified');
    assert.equal(env.CLAUDE_CODE_USE_BEDROCK, undefined);
    const before = bedrock.requests.length;
    const run = await runClaude('say pong', env);
    assert.equal(run.result?.is_error, false, `claude failed: ${run.stdout}\n${run.stderr}`);
    assert.equal(run.result?.result, 'pong from bedrock');
    const turn = bedrock.requests.slice(before).find((r) => r.url.endsWith('/invoke-with-response-stream'))!;
    assert.equal(turn.json!.anthropic_version, 'bedrock-2023-05-31');
    assert.ok(Array.isArray(turn.json!.anthropic_beta), 'Claude Code\'s betas travel in the body');
  });
});
