import * as assert from 'node:assert/strict';
import { parseConfig } from '../../src/core/config/validate';
import { describeIdentity, parseIdentity, sameIdentity, secretIdentity } from '../../src/core/secret-identity';

const profile = (p: Record<string, unknown>) => parseConfig({ profiles: [{ name: 'p', ...p }] }, { env: {} }).profiles[0];

describe('secret identity (what a stored key is bound to)', () => {
  it('Anthropic and LiteLLM: the base URL the key is sent to, with the default filled in and a trailing slash ignored', () => {
    assert.deepEqual(secretIdentity(profile({ provider: 'anthropic' })), { provider: 'anthropic', url: 'https://api.anthropic.com' });
    assert.ok(sameIdentity(secretIdentity(profile({ provider: 'anthropic' })), secretIdentity(profile({ provider: 'anthropic', baseUrl: 'https://api.anthropic.com/' }))));
    assert.deepEqual(secretIdentity(profile({ provider: 'litellm', baseUrl: 'https://llm.example.com/team/' })), { provider: 'litellm', url: 'https://llm.example.com/team' });
  });

  it('another host, port, path or provider is another identity; the name and key header are not part of it', () => {
    const base = secretIdentity(profile({ provider: 'anthropic', baseUrl: 'https://gw.example.com' }));
    for (const other of [
      { provider: 'anthropic', baseUrl: 'https://evil.example.com' },
      { provider: 'anthropic', baseUrl: 'https://gw.example.com:8443' },
      { provider: 'anthropic', baseUrl: 'http://gw.example.com' },
      { provider: 'anthropic', baseUrl: 'https://gw.example.com/other' },
      { provider: 'litellm', baseUrl: 'https://gw.example.com' },
    ]) {
      assert.ok(!sameIdentity(base, secretIdentity(profile(other))), JSON.stringify(other));
    }
    const litellm = secretIdentity(profile({ provider: 'litellm', baseUrl: 'https://gw.example.com' }));
    assert.ok(sameIdentity(litellm, secretIdentity(profile({ provider: 'litellm', baseUrl: 'https://gw.example.com', keyHeader: 'x-litellm-api-key' }))));
  });

  it('Bedrock: region and endpoint; Vertex AI: region, project and endpoint', () => {
    const us = secretIdentity(profile({ provider: 'bedrock', region: 'us-east-1' }));
    assert.deepEqual(us, { provider: 'bedrock', url: 'https://bedrock-runtime.us-east-1.amazonaws.com', region: 'us-east-1' });
    assert.ok(!sameIdentity(us, secretIdentity(profile({ provider: 'bedrock', region: 'eu-west-1' }))));
    assert.ok(!sameIdentity(us, secretIdentity(profile({ provider: 'bedrock', region: 'us-east-1', endpoint: 'https://vpce.example.com' }))));
    const v = secretIdentity(profile({ provider: 'vertex', region: 'us-east5', projectId: 'proj-a' }));
    assert.equal(describeIdentity(v), 'vertex https://us-east5-aiplatform.googleapis.com (project proj-a)');
    assert.ok(!sameIdentity(v, secretIdentity(profile({ provider: 'vertex', region: 'us-east5', projectId: 'proj-b' }))));
  });

  it('reads back what was stored, and nothing else', () => {
    const i = secretIdentity(profile({ provider: 'bedrock', region: 'us-west-2' }));
    assert.deepEqual(parseIdentity(JSON.parse(JSON.stringify(i))), i);
    for (const junk of [undefined, null, 'x', 1, {}, { provider: 'anthropic' }, { url: 'https://x' }]) assert.equal(parseIdentity(junk), undefined);
  });
});
