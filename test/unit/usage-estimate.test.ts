// Calls that end before their final usage are charged what they visibly cost; other Bedrock families' token counts
// are read from headers and invocation metrics; reservations are the most a call can cost.
import * as assert from 'node:assert/strict';
import { bedrockChunk, encodeEventStreamMessage, EventStreamUsageTap } from '../../src/core/streams/eventstream';
import { deltaOutputBytes, ESTIMATE_BYTES_PER_TOKEN, JsonUsageTap, SseUsageTap, UsageCollector, type UsageTap } from '../../src/core/streams/usage';
import { DEFAULT_RESERVED_OUTPUT, MAX_RESERVED_OUTPUT, MIN_RESERVED_INPUT, PriceTable, reservationUsd } from '../../src/core/accounting/pricing';

function feed(tap: UsageTap, body: Buffer, size: number): UsageTap {
  for (let i = 0; i < body.length; i += size) tap.write(body.subarray(i, i + size));
  tap.end();
  return tap;
}

const sse = (events: unknown[]) => Buffer.from(events.map((e) => `event: ${(e as { type: string }).type}\ndata: ${JSON.stringify(e)}\n\n`).join(''));
const start = { type: 'message_start', message: { model: 'claude-sonnet-4-5', usage: { input_tokens: 120, output_tokens: 1 } } };
const text = (t: string) => ({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } });

/** A random string with quotes, backslashes, control characters, non-ASCII and astral characters. */
function randomString(rnd: () => number): string {
  const alphabet = ['a', 'Z', ' ', '"', '\\', '\n', '\t', '\u0001', 'é', '中', '😀', '/', '}', ',', ':', 'text', '"text":"', '\\"'];
  let s = '';
  const n = Math.floor(rnd() * 30);
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(rnd() * alphabet.length)];
  return s;
}

/** JSON with random whitespace between tokens (never a newline: a data line holds one event). */
function looseJson(v: unknown, rnd: () => number): string {
  const ws = () => [' ', '', '\t', '  '][Math.floor(rnd() * 4)];
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>);
    if (rnd() < 0.5) entries.reverse();
    return `{${ws()}${entries.map(([k, x]) => `${JSON.stringify(k)}${ws()}:${ws()}${looseJson(x, rnd)}`).join(`${ws()},${ws()}`)}${ws()}}`;
  }
  return JSON.stringify(v);
}

