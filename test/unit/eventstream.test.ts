import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { EventStreamCodec } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';
import { CallAbort, type UpstreamResponse } from '../../src/core/gateway/forward';
import { bedrockChunk, encodeEventStreamMessage, EventStreamDecoder, EventStreamError, EventStreamUsageTap, pipeBedrockAsSse } from '../../src/core/streams/eventstream';

const start = { type: 'message_start', message: { model: 'claude-sonnet-4-5', usage: { input_tokens: 11, output_tokens: 1, cache_read_input_tokens: 5 } } };
const delta = { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 4 } };

describe('AWS event-stream decoding', () => {
  it('agrees with the AWS SDK codec in both directions', () => {
    const codec = new EventStreamCodec(toUtf8, fromUtf8);
    const ours = bedrockChunk(start);
    const decoded = codec.decode(ours);
    assert.equal(decoded.headers[':event-type'].value, 'chunk');
    const theirs = codec.encode({ headers: { ':message-type': { type: 'string', value: 'event' }, flag: { type: 'boolean', value: true }, n: { type: 'integer', value: 7 } }, body: fromUtf8('{"bytes":"e30="}') });
    const [m] = new EventStreamDecoder().push(Buffer.from(theirs));
    assert.deepEqual(m.headers, { ':message-type': 'event', flag: true, n: 7 });
    assert.equal(m.payload.toString(), '{"bytes":"e30="}');
  });

  it('decodes frames split at every byte boundary, and reports a cut mid-frame', () => {
    const all = Buffer.concat([bedrockChunk(start), bedrockChunk(delta)]);
    for (let cut = 1; cut < all.length; cut += 3) {
      const d = new EventStreamDecoder();
      const n = d.push(all.subarray(0, cut)).length + d.push(all.subarray(cut)).length;
      assert.equal(n, 2);
      assert.equal(d.pending, 0);
    }
    const d = new EventStreamDecoder();
    d.push(all.subarray(0, all.length - 5));
    assert.ok(d.pending > 0);
  });

  it('rejects a corrupted frame by its CRC', () => {
    const frame = bedrockChunk(start);
    frame[frame.length - 10] ^= 0xff;
    assert.throws(() => new EventStreamDecoder().push(frame), EventStreamError);
  });

  it('the usage tap reads chunks and exception frames', () => {
    const tap = new EventStreamUsageTap();
    const exc = encodeEventStreamMessage({ ':message-type': 'exception', ':exception-type': 'modelStreamErrorException' }, '{"message":"boom"}');
    const bytes = Buffer.concat([bedrockChunk(start), bedrockChunk(delta), exc]);
    for (let i = 0; i < bytes.length; i += 5) tap.write(bytes.subarray(i, i + 5));
    tap.end();
    assert.deepEqual([tap.collector.usage.input, tap.collector.usage.output, tap.collector.usage.cacheRead], [11, 4, 5]);
    assert.equal(tap.collector.errorType, 'api_error');
  });
});

describe('Bedrock event stream → Anthropic SSE', () => {
  it('re-emits events as SSE and sends pings during silent gaps', async () => {
    const body = new PassThrough();
    const server = http.createServer((_req, res) => {
      const upstream = { status: 200, headers: {}, body, headersMs: 0 } as unknown as UpstreamResponse;
      void pipeBedrockAsSse(res, upstream, new CallAbort(), {}, 40);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    body.write(bedrockChunk(start));
    setTimeout(() => body.end(Buffer.concat([bedrockChunk(delta), bedrockChunk({ type: 'message_stop' })])), 150);
    const text = await res.text();
    server.close();
    const events = [...text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
    assert.equal(events[0], 'message_start');
    assert.ok(events.filter((e) => e === 'ping').length >= 2, `pings in the gap: ${events.join(',')}`);
    assert.deepEqual(events.filter((e) => e !== 'ping'), ['message_start', 'message_delta', 'message_stop']);
  });
});
