import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the mock Vertex AI received it. */
export interface VertexRecorded {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json?: Record<string, unknown>;
}

/**
 * A local Vertex AI (Anthropic publisher models) that accepts only tokens `accept()` says are currently
 * issued, and answers rawPredict (JSON), streamRawPredict (SSE) and count-tokens:rawPredict.
 */
export class MockVertex {
  readonly requests: VertexRecorded[] = [];
  /** Requests refused for a missing, unknown or expired token. */
  rejectedTokens = 0;
  replyText = 'pong from vertex';
  private server?: http.Server;

  constructor(private readonly accept: (token: string) => boolean) {}

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  get last(): VertexRecorded | undefined {
    return this.requests[this.requests.length - 1];
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, res, Buffer.concat(chunks)));
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
    const error = (status: number, message: string, st: string): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: status, message, status: st } }));
    };
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!token || !this.accept(token)) {
      this.rejectedTokens++;
      return error(401, 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.', 'UNAUTHENTICATED');
    }
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      json = undefined;
    }
    this.requests.push({ url: req.url ?? '', headers: req.headers, body, json });
    const m = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/anthropic\/models\/([^/:]+):(rawPredict|streamRawPredict)$/.exec(req.url ?? '');
    if (!m) return error(404, `mock has no ${req.url}`, 'NOT_FOUND');
    if (typeof json?.anthropic_version !== 'string') return error(400, 'anthropic_version: Field required', 'INVALID_ARGUMENT');
    if (m[3] === 'count-tokens') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ input_tokens: 17 }));
      return;
    }
    if (json && 'model' in json) return error(400, 'model: Extra inputs are not permitted', 'INVALID_ARGUMENT');
    const model = m[3].split('@')[0];
    const usage = { input_tokens: 21, output_tokens: 6, cache_creation_input_tokens: 0, cache_read_input_tokens: 300 };
    if (m[4] === 'rawPredict') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'msg_vrtx_01', type: 'message', role: 'assistant', model, content: [{ type: 'text', text: this.replyText }], stop_reason: 'end_turn', stop_sequence: null, usage }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    const send = (data: Record<string, unknown>) => res.write(`event: ${String(data.type)}\ndata: ${JSON.stringify(data)}\n\n`);
    send({ type: 'message_start', message: { id: 'msg_vrtx_02', type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } } });
    send({ type: 'ping' });
    send({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
    send({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: this.replyText } });
    send({ type: 'content_block_stop', index: 0 });
    send({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: usage.output_tokens } });
    send({ type: 'message_stop' });
    res.end();
  }
}
