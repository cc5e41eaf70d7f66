import * as assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../../src/core/config/validate';

function problems(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(raw, { env, homeDir: '/home/u', baseDir: '/etc/ccgw' });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.problems;
  }
  return [];
}

describe('config validation', () => {
  const anthropic = { name: 'anthropic', provider: 'anthropic', apiKey: '${env:ANTHROPIC_API_KEY}' };

  it('accepts the documented example shape and applies defaults', () => {
    const cfg = parseConfig(
      {
        listen: { host: '127.0.0.1', port: 4747 },
        dataDir: '~/.claude-code-gateway/data',
        activeProfile: 'anthropic',
        profiles: [
          { name: 'anthropic', provider: 'anthropic', apiKey: '${env:ANTHROPIC_API_KEY}', baseUrl: 'https://api.anthropic.com' },
          { name: 'team-litellm', provider: 'litellm', baseUrl: 'https://litellm.example.com:4000', apiKeyHelper: 'vault kv get -field=api_key secret/litellm', apiKeyHelperTtlMs: 3600000, keyHeader: 'Authorization' },
          { name: 'bedrock-us', provider: 'bedrock', region: 'us-east-1', awsProfile: 'dev', endpoint: 'https://bedrock-runtime.us-east-1.amazonaws.com' },
          { name: 'vertex', provider: 'vertex', projectId: 'my-project', region: 'us-east5', credentials: 'gateway', keyFile: '/path/sa.json', endpoint: 'https://us-east5-aiplatform.googleapis.com' },
        ],
        keys: [{ id: 'alice', key: '${env:GATEWAY_KEY_ALICE}', team: 'platform', project: 'web' }, { id: 'bob', sha256: 'a'.repeat(64) }],
        budgets: [{ scope: 'key:alice', usd: 20, period: 'day' }],
        rateLimits: [{ scope: 'global', requestsPerMinute: 120, tokensPerMinute: 2000000 }],
        audit: { bodies: 'none' },
      },
      { env: {}, homeDir: '/home/u' },
    );
    assert.equal(cfg.dataDir, '/home/u/.claude-code-gateway/data');
    assert.equal(cfg.audit.dir, '/home/u/.claude-code-gateway/data/audit');
    assert.equal(cfg.profiles[0].mode, 'native');
    assert.equal(cfg.profiles[0].credentials, 'gateway');
    // Secrets stay unexpanded until used.
    assert.equal(cfg.profiles[0].apiKey, '${env:ANTHROPIC_API_KEY}');
  });

  it('names the JSON path of a provider-specific required field', () => {
    assert.deepEqual(problems({ profiles: [anthropic, { name: 'b', provider: 'bedrock' }] }), ['profiles[1].region: required for provider "bedrock"']);
    assert.deepEqual(problems({ profiles: [{ name: 'v', provider: 'vertex', region: 'us-east5' }] }), ['profiles[0].projectId: required for provider "vertex"']);
  });

  it('rejects unknown keys with a suggestion, at any depth', () => {
    assert.deepEqual(problems({ profiles: [anthropic], listn: { port: 1 } }), ['listn: unknown key (did you mean "listen"?)']);
    assert.deepEqual(problems({ profiles: [{ ...anthropic, baseURL: 'https://x' }] }), ['profiles[0].baseURL: unknown key (did you mean "baseUrl"?)']);
    assert.deepEqual(problems({ profiles: [anthropic], audit: { bodys: 'full' } }), ['audit.bodys: unknown key (did you mean "bodies"?)']);
  });

  it('rejects fields a provider does not use, wrong enums and types, each on its own line', () => {
    const p = problems({
      profiles: [{ ...anthropic, region: 'us-east-1' }, { name: 'x', provider: 'openai' }],
      listen: { port: 'eighty' },
    });
    assert.ok(p.some((l) => l.startsWith('profiles[1].provider:')), p.join('\n'));
    assert.ok(p.some((l) => l.startsWith('listen.port:')), p.join('\n'));
    const q = problems({ profiles: [{ ...anthropic, region: 'us-east-1' }] });
    assert.match(q[0], /^profiles\[0\]\.region: not used by provider "anthropic"/);
  });

  it('checks cross references: activeProfile, key pins, scopes, duplicates, key material', () => {
    const p = problems({
      activeProfile: 'nope',
      profiles: [anthropic, anthropic],
      keys: [{ id: 'a', key: 'k', sha256: 'b'.repeat(64), profile: 'ghost' }, { id: 'a' }],
      budgets: [{ scope: 'profile:ghost', usd: 5, period: 'day' }],
    });
    assert.ok(p.includes('profiles[1].name: duplicate profile name "anthropic"'), p.join('\n'));
    assert.ok(p.includes('activeProfile: no profile named "nope" (profiles: anthropic)'), p.join('\n'));
    assert.ok(p.includes('keys[0]: set exactly one of "key" or "sha256"'), p.join('\n'));
    assert.ok(p.includes('keys[0].profile: no profile named "ghost"'), p.join('\n'));
    assert.ok(p.includes('keys[1].id: duplicate key id "a"'), p.join('\n'));
    assert.ok(p.includes('budgets[0].scope: no profile named "ghost"'), p.join('\n'));
    const q = problems({ profiles: [anthropic], budgets: [{ scope: 'team x', usd: 5, period: 'day' }] });
    assert.ok(q[0].startsWith('budgets[0].scope: must be "global" or one of'), q.join('\n'));
  });

  it('validates URLs after ${env:} expansion and defers a missing variable to the profile that uses it', () => {
    assert.deepEqual(problems({ profiles: [{ ...anthropic, baseUrl: 'ftp://x' }] }), ['profiles[0].baseUrl: must be an http(s) URL, got "ftp://x"']);
    const cfg = parseConfig({ profiles: [anthropic, { name: 'lite', provider: 'litellm', baseUrl: '${env:LITELLM_URL}' }] }, { env: {} });
    assert.equal(cfg.profiles[1].unusable, 'profiles[1].baseUrl: environment variable LITELLM_URL is not set (needed by profile "lite")');
    assert.equal(cfg.profiles[0].unusable, undefined);
    const ok = parseConfig({ profiles: [{ name: 'lite', provider: 'litellm', baseUrl: '${env:LITELLM_URL}' }] }, { env: { LITELLM_URL: 'http://10.0.0.1:4000' } });
    assert.equal(ok.profiles[0].baseUrl, 'http://10.0.0.1:4000');
  });

  it('refuses two key sources on one profile and keys on client-credential profiles', () => {
    assert.deepEqual(problems({ profiles: [{ ...anthropic, apiKeyHelper: 'x' }] }), ['profiles[0]: set only one of apiKey, apiKeyHelper']);
    assert.match(problems({ profiles: [{ ...anthropic, credentials: 'client' }] })[0], /^profiles\[0\]\.apiKey: not used with credentials "client"/);
  });
});
