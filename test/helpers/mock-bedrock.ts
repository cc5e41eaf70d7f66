import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { bedrockChunk, encodeEventStreamMessage } from '../../src/core/streams/eventstream';

/** One request as the mock Bedrock received it (after its signature was checked). */
export interface BedrockRecorded {
  method: string;
  /** Raw path and query as sent. */
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json?: Record<string, unknown>;
  /** Access key id that signed it, or "bearer". */
  signer?: string;
}

/** A fault or special answer for the next runtime request. */
export interface BedrockScript {
  status?: number;
  body?: string;
  headers?: Record<string, string>;
  /** Stream: an exception frame after message_start. */
  exception?: { type: string; message: string };
  /** Stream: destroy the socket halfway through a frame after message_start. */
  cutMidFrame?: boolean;
  /** Stream: write the whole stream in chunks of this many bytes. */
  chunkBytes?: number;
  /** Stream: stay silent this long after message_start. */
  gapMs?: number;
}

/** Secret (and optional expiry, ms) of an access key the mock accepts. */
export type KeyLookup = (accessKeyId: string, sessionToken?: string) => { secret: string; expiresAt?: number } | undefined;

const SIG_MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

/**
 * A local Bedrock (runtime and control plane) that verifies every SigV4 signature by recomputing it with
 * the known test credentials, and answers in Bedrock's wire formats (JSON, event stream, AWS errors).
 */
export class MockBedrock {
  readonly requests: BedrockRecorded[] = [];
  readonly rejected: Array<{ url: string; reason: string }> = [];
  readonly script: BedrockScript[] = [];
  replyText = 'pong from bedrock';
  usage = { input_tokens: 30, output_tokens: 9, cache_creation_input_tokens: 50, cache_read_input_tokens: 700 };
  bearerToken?: string;
  private server?: http.Server;

