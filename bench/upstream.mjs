// A minimal upstream for benchmarks that speaks the wire formats the gateway forwards: Anthropic Messages
// (JSON, or SSE when the body has "stream":true), Bedrock InvokeModel (JSON) and
// InvokeModelWithResponseStream (AWS event-stream frames), and Vertex rawPredict (JSON) / streamRawPredict
// (SSE), and a Google STS token endpoint (/sts/v1/token) for a workload-identity credentials file (the soak's
// Vertex profile). Streams send their first event at once and the rest after STREAM_GAP_MS, so time to first byte and
// to last byte differ as in real streams. Prints its port on stdout.
import http from 'node:http';
import { EventStreamCodec } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';

const usage = { input_tokens: 25, output_tokens: 7, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
const message = { id: 'msg_bench', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5', content: [{ type: 'text', text: 'pong' }], stop_reason: 'end_turn', stop_sequence: null, usage };
const json = JSON.stringify(message);
const events = [
  { type: 'message_start', message: { ...message, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } } },
  { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
  { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'pong' } },
  { type: 'content_block_stop', index: 0 },
  { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 7 } },
  { type: 'message_stop' },
];
const sse = events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
const codec = new EventStreamCodec(toUtf8, fromUtf8);
const frames = events.map((e) =>
  Buffer.from(
    codec.encode({
      headers: {
        ':event-type': { type: 'string', value: 'chunk' },
        ':content-type': { type: 'string', value: 'application/json' },
        ':message-type': { type: 'string', value: 'event' },
      },
      body: fromUtf8(JSON.stringify({ bytes: Buffer.from(JSON.stringify(e)).toString('base64') })),
    }),
  ),
);
const STREAM_GAP_MS = Number(process.env.STREAM_GAP_MS ?? 2);

function stream(res, contentType, parts) {
  res.writeHead(200, { 'content-type': contentType });
  res.write(parts[0]);
  setTimeout(() => res.end(Buffer.concat(parts.slice(1).map((p) => Buffer.from(p)))), STREAM_GAP_MS);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/sts/v1/token') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: `ya29.bench-${Date.now()}`, expires_in: 3600, token_type: 'Bearer', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' }));
      return;
    }
    if (path.endsWith('/invoke-with-response-stream')) return stream(res, 'application/vnd.amazon.eventstream', frames);
    if (path.endsWith(':streamRawPredict')) return stream(res, 'text/event-stream', sse);
    if (path.endsWith('/v1/messages') && Buffer.concat(chunks).includes('"stream":true')) return stream(res, 'text/event-stream', sse);
    if (path.endsWith('/invoke') || path.endsWith(':rawPredict') || path.endsWith('/v1/messages')) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
      res.end(json);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: `no ${path}` } }));
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
