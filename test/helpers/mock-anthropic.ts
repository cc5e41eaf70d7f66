import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the mock upstream received it. */
export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json?: Record<string, unknown>;
}

/** A canned answer for the next request(s): an error, or a stream fault. */
export interface ScriptedReply {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** For streams: stop after message_start and wait for `release()` before continuing. */
  holdAfterStart?: boolean;
  /** For streams: destroy the socket once the headers and message_start have been flushed (a mid-stream cut). */
  cutAfterStart?: boolean;
  /** For streams: after message_start, send one event every this many ms (`replyText` split in 8 deltas): a slow stream. */
  eventGapMs?: number;
  /** Wait this long before answering at all (slow headers). */
  delayMs?: number;
}

export interface MockUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
  cache_creation?: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number };
}

/**
 * A local server speaking Anthropic's Messages API wire format: SSE streams (with `ping`s), JSON, errors,
 * count_tokens and models. It records every request so tests can check what reached the upstream.
 */
export class MockAnthropic {
  readonly requests: RecordedRequest[] = [];
  readonly script: ScriptedReply[] = [];
  replyText = 'pong';
  usage: MockUsage = {
    input_tokens: 25,
    output_tokens: 7,
    cache_creation_input_tokens: 100,
    cache_read_input_tokens: 2000,
    cache_creation: { ephemeral_5m_input_tokens: 60, ephemeral_1h_input_tokens: 40 },
  };
  /** Streams whose connection closed before the stream ended (the gateway aborted them, or a scripted cut). */
  abortedStreams = 0;
  /** When set, requests without this exact x-api-key get a 401. */
  requireApiKey?: string;
  /** When set, requests without `Authorization: Bearer <this>` get a 401. */
  requireBearer?: string;
  private server?: http.Server;
  private holds: Array<() => void> = [];
  private waiters: Array<() => void> = [];

  get url(): string {
    const a = this.server!.address() as AddressInfo;
    return `http://127.0.0.1:${a.port}`;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return this;
  }

  async stop(): Promise<void> {
    this.holds.forEach((h) => h());
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }

  /** Lets held streams finish. */
  release(): void {
    const h = this.holds;
    this.holds = [];
    h.forEach((f) => f());
  }

  /** Resolves when a stream is being held after message_start. */
  waitForHold(): Promise<void> {
    if (this.holds.length) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  get last(): RecordedRequest | undefined {
    return this.requests[this.requests.length - 1];
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let json: Record<string, unknown> | undefined;
      try {
        json = body.length ? JSON.parse(body.toString('utf8')) : undefined;
      } catch {
        json = undefined;
      }
      this.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, json });
      void this.respond(req, res, json);
    });
  }

  private async respond(req: http.IncomingMessage, res: http.ServerResponse, json: Record<string, unknown> | undefined): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (this.requireApiKey !== undefined && req.headers['x-api-key'] !== this.requireApiKey) {
      return this.error(res, 401, 'authentication_error', 'invalid x-api-key');
    }
    if (this.requireBearer !== undefined && req.headers.authorization !== `Bearer ${this.requireBearer}`) {
      return this.error(res, 401, 'authentication_error', 'invalid bearer token');
    }
    const scripted = this.script.shift();
    if (scripted?.delayMs) await new Promise((r) => setTimeout(r, scripted.delayMs));
    if (scripted?.status && scripted.status >= 400) {
      res.writeHead(scripted.status, { 'content-type': 'application/json', 'request-id': 'req_mock_error', ...scripted.headers });
      res.end(scripted.body ?? JSON.stringify({ type: 'error', error: { type: 'api_error', message: `scripted ${scripted.status}` } }));
      return;
    }
    if (path.endsWith('/v1/messages/count_tokens')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ input_tokens: 42 }));
      return;
    }
    if (path.endsWith('/v1/models')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ data: [{ type: 'model', id: 'claude-sonnet-4-5-20250929', display_name: 'Claude Sonnet 4.5' }], has_more: false }));
      return;
    }
    if (!path.endsWith('/v1/messages')) return this.error(res, 404, 'not_found_error', `mock has no ${path}`);
    const model = typeof json?.model === 'string' ? json.model : 'claude-sonnet-4-5-20250929';
    if (json?.stream === true) return this.stream(res, model, scripted);
    res.writeHead(200, { 'content-type': 'application/json', 'request-id': 'req_mock_json' });
    res.end(
      JSON.stringify({
        id: 'msg_mock_json',
        type: 'message',
        role: 'assistant',
        model,
        content: [{ type: 'text', text: this.replyText }],
        stop_reason: 'end_turn',
        stop_sequence: null,
        usage: this.usage,
      }),
    );
  }

  private async stream(res: http.ServerResponse, model: string, scripted?: ScriptedReply): Promise<void> {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': 'req_mock_sse' });
    res.on('close', () => {
      if (!res.writableFinished) this.abortedStreams++;
    });
    const send = (event: string, data: unknown, flushed?: () => void) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`, flushed);
    const { output_tokens: _out, ...startUsage } = this.usage;
    const start = {
      type: 'message_start',
      message: { id: 'msg_mock_sse', type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { ...startUsage, output_tokens: 1 } },
    };
    if (scripted?.cutAfterStart) {
      // Destroyed only once the headers and message_start are on the wire: the client sees a stream that started, then a cut.
      const socket = res.socket;
      send('message_start', start, () => socket?.destroy());
      return;
    }
    send('message_start', start);
    if (scripted?.holdAfterStart) {
      await new Promise<void>((r) => {
        this.holds.push(r);
        const w = this.waiters;
        this.waiters = [];
        w.forEach((f) => f());
      });
    }
    send('ping', { type: 'ping' });
    send('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
    if (scripted?.eventGapMs) {
      const step = Math.max(1, Math.ceil(this.replyText.length / 8));
      for (let i = 0; i < this.replyText.length; i += step) {
        await new Promise((r) => setTimeout(r, scripted.eventGapMs));
        if (res.destroyed) return;
        send('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: this.replyText.slice(i, i + step) } });
      }
      send('content_block_stop', { type: 'content_block_stop', index: 0 });
      send('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: this.usage.output_tokens } });
      send('message_stop', { type: 'message_stop' });
      res.end();
      return;
    }
    const half = Math.ceil(this.replyText.length / 2);
    send('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: this.replyText.slice(0, half) } });
    send('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: this.replyText.slice(half) } });
    send('content_block_stop', { type: 'content_block_stop', index: 0 });
    send('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: this.usage.output_tokens } });
    send('message_stop', { type: 'message_stop' });
    res.end();
  }

  private error(res: http.ServerResponse, status: number, type: string, message: string): void {
    res.writeHead(status, { 'content-type': 'application/json', 'request-id': 'req_mock_error' });
    res.end(JSON.stringify({ type: 'error', error: { type, message } }));
  }
}
