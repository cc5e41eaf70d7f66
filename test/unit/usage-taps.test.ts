import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { JsonUsageTap, SseUsageTap, tapFor, type UsageTap } from '../../src/core/streams/usage';

const fixture = (name: string) => fs.readFileSync(path.join(__dirname, 'fixtures', name));

/** Feeds a body to a tap in chunks of `size` bytes (1 splits every multi-byte character). */
function feed(tap: UsageTap, body: Buffer, size: number): UsageTap {
  for (let i = 0; i < body.length; i += size) tap.write(body.subarray(i, i + size));
  tap.end();
  return tap;
}

describe('usage taps on captured responses', () => {
  const sse = fixture('sse-cache-split.txt');

  for (const size of [1, 7, 64, 100_000]) {
    it(`SSE with a 5m/1h cache split, in ${size}-byte chunks: the last cumulative message_delta wins, nothing is summed`, () => {
      const c = feed(new SseUsageTap(), sse, size).collector;
      assert.deepEqual(c.usage, { input: 12, output: 157, cacheWrite5m: 1200, cacheWrite1h: 2261, cacheRead: 18234 });
      assert.equal(c.model, 'claude-opus-4-8');
      assert.equal(c.stopReason, 'end_turn');
      assert.ok(c.sawMessageStart && c.sawMessageStop);
    });
  }

  it('SSE with CRLF line endings reads the same', () => {
    const crlf = Buffer.from(sse.toString('utf8').replace(/\n/g, '\r\n'));
    assert.deepEqual(feed(new SseUsageTap(), crlf, 13).collector.usage, { input: 12, output: 157, cacheWrite5m: 1200, cacheWrite1h: 2261, cacheRead: 18234 });
  });

  it('a cut stream keeps the usage seen so far and shows no message_stop', () => {
    const c = feed(new SseUsageTap(), fixture('sse-cut.txt'), 50).collector;
    assert.deepEqual(c.usage, { input: 2048, output: 1, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 512 });
    assert.equal(c.model, 'claude-sonnet-4-5-20250929');
    assert.ok(c.sawMessageStart);
    assert.ok(!c.sawMessageStop);
  });

  it('an error event mid-stream is reported by type', () => {
    const c = feed(new SseUsageTap(), fixture('sse-error.txt'), 9).collector;
    assert.equal(c.errorType, 'overloaded_error');
    assert.equal(c.usage.input, 40);
  });

  it('non-streaming JSON: usage with a 1-hour cache write', () => {
    const tap = tapFor('application/json');
    assert.ok(tap instanceof JsonUsageTap);
    const c = feed(tap, fixture('json-message.json'), 33).collector;
    assert.deepEqual(c.usage, { input: 310, output: 4, cacheWrite5m: 0, cacheWrite1h: 1500, cacheRead: 0 });
    assert.equal(c.model, 'claude-haiku-4-5-20251001');
  });

  it('without the split, cache writes count as 5-minute writes; a partial split puts the rest there too', () => {
    const plain = feed(new JsonUsageTap(), Buffer.from(JSON.stringify({ type: 'message', model: 'm', usage: { input_tokens: 1, output_tokens: 2, cache_creation_input_tokens: 300 } })), 5);
    assert.deepEqual(plain.collector.usage, { input: 1, output: 2, cacheWrite5m: 300, cacheWrite1h: 0, cacheRead: 0 });
    const partial = feed(
      new JsonUsageTap(),
      Buffer.from(JSON.stringify({ type: 'message', usage: { input_tokens: 1, output_tokens: 2, cache_creation_input_tokens: 300, cache_creation: { ephemeral_1h_input_tokens: 100 } } })),
      1000,
    );
    assert.deepEqual(partial.collector.usage, { input: 1, output: 2, cacheWrite5m: 200, cacheWrite1h: 100, cacheRead: 0 });
  });

  it('a JSON error body and a non-JSON body count nothing', () => {
    const err = feed(new JsonUsageTap(), Buffer.from('{"type":"error","error":{"type":"rate_limit_error","message":"x"}}'), 4).collector;
    assert.equal(err.errorType, 'rate_limit_error');
    assert.deepEqual(feed(new JsonUsageTap(), Buffer.from('<html>bad gateway</html>'), 4).collector.usage, { input: 0, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0 });
  });
});