function seeded(seed: number): () => number {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

describe('output estimate for calls that end before their final usage', () => {
  it('deltaOutputBytes agrees with JSON.parse on generated delta lines (key order, whitespace, escapes, non-ASCII)', () => {
    const rnd = seeded(11);
    const kinds = [
      ['text_delta', 'text'],
      ['thinking_delta', 'thinking'],
      ['input_json_delta', 'partial_json'],
    ];
    for (let i = 0; i < 5000; i++) {
      const [type, member] = kinds[i % 3];
      const value = randomString(rnd);
      const line = `data: ${looseJson({ type: 'content_block_delta', index: i % 4, delta: { type, [member]: value } }, rnd)}`;
      const parsed = JSON.parse(line.slice(6)) as { delta: Record<string, string> };
      assert.equal(parsed.delta[member], value);
      // The bytes of the value as escaped on the wire: at least its own UTF-8 bytes.
      assert.equal(deltaOutputBytes(line), Buffer.byteLength(JSON.stringify(value).slice(1, -1)), line);
    }
  });

  it('signature and citation deltas carry no generated output', () => {
    assert.equal(deltaOutputBytes(`data: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'EqQBCkgIARABGAIiQL' } })}`), 0);
    const citation = { type: 'citations_delta', citation: { type: 'char_location', cited_text: 'the whole quoted passage', document_index: 0 } };
    assert.equal(deltaOutputBytes(`data: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: citation })}`), 0);
  });

  for (const size of [1, 5, 64, 100_000]) {
    it(`SSE cut after content_block_stop (${size}-byte chunks): text, thinking and tool input counted at ${ESTIMATE_BYTES_PER_TOKEN} bytes per token`, () => {
      const body = sse([
        start,
        { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } },
        { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'ab"c' } },
        { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'x'.repeat(300) } },
        text('中文 text'),
        { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"path": "/tmp"}' } },
        { type: 'content_block_stop', index: 1 },
      ]);
      const c = feed(new SseUsageTap(), body, size).collector;
      const bytes = Buffer.byteLength('ab\\"c') + Buffer.byteLength('中文 text') + Buffer.byteLength('{\\"path\\": \\"/tmp\\"}');
      assert.equal(c.outputBytes, bytes);
      assert.equal(c.finalUsage, false);
      assert.equal(c.finish({}, true, false), true, 'estimated');
      assert.deepEqual(c.usage, { input: 120, output: Math.ceil(bytes / 3), cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0 });
    });
  }

  it("another upstream's spelling of the events (keys reordered, spaces, no space after data:) reads the same", () => {
    const rnd = seeded(5);
    const events = [start, text('abc "q" 中'), { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"a":' } }, { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 9 } }];
    const loose = Buffer.from(events.map((e, i) => `event: x\ndata:${i % 2 ? ' ' : ''}${looseJson(e, rnd)}\n\n`).join(''));
    const a = feed(new SseUsageTap(), sse(events), 7).collector;
    const b = feed(new SseUsageTap(), loose, 7).collector;
    assert.equal(b.outputBytes, a.outputBytes);
    assert.ok(a.outputBytes > 0);
    assert.deepEqual(b.usage, a.usage);
    assert.equal(b.finalUsage, true);
  });

  it('a complete stream is not estimated, and the reported usage stands even when it is below the estimate', () => {
    const c = feed(new SseUsageTap(), sse([start, text('x'.repeat(3000)), { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 500 } }, { type: 'message_stop' }]), 77).collector;
    assert.equal(c.finalUsage, true);
    assert.equal(c.finish({}, true, true), false);
    assert.equal(c.usage.output, 500);
  });

  it('the reported output stands when it is above the estimate (hidden thinking)', () => {
    const c = new UsageCollector();
    c.onEvent({ type: 'message_start', message: { usage: { input_tokens: 3, output_tokens: 900 } } });
    c.onEvent(text('hi'));
    assert.equal(c.finish({}, true, false), true);
    assert.equal(c.usage.output, 900);
  });

  it('a delta line longer than the tap holds is still counted whole', () => {
    const big = 'y'.repeat(3 << 20);
    const c = feed(new SseUsageTap(), sse([start, text(big), text('z')]), 256 << 10).collector;
    // The tail of a dropped line is counted up to its newline, the closing `"}}` with it.
    assert.ok(c.outputBytes >= big.length + 1 && c.outputBytes <= big.length + 1 + 3, String(c.outputBytes));
  });

  it('a non-streaming body cut short is estimated from its bytes; a complete body without usage is not', () => {
    const partial = Buffer.from('{"id":"msg_1","type":"message","content":[{"type":"text","text":"' + 'w'.repeat(600));
    const cut = feed(new JsonUsageTap(), partial, 100).collector;
    assert.equal(cut.finish({}, false, false), true);
    assert.equal(cut.usage.output, Math.ceil(partial.length / 3));
    const models = feed(new JsonUsageTap(), Buffer.from('{"data":[]}'), 100).collector;
    assert.equal(models.finish({}, false, true), false);
    assert.equal(models.usage.output, 0);
  });

  it('Bedrock event stream (base64 Anthropic chunks) cut before message_delta: output estimated from the chunks', () => {
    const frames = Buffer.concat([bedrockChunk(start), bedrockChunk(text('0123456789'.repeat(30))), bedrockChunk({ type: 'content_block_stop', index: 0 })]);
    const c = feed(new EventStreamUsageTap(), frames, 13).collector;
    assert.equal(c.finish({}, true, false), true);
    assert.equal(c.usage.output, 100);
    assert.equal(c.usage.input, 120);
  });

  it('ConverseStream cut before metadata: contentBlockDelta text, tool input and reasoning counted', () => {
    const frame = (type: string, body: unknown) => encodeEventStreamMessage({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify(body));
    const frames = Buffer.concat([
      frame('messageStart', { role: 'assistant' }),
      frame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'a'.repeat(30) } }),
      frame('contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '{"q":1}' } } }),
      frame('contentBlockDelta', { contentBlockIndex: 2, delta: { reasoningContent: { text: 'b'.repeat(20) } } }),
    ]);
    const c = feed(new EventStreamUsageTap(), frames, 17).collector;
    assert.equal(c.outputBytes, 57);
    assert.equal(c.finish({}, true, false, 3000), true);
    assert.equal(c.usage.output, 19);
    // No input was reported before the cut: the request body's size stands for it.
    assert.equal(c.usage.input, 1000);
  });
});

