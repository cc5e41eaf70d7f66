import * as assert from 'node:assert/strict';
import { claudeCodeEnv, withKey } from '../../src/core/env';
import { MockAnthropic } from '../helpers/mock-anthropic';
import { startGateway, type TestGateway } from '../helpers/gateway';
import { runClaude } from '../helpers/claude-cli';

const PROVIDER_KEY = 'sk-ant-test-provider-key-cc01';
const LITELLM_KEY = 'sk-litellm-test-key-cc02';

describe('the real Claude Code CLI through the gateway', function () {
  this.timeout(120_000);
  let anthropic: MockAnthropic;
  let litellm: MockAnthropic;
  let gw: TestGateway;

  before(async () => {
    anthropic = await new MockAnthropic().start();
    anthropic.requireApiKey = PROVIDER_KEY;
    anthropic.replyText = 'pong from anthropic';
    litellm = await new MockAnthropic().start();
    litellm.requireBearer = LITELLM_KEY;
    litellm.replyText = 'pong from litellm';
    gw = await startGateway(
      {
        activeProfile: 'anthropic',
        profiles: [
          { name: 'anthropic', provider: 'anthropic', apiKey: '${env:CC_TEST_KEY}', baseUrl: anthropic.url },
          { name: 'team-litellm', provider: 'litellm', baseUrl: litellm.url, apiKeyHelper: `printf '%s' ${LITELLM_KEY}` },
          { name: 'unified', provider: 'anthropic', mode: 'unified', apiKey: '${env:CC_TEST_KEY}', baseUrl: anthropic.url },
        ],
      },
      { env: { CC_TEST_KEY: PROVIDER_KEY } },
    );
  });
  after(async () => {
    await gw.close();
    await anthropic.stop();
    await litellm.stop();
  });

  function envFor(profileName: string): Record<string, string> {
    const profile = gw.runtime.profile(profileName)!;
    return withKey(claudeCodeEnv({ gatewayUrl: gw.url, profile, pinInPath: profileName !== gw.config.activeProfile }), gw.key);
  }

  it('completes a turn against an Anthropic profile (/anthropic) with a streamed request carrying the profile key', async () => {
    const before = anthropic.requests.length;
    const run = await runClaude('say pong', envFor('anthropic'));
    assert.equal(run.result?.is_error, false, `claude failed: ${run.stdout}\n${run.stderr}`);
    assert.equal(run.result?.result, 'pong from anthropic');
    const calls = anthropic.requests.slice(before).filter((r) => r.url.startsWith('/v1/messages'));
    assert.ok(calls.length >= 1);
    const turn = calls.find((r) => r.json?.stream === true);
    assert.ok(turn, 'Claude Code streamed its turn');
    for (const c of calls) {
      assert.equal(c.headers['x-api-key'], PROVIDER_KEY);
      assert.ok(!JSON.stringify(c.headers).includes(gw.key), 'the gateway key never reaches the upstream');
    }
    assert.match(turn.url, /\?beta=true$/);
    assert.match(String(turn.headers['anthropic-beta']), /claude-code-/);
  });

  it('completes a turn against a LiteLLM profile, its key from an apiKeyHelper as a Bearer token', async () => {
    const before = litellm.requests.length;
    const run = await runClaude('say pong', envFor('team-litellm'));
    assert.equal(run.result?.is_error, false, `claude failed: ${run.stdout}\n${run.stderr}`);
    assert.equal(run.result?.result, 'pong from litellm');
    const turn = litellm.requests.slice(before).find((r) => r.json?.stream === true);
    assert.ok(turn, 'LiteLLM saw the streamed turn');
    assert.match(turn.url, /^\/anthropic\/v1\/messages/);
    assert.equal(turn.headers.authorization, `Bearer ${LITELLM_KEY}`);
  });

  it('completes a turn on the unified endpoint (ANTHROPIC_BASE_URL=<gateway>)', async () => {
    const env = envFor('unified');
    assert.match(env.ANTHROPIC_BASE_URL, /\/profiles\/unified$/);
    const run = await runClaude('say pong', env);
    assert.equal(run.result?.is_error, false, `claude failed: ${run.stdout}\n${run.stderr}`);
    assert.equal(run.result?.result, 'pong from anthropic');
  });
});
