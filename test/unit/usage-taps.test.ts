import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeEventStreamMessage, EventStreamUsageTap } from '../../src/core/streams/eventstream';
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

  it('the stop reason of a non-streaming message is recorded', () => {
    const c = feed(new JsonUsageTap(), Buffer.from(JSON.stringify({ type: 'message', model: 'm', stop_reason: 'tool_use', usage: { input_tokens: 1, output_tokens: 2 } })), 7).collector;
    assert.equal(c.stopReason, 'tool_use');
  });
});

describe('usage taps on Bedrock Converse', () => {
  const usage = { inputTokens: 30, outputTokens: 9, totalTokens: 789, cacheReadInputTokens: 700, cacheWriteInputTokens: 50 };
  const counted = { input: 30, output: 9, cacheWrite5m: 50, cacheWrite1h: 0, cacheRead: 700 };

  it('a Converse answer: camelCase usage with cache reads and writes beside the input, and its stop reason', () => {
    const body = Buffer.from(JSON.stringify({ output: { message: { role: 'assistant', content: [{ text: 'hi' }] } }, stopReason: 'max_tokens', usage, metrics: { latencyMs: 5 } }));
    const c = feed(new JsonUsageTap(), body, 9).collector;
    assert.deepEqual(c.usage, counted);
    assert.equal(c.stopReason, 'max_tokens');
  });

  it('a Converse answer too large to parse whole is still priced from its tail', () => {
    const body = Buffer.from(JSON.stringify({ output: { message: { role: 'assistant', content: [{ text: 'x'.repeat(300_000) }] } }, stopReason: 'end_turn', usage }));
    const c = feed(new JsonUsageTap(100_000), body, 65_536).collector;
    assert.deepEqual(c.usage, counted);
    assert.equal(c.stopReason, 'end_turn');
  });

  const frame = (type: string, body: unknown) => encodeEventStreamMessage({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify(body));
  const stream = Buffer.concat([
    frame('messageStart', { role: 'assistant', p: 'abc' }),
    frame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'hi' }, p: 'abcdef' }),
    frame('contentBlockStop', { contentBlockIndex: 0 }),
    frame('messageStop', { stopReason: 'end_turn' }),
    frame('metadata', { usage, metrics: { latencyMs: 5 } }),
  ]);

  for (const size of [1, 13, 100_000]) {
    it(`a ConverseStream in ${size}-byte chunks: usage from the metadata event, start and stop seen`, () => {
      const c = feed(new EventStreamUsageTap(), stream, size).collector;
      assert.deepEqual(c.usage, counted);
      assert.equal(c.stopReason, 'end_turn');
      assert.equal(c.sawMessageStart, true);
      assert.equal(c.sawMessageStop, true);
      assert.equal(c.errorType, undefined);
    });
  }

  it('a ConverseStream cut before messageStop shows the start without the stop', () => {
    const cut = stream.subarray(0, stream.indexOf(Buffer.from('contentBlockStop')) - 20);
    const c = feed(new EventStreamUsageTap(), cut, 50).collector;
    assert.equal(c.sawMessageStart, true);
    assert.equal(c.sawMessageStop, false);
    assert.equal(c.errorType, 'stream_cut');
  });

  it('an exception frame in a ConverseStream is reported by type', () => {
    const exc = encodeEventStreamMessage({ ':exception-type': 'throttlingException', ':content-type': 'application/json', ':message-type': 'exception' }, JSON.stringify({ message: 'slow down' }));
    const c = feed(new EventStreamUsageTap(), Buffer.concat([frame('messageStart', { role: 'assistant' }), exc]), 64).collector;
    assert.equal(c.errorType, 'rate_limit_error');
  });
});
