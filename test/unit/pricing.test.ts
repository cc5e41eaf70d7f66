import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { costOf, modelCandidates, PriceTable } from '../../src/core/accounting/pricing';
import table from '../../src/core/accounting/prices.json';

describe('pricing', () => {
  const prices = new PriceTable();

  it('list prices per family, cache writes at 1.25x/2x input and reads at 0.1x', () => {
    const expect: Record<string, [number, number]> = {
      'opus-4': [15, 75],
      'opus-4.5': [5, 25],
      'opus-5': [5, 25],
      'sonnet-4': [3, 15],
      'sonnet-5': [2, 10],
      'haiku-4.5': [1, 5],
      'haiku-3.5': [0.8, 4],
    };
    for (const [family, [input, output]] of Object.entries(expect)) {
      const p = prices.price(family);
      assert.deepEqual([p.input, p.output], [input, output], family);
    }
    // Haiku 3 is the one family whose list cache prices do not follow the multipliers ($0.30 and $0.03).
    for (const [family, p] of Object.entries(table.families).filter(([f]) => f !== 'haiku-3')) {
      assert.ok(Math.abs(p.cacheWrite5m - p.input * 1.25) < 1e-9, `${family} 5m`);
      assert.ok(Math.abs(p.cacheWrite1h - p.input * 2) < 1e-9, `${family} 1h`);
      assert.ok(Math.abs(p.cacheRead - p.input * 0.1) < 1e-9, `${family} read`);
    }
  });

  it('maps every provider spelling of a model to its family', () => {
    const cases: Array<[string, string]> = [
      ['claude-opus-4-8', 'opus-4.5'],
      ['us.anthropic.claude-opus-4-8', 'opus-4.5'],
      ['claude-opus-4-6[1m]', 'opus-4.5'],
      ['us.anthropic.claude-opus-4-6-v1', 'opus-4.5'],
      ['global.anthropic.claude-opus-4-5-20251101-v1:0', 'opus-4.5'],
      ['claude-opus-4-1@20250805', 'opus-4'],
      ['eu.anthropic.claude-opus-4-20250514-v1:0', 'opus-4'],
      ['claude-sonnet-4-5@20250929', 'sonnet-4'],
      ['apac.anthropic.claude-sonnet-4-20250514-v1:0', 'sonnet-4'],
      ['us.anthropic.claude-sonnet-4-5-20250929-v1:0', 'sonnet-4'],
      ['arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6', 'sonnet-4'],
      ['projects/p/locations/global/publishers/anthropic/models/claude-sonnet-4-6:streamRawPredict', 'sonnet-4'],
      ['claude-sonnet-5', 'sonnet-5'],
      ['claude-sonnet-5-20260301', 'sonnet-5'],
      ['claude-opus-5-1', 'opus-5'],
      ['claude-haiku-4-5@20251001', 'haiku-4.5'],
      ['us.anthropic.claude-haiku-4-5-20251001-v1:0', 'haiku-4.5'],
      ['claude-3-5-haiku-latest', 'haiku-3.5'],
      ['us.anthropic.claude-3-5-haiku-20241022-v1:0', 'haiku-3.5'],
      ['claude-3-7-sonnet@20250219', 'sonnet-3'],
      ['CLAUDE-OPUS-4-7', 'opus-4.5'],
      ['us.anthropic.claude-fable-5', 'fable-5'],
    ];
    for (const [id, family] of cases) assert.deepEqual(prices.familyOf(id), { family, known: true }, `${id} (${modelCandidates(id).join(' | ')})`);
  });

  it('knows every model id the installed Claude Code uses by default (first party, Bedrock, Vertex)', function () {
    const bin = path.join(__dirname, '../../node_modules/@anthropic-ai/claude-code/bin/claude.exe');
    if (!fs.existsSync(bin)) this.skip();
    const text = execFileSync('strings', [bin], { maxBuffer: 1 << 30 }).toString('utf8');
    const ids = new Set<string>();
    for (const m of text.matchAll(/provider_ids:\{([^}]*)\}/g)) for (const v of m[1].matchAll(/:"([^"]+)"/g)) ids.add(v[1]);
    assert.ok(ids.size > 20, `found ${ids.size} ids`);
    const unknown = [...ids].filter((id) => !prices.familyOf(id).known);
    assert.deepEqual(unknown, []);
  });

  it('an unknown model is priced at the most expensive family and flagged, never $0', () => {
    const u = { input: 1000, output: 1000, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0 };
    const priced = prices.cost(u, 'my-gw-model');
    assert.equal(priced.priceKnown, false);
    assert.equal(priced.family, prices.fallbackFamily);
    const max = Math.max(...Object.values(table.families).map((p) => costOf({ ...p }, u)));
    assert.equal(priced.usd, max);
    assert.ok(priced.usd > 0);
    assert.equal(prices.cost(u).priceKnown, false);
  });

  it('prefers the first known id: response model, then upstream, then requested', () => {
    const u = { input: 1_000_000, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0 };
    assert.equal(prices.cost(u, undefined, 'claude-haiku-4-5', 'claude-opus-4-8').usd, 1);
    assert.equal(prices.cost(u, 'my-alias', 'claude-sonnet-4-6').usd, 3);
  });

  it('exact cost of a call with every token kind', () => {
    const u = { input: 25, output: 7, cacheWrite5m: 60, cacheWrite1h: 40, cacheRead: 2000 };
    // Opus 4.8: 25*5 + 7*25 + 60*6.25 + 40*10 + 2000*0.5 = 2075 per million.
    assert.ok(Math.abs(prices.cost(u, 'claude-opus-4-8').usd - 0.002075) < 1e-12);
  });

  it('config prices override a family, add one with its models, or price a single model id', () => {
    const custom = new PriceTable({
      'sonnet-4': { input: 4, output: 20 },
      'in-house': { input: 1, output: 2, models: ['acme-coder-1'] },
      'my-gw-model': { input: 0.5, output: 1, cacheRead: 0 },
    });
    assert.deepEqual(custom.price('sonnet-4'), { input: 4, output: 20, cacheWrite5m: 5, cacheWrite1h: 8, cacheRead: 0.4 });
    assert.deepEqual(custom.familyOf('acme-coder-1'), { family: 'in-house', known: true });
    assert.deepEqual(custom.familyOf('my-gw-model'), { family: 'my-gw-model', known: true });
    assert.equal(custom.price('my-gw-model').cacheRead, 0);
  });
});
