// A small local upstream speaking Anthropic's Messages wire format (JSON and SSE with pings), for the
// in-host suite and the UI script (test/helpers/mock-anthropic.ts is the full one the integration tests use).
// CommonJS so the extension host can require() it and the .mjs UI script can import it.
'use strict';

const http = require('http');

const USAGE = { input_tokens: 1200, output_tokens: 300, cache_creation_input_tokens: 0, cache_read_input_tokens: 5000 };

/** Starts the mock on 127.0.0.1:<port or 0>; resolves { url, requests, close(), hold, release() }. */
function startMockAnthropic(opts = {}) {
  const state = { requests: [], holds: [], hold: false };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body = {};
      try {
        body = text ? JSON.parse(text) : {};
      } catch {}
      state.requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      const path = (req.url || '').split('?')[0];
      if (opts.apiKey && req.headers['x-api-key'] !== opts.apiKey) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } }));
        return;
      }
      if (path.endsWith('/v1/messages/count_tokens')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ input_tokens: 42 }));
      }
      if (path.endsWith('/v1/models')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ data: [{ type: 'model', id: 'claude-sonnet-4-5-20250929', display_name: 'Claude Sonnet 4.5' }], has_more: false }));
      }
      if (!path.endsWith('/v1/messages')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: `mock has no ${path}` } }));
      }
      const model = typeof body.model === 'string' ? body.model : 'claude-sonnet-4-5-20250929';
      const reply = opts.replyText || 'pong';
      if (body.stream !== true) {
        res.writeHead(200, { 'content-type': 'application/json', 'request-id': 'req_mock_json' });
        return res.end(JSON.stringify({ id: 'msg_mock', type: 'message', role: 'assistant', model, content: [{ type: 'text', text: reply }], stop_reason: 'end_turn', stop_sequence: null, usage: USAGE }));
      }
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': 'req_mock_sse' });
      const send = (event, data) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      send('message_start', { type: 'message_start', message: { id: 'msg_mock_sse', type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { ...USAGE, output_tokens: 1 } } });
      if (state.hold) await new Promise((r) => state.holds.push(r));
      send('ping', { type: 'ping' });
      send('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
      send('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: reply } });
      send('content_block_stop', { type: 'content_block_stop', index: 0 });
      send('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: USAGE.output_tokens } });
      send('message_stop', { type: 'message_stop' });
      res.end();
    });
  });
  return new Promise((resolve) => {
    server.listen(opts.port || 0, '127.0.0.1', () => {
      const port = server.address().port;
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        requests: state.requests,
        /** Streams stop after message_start until release(). */
        set hold(v) {
          state.hold = v;
        },
        release() {
          const h = state.holds.splice(0);
          h.forEach((f) => f());
        },
        close() {
          state.holds.splice(0).forEach((f) => f());
          server.closeAllConnections();
          return new Promise((r) => server.close(() => r()));
        },
      });
    });
  });
}

module.exports = { startMockAnthropic, USAGE };