  constructor(
    private readonly keys: KeyLookup,
    readonly region = 'us-east-1',
  ) {}

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => void this.handle(req, res, Buffer.concat(chunks)).catch((e) => this.awsError(res, 500, 'InternalServerException', String(e))));
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }

  get last(): BedrockRecorded | undefined {
    return this.requests[this.requests.length - 1];
  }

  /** Checks the request's signature; returns the signer's access key id or a rejection already sent. */
  private async verify(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): Promise<string | undefined> {
    const auth = req.headers.authorization ?? '';
    if (this.bearerToken && auth === `Bearer ${this.bearerToken}`) return 'bearer';
    const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(auth);
    const reject = (status: number, type: string, message: string) => {
      this.rejected.push({ url: req.url ?? '', reason: type });
      this.awsError(res, status, type, message);
      return undefined;
    };
    if (!m) return reject(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
    const [, keyId, , region, service, signedHeaders] = m;
    const token = req.headers['x-amz-security-token'] as string | undefined;
    const key = this.keys(keyId, token);
    if (!key) return reject(403, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
    if (key.expiresAt !== undefined && key.expiresAt <= Date.now()) return reject(403, 'ExpiredTokenException', 'The security token included in the request is expired');
    if (region !== this.region || service !== 'bedrock') return reject(403, 'InvalidSignatureException', `Credential should be scoped to a valid region and service 'bedrock'.`);
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const query: Record<string, string> = {};
    if (q !== -1) for (const [k, v] of new URLSearchParams(url.slice(q + 1))) query[k] = v;
    const headers: Record<string, string> = {};
    for (const h of signedHeaders.split(';')) headers[h] = String(req.headers[h] ?? '');
    const dateHeader = String(req.headers['x-amz-date'] ?? '');
    const date = new Date(dateHeader.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
    if (Number.isNaN(date.getTime()) || Math.abs(date.getTime() - Date.now()) > 5 * 60_000) return reject(403, 'InvalidSignatureException', 'Signature expired');
    // The signer trusts x-amz-content-sha256, so check it against the bytes that actually arrived.
    const declared = req.headers['x-amz-content-sha256'];
    if (declared !== undefined && declared !== createHash('sha256').update(body).digest('hex')) return reject(400, 'InvalidSignatureException', 'The provided x-amz-content-sha256 header does not match what was computed.');
    const signer = new SignatureV4({ service: 'bedrock', region, sha256: Sha256, credentials: { accessKeyId: keyId, secretAccessKey: key.secret, sessionToken: token } });
    const expected = await signer.sign(
      { method: req.method ?? 'GET', protocol: 'http:', hostname: '127.0.0.1', path: q === -1 ? url : url.slice(0, q), query, headers, body },
      { signingDate: date },
    );
    if (expected.headers.authorization !== auth) return reject(403, 'InvalidSignatureException', SIG_MISMATCH);
    return keyId;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): Promise<void> {
    const signer = await this.verify(req, res, body);
    if (!signer) return;
    let json: Record<string, unknown> | undefined;
    try {
      json = body.length ? JSON.parse(body.toString('utf8')) : undefined;
    } catch {
      json = undefined;
    }
    this.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, json, signer });
    const path = (req.url ?? '').split('?')[0];
    if (path === '/inference-profiles') return this.json(res, 200, { inferenceProfileSummaries: [] });
    const m = /^\/model\/([^/]+)\/([a-z-]+)$/.exec(path);
    if (!m) return this.awsError(res, 404, 'UnknownOperationException', `mock has no ${path}`);
    const scripted = this.script.shift();
    if (scripted?.status) {
      res.writeHead(scripted.status, { 'content-type': 'application/json', 'x-amzn-requestid': 'req-bedrock-error', ...scripted.headers });
      res.end(scripted.body ?? JSON.stringify({ message: `scripted ${scripted.status}` }));
      return;
    }
    if (m[2] === 'converse' || m[2] === 'converse-stream') return this.converse(res, m[2] === 'converse-stream', json, scripted);
    if (typeof json?.anthropic_version !== 'string' && m[2] !== 'count-tokens') {
      return this.awsError(res, 400, 'ValidationException', 'anthropic_version: required key [anthropic_version] not found');
    }
    if (json && ('model' in json || 'stream' in json)) return this.awsError(res, 400, 'ValidationException', 'extraneous key [model] is not permitted');
    const model = 'claude-sonnet-4-5-20250929';
    switch (m[2]) {
      case 'invoke':
        return this.json(res, 200, {
          id: 'msg_bdrk_01',
          type: 'message',
          role: 'assistant',
          model,
          content: [{ type: 'text', text: this.replyText }],
          stop_reason: 'end_turn',
          stop_sequence: null,
          usage: this.usage,
        });
      case 'count-tokens':
        return this.json(res, 200, { inputTokens: 42 });
      case 'invoke-with-response-stream':
        return this.stream(res, model, scripted);
      default:
        return this.awsError(res, 400, 'ValidationException', `mock does not implement ${m[2]}`);
    }
  }

  /** The frames of one streamed answer, as Bedrock sends them. */
  frames(model: string): Buffer[] {
    const { output_tokens: _o, ...start } = this.usage;
    const half = Math.ceil(this.replyText.length / 2);
    return [
      bedrockChunk({ type: 'message_start', message: { id: 'msg_bdrk_02', type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { ...start, output_tokens: 1 } } }),
      bedrockChunk({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
      bedrockChunk({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: this.replyText.slice(0, half) } }),
      bedrockChunk({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: this.replyText.slice(half) } }),
      bedrockChunk({ type: 'content_block_stop', index: 0 }),
      bedrockChunk({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: this.usage.output_tokens } }),
      bedrockChunk({ type: 'message_stop', 'amazon-bedrock-invocationMetrics': { inputTokenCount: this.usage.input_tokens, outputTokenCount: this.usage.output_tokens } }),
    ];
  }

  /** The exact bytes of the last complete stream sent (for byte-identity checks). */
  lastStreamBytes?: Buffer;

  private async stream(res: http.ServerResponse, model: string, s?: BedrockScript): Promise<void> {
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': 'req-bedrock-stream', 'x-amzn-bedrock-content-type': 'application/json' });
    const frames = this.frames(model);
    if (s?.exception) {
      const exc = encodeEventStreamMessage({ ':exception-type': s.exception.type, ':content-type': 'application/json', ':message-type': 'exception' }, JSON.stringify({ message: s.exception.message }));
      const all = Buffer.concat([frames[0], exc]);
      this.lastStreamBytes = all;
      res.end(all);
      return;
    }
    if (s?.cutMidFrame) {
      res.write(frames[0]);
      res.write(frames[1].subarray(0, Math.floor(frames[1].length / 2)), () => res.socket?.destroy());
      return;
    }
    const all = Buffer.concat(frames);
    this.lastStreamBytes = all;
    if (s?.gapMs) {
      res.write(frames[0]);
      await new Promise((r) => setTimeout(r, s.gapMs));
      res.end(Buffer.concat(frames.slice(1)));
      return;
    }
    const size = s?.chunkBytes ?? all.length;
    for (let i = 0; i < all.length; i += size) {
      res.write(all.subarray(i, i + size));
      if (s?.chunkBytes) await new Promise((r) => setImmediate(r));
    }
    res.end();
  }

  /** Converse's usage for the same answer: camelCase, cache reads and writes beside the input. */
  get converseUsage(): Record<string, number> {
    const u = this.usage;
    return {
      inputTokens: u.input_tokens,
      outputTokens: u.output_tokens,
      totalTokens: u.input_tokens + u.output_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens,
      cacheReadInputTokens: u.cache_read_input_tokens,
      cacheWriteInputTokens: u.cache_creation_input_tokens,
    };
  }

  /** Converse and ConverseStream, in Bedrock's shapes: one JSON answer, or event-stream frames named by `:event-type`. */
  private async converse(res: http.ServerResponse, stream: boolean, json: Record<string, unknown> | undefined, s?: BedrockScript): Promise<void> {
    if (!Array.isArray(json?.messages)) return this.awsError(res, 400, 'ValidationException', 'messages: required');
    if (!stream) {
      return this.json(res, 200, {
        output: { message: { role: 'assistant', content: [{ text: this.replyText }] } },
        stopReason: 'end_turn',
        usage: this.converseUsage,
        metrics: { latencyMs: 12 },
      });
    }
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': 'req-bedrock-converse-stream' });
    // Bedrock pads each event with a "p" member of varying length (so sizes do not reveal the content).
    const frame = (type: string, body: Record<string, unknown>) =>
      encodeEventStreamMessage({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify({ ...body, p: 'abcdefghij'.slice(0, 3 + type.length % 7) }));
    const half = Math.ceil(this.replyText.length / 2);
    const frames = [
      frame('messageStart', { role: 'assistant' }),
      frame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: this.replyText.slice(0, half) } }),
      frame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: this.replyText.slice(half) } }),
      frame('contentBlockStop', { contentBlockIndex: 0 }),
      frame('messageStop', { stopReason: 'end_turn' }),
      frame('metadata', { usage: this.converseUsage, metrics: { latencyMs: 15 } }),
    ];
    if (s?.cutMidFrame) {
      res.write(Buffer.concat(frames.slice(0, 2)));
      res.write(frames[2].subarray(0, Math.floor(frames[2].length / 2)), () => res.socket?.destroy());
      return;
    }
    this.lastStreamBytes = Buffer.concat(frames);
    res.end(this.lastStreamBytes);
  }

  private json(res: http.ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-requestid': 'req-bedrock-json' });
    res.end(JSON.stringify(body));
  }

  private awsError(res: http.ServerResponse, status: number, type: string, message: string): void {
    res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`, 'x-amzn-requestid': 'req-bedrock-err' });
    res.end(JSON.stringify({ message }));
  }
}
