// The per-call accounting code was rewritten for speed (no object spreads, string splicing in seal, counters
// tallied as numbers): these check it still says exactly what the straightforward version said.
import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { hashMatches, seal, sha256hex } from '../../src/core/accounting/audit-files';
import { GatewayMetrics } from '../../src/core/accounting/metrics';
import { settledCall, type CallInfo, type CallOutcome } from '../../src/core/gateway/call';

const call: CallInfo = {
  requestId: 'req-1',
  startedAt: 1_700_000_000_000,
  key: { id: 'dev', team: 'red' },
  project: 'web',
  sessionId: 'sess',
  profile: 'anthropic',
  provider: 'anthropic',
  route: 'unified',
  method: 'POST',
  path: '/v1/messages',
  requestedModel: 'claude-sonnet-4-5',
  upstreamModel: 'claude-sonnet-4-5-20250929',
  streaming: true,
  countTokens: false,
  requestBytes: 1234,
};
const usage = { input: 10, output: 5, cacheWrite5m: 3, cacheWrite1h: 0, cacheRead: 100 };
const outcome: CallOutcome = { status: 'ok', httpStatus: 200, upstreamStatus: 200, latencyMs: 12.5, ttfbMs: 3.25, usage, responseModel: 'claude-sonnet-4-5-20250929', stopReason: 'end_turn' };

describe('accounting hot path', () => {
  it('settledCall carries every member of the call and the outcome, as a spread would', () => {
    const s = settledCall(call, outcome, 0.5, true);
    const expected = { ...call, ...outcome, costUsd: 0.5, priceKnown: true };
    for (const [k, v] of Object.entries(expected)) assert.deepEqual((s as unknown as Record<string, unknown>)[k], v, k);
    const defined = (o: object) => Object.keys(o).filter((k) => (o as Record<string, unknown>)[k] !== undefined).sort();
    assert.deepEqual(defined(s), defined(expected));
  });

  it('seal writes the same bytes as JSON.stringify({ ...record, prev }) and the hash verifies', () => {
    const json = fc.oneof(fc.string(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), fc.constant(undefined));
    const record = fc.dictionary(
      fc.string().filter((k) => k !== 'prev' && k !== 'hash' && k !== '__proto__'),
      fc.oneof(json, fc.array(json, { maxLength: 3 }), fc.dictionary(fc.string(), json, { maxKeys: 3 })),
      { minKeys: 1, maxKeys: 8 },
    );
    fc.assert(
      fc.property(record, fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 }), (r, prev) => {
        const { line, hash } = seal(r, prev);
        const canonical = JSON.stringify({ ...r, prev });
        assert.equal(line, `${canonical.slice(0, -1)},"hash":"${sha256hex(canonical)}"}\n`);
        assert.equal(hash, sha256hex(canonical));
        assert.ok(hashMatches(JSON.parse(line)));
      }),
      { numRuns: 500 },
    );
    // An empty record, and one that already has `prev`, take the plain path and still agree.
    assert.equal(seal({}, 'p').line.startsWith('{"prev":"p","hash":"'), true);
    assert.equal(seal({ prev: 'old', a: 1 }, 'new').line.startsWith('{"prev":"new","a":1,"hash":"'), true);
  });

  it('metrics count exactly: requests, tokens by kind, cost and errors summed per label set', async () => {
    const m = new GatewayMetrics(() => []);
    const ok = settledCall(call, outcome, 0.25, true);
    m.observe(ok);
    m.observe(ok);
    m.observe(settledCall(call, { ...outcome, status: 'upstream_error', httpStatus: 529, errorType: 'overloaded_error', usage: { ...usage, output: 0 } }, 0, true));
    const text = await m.text();
    const line = (re: RegExp) => re.exec(text)?.[1];
    assert.equal(line(/ccgw_requests_total\{profile="anthropic",provider="anthropic",model="claude-sonnet-4-5-20250929",status="ok"\} (\S+)/), '2');
    assert.equal(line(/ccgw_requests_total\{[^}]*status="upstream_error"\} (\S+)/), '1');
    assert.equal(line(/ccgw_tokens_total\{profile="anthropic",model="claude-sonnet-4-5-20250929",kind="input"\} (\S+)/), '30');
    assert.equal(line(/ccgw_tokens_total\{[^}]*kind="output"\} (\S+)/), '10');
    assert.equal(line(/ccgw_tokens_total\{[^}]*kind="cache_write_5m"\} (\S+)/), '9');
    assert.equal(line(/ccgw_tokens_total\{[^}]*kind="cache_read"\} (\S+)/), '300');
    assert.doesNotMatch(text, /kind="cache_write_1h"/);
    assert.equal(line(/ccgw_cost_usd_total\{profile="anthropic",model="claude-sonnet-4-5-20250929"\} (\S+)/), '0.5');
    assert.equal(line(/ccgw_errors_total\{type="overloaded_error"\} (\S+)/), '1');
    assert.equal(line(/ccgw_upstream_latency_seconds_count\{profile="anthropic",provider="anthropic"\} (\S+)/), '3');
    // A second scrape reports the same totals (the tally is published, not drained).
    assert.equal(/ccgw_requests_total\{[^}]*status="ok"\} (\S+)/.exec(await m.text())?.[1], '2');
  });
});