describe('Bedrock token counts for every model family', () => {
  it('InvokeModel headers give the usage when the body has none (Llama)', () => {
    const tap = feed(new JsonUsageTap(), Buffer.from(JSON.stringify({ generation: 'Hello', prompt_token_count: 10, generation_token_count: 20, stop_reason: 'stop' })), 8);
    const estimated = tap.collector.finish({ 'x-amzn-bedrock-input-token-count': '1200', 'x-amzn-bedrock-output-token-count': '345' }, false, true);
    assert.equal(estimated, false);
    assert.deepEqual(tap.collector.usage, { input: 1200, output: 345, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0 });
  });

  it("the body's own usage (Claude) wins over the headers", () => {
    const tap = feed(new JsonUsageTap(), Buffer.from(JSON.stringify({ type: 'message', usage: { input_tokens: 5, output_tokens: 6, cache_read_input_tokens: 700 } })), 8);
    tap.collector.finish({ 'x-amzn-bedrock-input-token-count': '705', 'x-amzn-bedrock-output-token-count': '6' }, false, true);
    assert.deepEqual(tap.collector.usage, { input: 5, output: 6, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 700 });
  });

  it('InvokeModelWithResponseStream (Llama): amazon-bedrock-invocationMetrics in the last chunk; output counted before it', () => {
    const chunk = (event: unknown) => bedrockChunk(event);
    const c = feed(
      new EventStreamUsageTap(),
      Buffer.concat([
        chunk({ generation: 'Hel', prompt_token_count: 12, generation_token_count: 1, stop_reason: null }),
        chunk({ generation: 'lo', prompt_token_count: null, generation_token_count: 2, stop_reason: 'stop', 'amazon-bedrock-invocationMetrics': { inputTokenCount: 12, outputTokenCount: 2 } }),
      ]),
      11,
    ).collector;
    assert.equal(c.outputBytes, 5);
    assert.equal(c.finish({}, true, true), false);
    assert.deepEqual(c.usage, { input: 12, output: 2, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0 });
  });

  it('a Llama stream cut before its metrics is estimated from the generated text', () => {
    const c = feed(new EventStreamUsageTap(), bedrockChunk({ generation: 'x'.repeat(90) }), 11).collector;
    assert.equal(c.finish({}, true, false), true);
    assert.equal(c.usage.output, 30);
  });

  it('an unknown model is priced at the most expensive family, never $0', () => {
    const prices = new PriceTable();
    const priced = prices.cost({ input: 1000, output: 1000, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0 }, 'meta.llama3-1-70b-instruct-v1:0');
    assert.equal(priced.priceKnown, false);
    const top = Math.max(...['opus-fast', 'opus-4', 'sonnet-4', 'haiku-4.5'].map((f) => prices.price(f).input + prices.price(f).output));
    assert.equal(prices.price(priced.family).input + prices.price(priced.family).output, top);
    assert.ok(priced.usd > 0);
  });
});

describe('budget reservations: the most a call can cost', () => {
  const sonnet = new PriceTable().price('sonnet-4');

  it('max_tokens at the output price plus the body at 3 bytes per input token', () => {
    assert.equal(reservationUsd(sonnet, 4000, 30_000), (10_000 * 3 + 4000 * 15) / 1e6);
  });

  it(`at least ${MIN_RESERVED_INPUT} input tokens; without max_tokens a body reserves ${DEFAULT_RESERVED_OUTPUT} output tokens; no body, no output`, () => {
    assert.equal(reservationUsd(sonnet, 16, 300), (MIN_RESERVED_INPUT * 3 + 16 * 15) / 1e6);
    assert.equal(reservationUsd(sonnet, undefined, 300), (MIN_RESERVED_INPUT * 3 + DEFAULT_RESERVED_OUTPUT * 15) / 1e6);
    assert.equal(reservationUsd(sonnet, undefined, 0), (MIN_RESERVED_INPUT * 3) / 1e6);
  });

  it(`an absurd max_tokens is reserved at ${MAX_RESERVED_OUTPUT}; a nonsensical one at the default`, () => {
    assert.equal(reservationUsd(sonnet, 1e12, 0), (MIN_RESERVED_INPUT * 3 + MAX_RESERVED_OUTPUT * 15) / 1e6);
    assert.equal(reservationUsd(sonnet, Number.NaN, 3), (MIN_RESERVED_INPUT * 3 + DEFAULT_RESERVED_OUTPUT * 15) / 1e6);
    assert.equal(reservationUsd(sonnet, -5, 3), (MIN_RESERVED_INPUT * 3 + DEFAULT_RESERVED_OUTPUT * 15) / 1e6);
  });
});
