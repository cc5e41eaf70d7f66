import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseConfig } from '../../src/core/config/validate';
import { confinedUpstreamModel, confineModelId, confineModelSegment, isModelId, type ModelIdProvider } from '../../src/core/providers/model-id';
import { MODELS } from '../../src/core/providers/model-catalog';

function refused(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    const e = err as { code?: string; statusCode?: number; message: string };
    assert.equal(e.code, 'CCGW_UNSAFE_PATH');
    assert.equal(e.statusCode, 400);
    return e.message;
  }
  assert.fail('expected a refusal');
}

describe('model ids in upstream URLs (confineModelId)', () => {
  it('accepts every id of the catalog, with and without inference-profile prefixes', () => {
    for (const m of MODELS) {
      if (m.bedrock) for (const id of [m.bedrock, `us.${m.bedrock}`, `global.${m.bedrock}`, `us-gov.${m.bedrock}`]) assert.ok(isModelId('bedrock', id), id);
      if (m.vertex) assert.ok(isModelId('vertex', m.vertex), m.vertex);
      // Anthropic ids and aliases that a profile sends on unchanged when the catalog does not know them.
      for (const provider of ['bedrock', 'vertex'] as const) assert.ok(isModelId(provider, m.anthropic), `${provider} ${m.anthropic}`);
    }
  });

  it('accepts the Bedrock id forms InvokeModel takes', () => {
    for (const id of [
      'meta.llama3-70b-instruct-v1:0',
      'anthropic.claude-v2:0:18k',
      'amazon.titan-embed-text-v2:0',
      'arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123',
      'arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0',
      'arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2',
      'arn:aws:bedrock:us-east-1:111122223333:custom-model/anthropic.claude-v2:0:100k/abcd1234',
      'arn:aws-us-gov:bedrock:us-gov-west-1:111122223333:provisioned-model/xyz',
      'arn:aws:sagemaker:us-west-2:111122223333:endpoint/my-endpoint',
    ]) {
      assert.ok(isModelId('bedrock', id), id);
    }
  });

  const hostile = ['', '.', '..', '../x', 'a/../b', 'a/b', 'a\\b', '%2e%2e', 'a%2fb', 'a?b', 'a#b', ' a', 'a ', 'a\n', 'a\u0000', '\u2025', '\uff0e\uff0e', 'caf\u00e9', 'x'.repeat(3000)];
  for (const provider of ['bedrock', 'vertex'] as const) {
    it(`${provider}: refuses dot segments, separators, escapes, whitespace, non-ASCII and overlong ids with CCGW_UNSAFE_PATH`, () => {
      for (const id of hostile) refused(() => confineModelId(provider, id));
      refused(() => confineModelId(provider, 7));
      refused(() => confineModelId(provider, undefined));
    });
  }

  it('knows each provider\'s separators: ":" only in Bedrock suffixes and ARNs, "@" only once in Vertex ids', () => {
    assert.ok(isModelId('vertex', 'claude-opus-4-1@20250805'));
    for (const id of ['claude-opus-4-1@20250805:streamRawPredict', 'claude@1@2', '@x', 'x@']) assert.ok(!isModelId('vertex', id), id);
    for (const id of ['anthropic.claude@x', 'anthropic..claude', '.anthropic', 'anthropic.', 'a:', 'a::b', 'arn:aws:bedrock:us-east-1:1:application-inference-profile/x', 'arn:aws:bedrock:us-east-1:111122223333:x//y', 'arn:aws:s3:::bucket/key']) {
      assert.ok(!isModelId('bedrock', id), id);
    }
  });

  it('whatever passes is exactly one path segment: no "/", "?", "#", "\\\\" and never a dot segment once decoded', () => {
    fc.assert(
      fc.property(fc.constantFrom<ModelIdProvider>('bedrock', 'vertex'), fc.string({ unit: fc.constantFrom('a', '1', '.', '-', '_', ':', '@', '/', '%', '?', '#', '\\', ' ', 'arn', 'aws', 'bedrock', '\u00e9') }), (provider, id) => {
        let segment: string;
        try {
          segment = confineModelId(provider, id).segment;
        } catch {
          return;
        }
        assert.doesNotMatch(segment, /[/?#\\\s]/);
        assert.notEqual(decodeURIComponent(segment), '.');
        assert.notEqual(decodeURIComponent(segment), '..');
        assert.equal(decodeURIComponent(segment), id);
      }),
      { numRuns: 3000 },
    );
  });

  it('encodes as each provider\'s SDK does: Bedrock escapes ":" and "/", Vertex keeps "@"', () => {
    assert.equal(confineModelId('bedrock', 'us.anthropic.claude-haiku-4-5-20251001-v1:0').segment, 'us.anthropic.claude-haiku-4-5-20251001-v1%3A0');
    assert.equal(confineModelId('bedrock', 'arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc').segment, 'arn%3Aaws%3Abedrock%3Aus-east-1%3A111122223333%3Aapplication-inference-profile%2Fabc');
    assert.equal(confineModelId('vertex', 'claude-sonnet-4-5@20250929').segment, 'claude-sonnet-4-5@20250929');
  });

  it('a path segment keeps the client\'s plain spelling, is decoded before the check, and a bad escape is refused', () => {
    assert.deepEqual(confineModelSegment('bedrock', 'us.anthropic.claude-haiku-4-5-20251001-v1:0'), { id: 'us.anthropic.claude-haiku-4-5-20251001-v1:0', segment: 'us.anthropic.claude-haiku-4-5-20251001-v1:0' });
    const arn = encodeURIComponent('arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc');
    assert.equal(confineModelSegment('bedrock', arn).segment, arn);
    refused(() => confineModelSegment('bedrock', 'a%2f..%2fb'));
    refused(() => confineModelSegment('bedrock', '%zz'));
    refused(() => confineModelSegment('vertex', '%2e%2e'));
  });

  it('a profile map output is confined too, and the refusal names the profile and the entry', () => {
    const config = parseConfig({
      profiles: [{ name: 'v', provider: 'vertex', projectId: 'p', region: 'us-east5', models: { map: { opus: '../../../projects/x/locations/y/publishers/anthropic/models/z', fine: 'claude-opus-4-1@20250805' } } }],
    });
    const profile = config.profiles[0];
    assert.match(refused(() => confinedUpstreamModel(profile, 'vertex', 'opus')), /^Profile "v" maps "opus" to "\.\.\/\.\.\/\.\.\/projects/);
    assert.equal(confinedUpstreamModel(profile, 'vertex', 'fine').id, 'claude-opus-4-1@20250805');
    // Own keys of the map only: "constructor" is a requested id, not a mapping.
    assert.equal(confinedUpstreamModel(profile, 'vertex', 'constructor').id, 'constructor');
    assert.equal(confinedUpstreamModel(profile, 'vertex', 'claude-sonnet-4-5').id, 'claude-sonnet-4-5@20250929');
  });

  it('the refusal shows a long or unprintable id shortened and escaped', () => {
    const message = refused(() => confineModelId('vertex', `\u0000${'a'.repeat(5000)}`));
    assert.ok(message.length < 400, message);
    assert.doesNotMatch(message, /\u0000/);
  });
});
