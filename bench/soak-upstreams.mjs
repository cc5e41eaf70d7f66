// Local stand-ins for the soak: Anthropic (/v1/messages, JSON and SSE), Bedrock runtime (/model/{id}/invoke and
// /invoke-with-response-stream as an AWS event stream; SigV4 is not verified), Vertex AI (…:rawPredict and
// …:streamRawPredict) and a Google STS token endpoint (/sts/v1/token) for a workload-identity credentials file.
// Prints its port on stdout.
import http from 'node:http';
import { crc32 } from 'node:zlib';

const GAP_MS = Number(process.env.STREAM_GAP_MS ?? 2);
const usage = { input_tokens: 25, output_tokens: 7, cache_creation_input_tokens: 10, cache_read_input_tokens: 100 };
const model = 'claude-sonnet-4-5-20250929';
const message = { id: 'msg_soak', type: 'message', role: 'assistant', model, content: [{ type: 'text', text: 'pong' }], stop_reason: 'end_turn', stop_sequence: null, usage };
const events = [
  { type: 'message_start', message: { ...message, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } } },
  { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
  { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'pong' } },
  { type: 'content_block_stop', index: 0 },
  { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 7 } },
  { type: 'message_stop' },
];
const sse = events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);

/** One AWS event-stream message (string headers only), as Bedrock frames its stream. */
function frame(headers, payload) {
  const parts = Object.entries(headers).map(([name, value]) => {
    const n = Buffer.from(name);
    const v = Buffer.from(value);
    const h = Buffer.alloc(4 + n.length + v.length);
    h.writeUInt8(n.length, 0);
    n.copy(h, 1);
    h.writeUInt8(7, 1 + n.length);
    h.writeUInt16BE(v.length, 2 + n.length);
    v.copy(h, 4 + n.length);
    return h;
  });
  const hbuf = Buffer.concat(parts);
  const body = Buffer.from(payload);
  const total = 12 + hbuf.length + body.length + 4;
  const out = Buffer.alloc(total);
  out.writeUInt32BE(total, 0);
  out.writeUInt32BE(hbuf.length, 4);
  out.writeUInt32BE(crc32(out.subarray(0, 8)), 8);
  hbuf.copy(out, 12);
  body.copy(out, 12 + hbuf.length);
  out.writeUInt32BE(crc32(out.subarray(0, total - 4)), total - 4);
  return out;
}
const chunks = events.map((e) => frame({ ':event-type': 'chunk', ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify({ bytes: Buffer.from(JSON.stringify(e)).toString('base64') })));
const json = JSON.stringify(message);

function stream(res, contentType, parts) {
  res.writeHead(200, { 'content-type': contentType });
  res.write(parts[0]);
  // The rest after a short gap, so first and last byte differ as in real streams.
  setTimeout(() => res.end(Buffer.concat(parts.slice(1).map((p) => Buffer.from(p)))), GAP_MS);
}

const server = http.createServer((req, res) => {
  const body = [];
  req.on('data', (c) => body.push(c));
  req.on('end', () => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/sts/v1/token') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: `ya29.soak-${Date.now()}`, expires_in: 3600, token_type: 'Bearer', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' }));
      return;
    }
    if (path.endsWith('/invoke-with-response-stream')) return stream(res, 'application/vnd.amazon.eventstream', chunks);
    if (path.endsWith(':streamRawPredict') || (path.endsWith('/v1/messages') && Buffer.concat(body).includes('"stream":true'))) return stream(res, 'text/event-stream', sse);
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
