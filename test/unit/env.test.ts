import * as assert from 'node:assert/strict';
import { parseConfig } from '../../src/core/config/validate';
import { claudeCodeEnv, formatEnv, withKey } from '../../src/core/env';

const cfg = parseConfig(
  {
    profiles: [
      { name: 'anthropic', provider: 'anthropic', apiKey: '${env:K}', models: { default: 'claude-opus-4-8', haiku: 'claude-haiku-4-5' } },
      { name: 'sub', provider: 'anthropic', credentials: 'client' },
      { name: 'bedrock-us', provider: 'bedrock', region: 'us-west-2' },
      { name: 'vertex', provider: 'vertex', projectId: 'p1', region: 'us-east5' },
      { name: 'vertex-client', provider: 'vertex', projectId: 'p1', region: 'global', credentials: 'client' },
      { name: 'bedrock-unified', provider: 'bedrock', region: 'eu-west-1', mode: 'unified' },
    ],
  },
  { env: {} },
);
const p = (n: string) => cfg.profiles.find((x) => x.name === n)!;
const GW = 'http://127.0.0.1:4747';

describe('Claude Code environment', () => {
  it('anthropic: base URL on /anthropic, the key as ANTHROPIC_AUTH_TOKEN, model pins', () => {
    assert.deepEqual(withKey(claudeCodeEnv({ gatewayUrl: GW, profile: p('anthropic') }), 'K1'), {
      ANTHROPIC_AUTH_TOKEN: 'K1',
      ANTHROPIC_BASE_URL: `${GW}/anthropic`,
      ANTHROPIC_MODEL: 'claude-opus-4-8',
      ANTHROPIC_DEFAULT_HAIKU_MODEL: 'claude-haiku-4-5',
    });
  });

  it('client credentials: the key rides in Proxy-Authorization through ANTHROPIC_CUSTOM_HEADERS', () => {
    const env = withKey(claudeCodeEnv({ gatewayUrl: GW, profile: p('sub') }), 'K1');
    assert.equal(env.ANTHROPIC_CUSTOM_HEADERS, 'Proxy-Authorization: Bearer K1');
    assert.equal(env.ANTHROPIC_AUTH_TOKEN, undefined);
  });

  it('bedrock and vertex native modes, SKIP auth only when the gateway holds the credentials', () => {
    assert.deepEqual(withKey(claudeCodeEnv({ gatewayUrl: GW, profile: p('bedrock-us') }), 'K'), {
      ANTHROPIC_AUTH_TOKEN: 'K',
      CLAUDE_CODE_USE_BEDROCK: '1',
      ANTHROPIC_BEDROCK_BASE_URL: `${GW}/bedrock`,
      CLAUDE_CODE_SKIP_BEDROCK_AUTH: '1',
      AWS_REGION: 'us-west-2',
    });
    const v = withKey(claudeCodeEnv({ gatewayUrl: GW, profile: p('vertex') }), 'K');
    assert.equal(v.CLAUDE_CODE_SKIP_VERTEX_AUTH, '1');
    assert.equal(v.ANTHROPIC_VERTEX_BASE_URL, `${GW}/vertex_ai/v1`);
    assert.equal(v.ANTHROPIC_VERTEX_PROJECT_ID, 'p1');
    const vc = withKey(claudeCodeEnv({ gatewayUrl: GW, profile: p('vertex-client') }), 'K');
    assert.equal(vc.CLAUDE_CODE_SKIP_VERTEX_AUTH, undefined);
    assert.equal(vc.ANTHROPIC_CUSTOM_HEADERS, 'Proxy-Authorization: Bearer K');
    assert.equal(vc.CLOUD_ML_REGION, 'global');
  });

  it('unified mode points at the gateway root; a pinned profile goes through /profiles/<name>', () => {
    const env = claudeCodeEnv({ gatewayUrl: GW, profile: p('bedrock-unified'), pinInPath: true });
    assert.equal(env.ANTHROPIC_BASE_URL, `${GW}/profiles/bedrock-unified`);
    assert.equal(env.CLAUDE_CODE_USE_BEDROCK, undefined);
  });

  it('prints shell lines that reference the key instead of containing it', () => {
    const env = claudeCodeEnv({ gatewayUrl: GW, profile: p('sub') });
    assert.equal(formatEnv(env, 'sh', { file: '/home/u/.ccgw/gateway.key' }).split('\n')[0], 'export ANTHROPIC_CUSTOM_HEADERS="Proxy-Authorization: Bearer $(cat /home/u/.ccgw/gateway.key)"');
    assert.equal(formatEnv(env, 'fish', { envVar: 'GW_KEY' }).split('\n')[0], `set -gx ANTHROPIC_CUSTOM_HEADERS 'Proxy-Authorization: Bearer '"$GW_KEY"`);
    assert.equal(formatEnv(env, 'powershell', { command: 'ccgw token' }).split('\n')[0], '$env:ANTHROPIC_CUSTOM_HEADERS = "Proxy-Authorization: Bearer $(ccgw token)"');
    const json = JSON.parse(formatEnv(claudeCodeEnv({ gatewayUrl: GW, profile: p('anthropic') }), 'json', { file: '/k' }));
    assert.equal(json.ANTHROPIC_AUTH_TOKEN, undefined, 'json without a literal key leaves the key out');
    assert.equal(json.ANTHROPIC_BASE_URL, `${GW}/anthropic`);
  });
});
