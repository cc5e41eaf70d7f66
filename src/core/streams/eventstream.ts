import type { ServerResponse } from 'node:http';
import { crc32 } from 'node:zlib';
import type { CallAbort, PipeResult, UpstreamResponse } from '../gateway/forward';
import { ClientGoneDrain } from './drain';
import { UsageCollector, type UsageEvent, type UsageTap } from './usage';

/** One decoded `application/vnd.amazon.eventstream` message. */
export interface EventStreamMessage {
  headers: Record<string, string | number | boolean | Buffer>;
  payload: Buffer;
}

/** A frame that fails its length or CRC checks: the stream is corrupt and cannot be resynchronised. */
export class EventStreamError extends Error {
  override name = 'EventStreamError';
}

const PRELUDE = 12;
const MAX_MESSAGE = 24 << 20;

/**
 * Decodes AWS event-stream frames incrementally: bytes arrive in arbitrary TCP chunks, complete messages
 * come out. Each frame is `total length | headers length | prelude CRC | headers | payload | message CRC`.
 */
export class EventStreamDecoder {
  private buf: Buffer = Buffer.alloc(0);

  /** Bytes held that do not yet form a whole message (non-zero at the end means the stream was cut mid-frame). */
  get pending(): number {
    return this.buf.length;
  }

  push(chunk: Buffer): EventStreamMessage[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: EventStreamMessage[] = [];
    while (this.buf.length >= PRELUDE) {
      const total = this.buf.readUInt32BE(0);
      const headersLen = this.buf.readUInt32BE(4);
      if (crc32(this.buf.subarray(0, 8)) !== this.buf.readUInt32BE(8)) throw new EventStreamError('event-stream prelude CRC mismatch');
      if (total < PRELUDE + 4 + headersLen || total > MAX_MESSAGE) throw new EventStreamError(`event-stream frame has an impossible length (${total})`);
      if (this.buf.length < total) break;
      const frame = this.buf.subarray(0, total);
      if (crc32(frame.subarray(0, total - 4)) !== frame.readUInt32BE(total - 4)) throw new EventStreamError('event-stream message CRC mismatch');
      out.push({ headers: decodeHeaders(frame.subarray(PRELUDE, PRELUDE + headersLen)), payload: Buffer.from(frame.subarray(PRELUDE + headersLen, total - 4)) });
      this.buf = this.buf.subarray(total);
    }
    return out;
  }
}

function decodeHeaders(b: Buffer): EventStreamMessage['headers'] {
  const out: EventStreamMessage['headers'] = {};
  let i = 0;
  while (i < b.length) {
    const nameLen = b.readUInt8(i);
    const name = b.toString('utf8', i + 1, i + 1 + nameLen);
    i += 1 + nameLen;
    const type = b.readUInt8(i++);
    switch (type) {
      case 0:
      case 1:
        out[name] = type === 0;
        break;
      case 2:
        out[name] = b.readInt8(i);
        i += 1;
        break;
      case 3:
        out[name] = b.readInt16BE(i);
        i += 2;
        break;
      case 4:
        out[name] = b.readInt32BE(i);
        i += 4;
        break;
      case 5:
      case 8:
        out[name] = Number(b.readBigInt64BE(i));
        i += 8;
        break;
      case 6:
      case 7: {
        const len = b.readUInt16BE(i);
        const v = b.subarray(i + 2, i + 2 + len);
        out[name] = type === 7 ? v.toString('utf8') : Buffer.from(v);
        i += 2 + len;
        break;
      }
      case 9:
        out[name] = Buffer.from(b.subarray(i, i + 16));
        i += 16;
        break;
      default:
        throw new EventStreamError(`event-stream header "${name}" has unknown type ${type}`);
    }
  }
  return out;
}

/** Encodes one message with string headers (tests and local answers use it). */
export function encodeEventStreamMessage(headers: Record<string, string>, payload: Buffer | string): Buffer {
  const hparts: Buffer[] = [];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name, 'utf8');
    const v = Buffer.from(value, 'utf8');
    const h = Buffer.alloc(1 + n.length + 1 + 2 + v.length);
    h.writeUInt8(n.length, 0);
    n.copy(h, 1);
    h.writeUInt8(7, 1 + n.length);
    h.writeUInt16BE(v.length, 2 + n.length);
    v.copy(h, 4 + n.length);
    hparts.push(h);
  }
  const hbuf = Buffer.concat(hparts);
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const total = PRELUDE + hbuf.length + body.length + 4;
  const out = Buffer.alloc(total);
  out.writeUInt32BE(total, 0);
  out.writeUInt32BE(hbuf.length, 4);
  out.writeUInt32BE(crc32(out.subarray(0, 8)), 8);
  hbuf.copy(out, PRELUDE);
  body.copy(out, PRELUDE + hbuf.length);
  out.writeUInt32BE(crc32(out.subarray(0, total - 4)), total - 4);
  return out;
}

/** A Bedrock `chunk` event carrying one Anthropic stream event, framed as Bedrock sends it. */
export function bedrockChunk(event: unknown): Buffer {
  const bytes = Buffer.from(JSON.stringify(event), 'utf8').toString('base64');
  return encodeEventStreamMessage({ ':event-type': 'chunk', ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify({ bytes }));
}

/** What one Bedrock event-stream message means to an Anthropic client. */
export type BedrockEvent = { kind: 'event'; event: Record<string, unknown> } | { kind: 'error'; type: string; message: string; exception: string };

/** Bedrock exception names → Anthropic error types. */
const EXCEPTION_TYPES: Record<string, string> = {
  throttlingException: 'rate_limit_error',
  serviceUnavailableException: 'overloaded_error',
  validationException: 'invalid_request_error',
  accessDeniedException: 'permission_error',
  resourceNotFoundException: 'not_found_error',
};

/** Interprets a message: a `chunk` holds a base64 Anthropic event; an exception becomes an Anthropic error. */
export function interpretBedrockMessage(m: EventStreamMessage): BedrockEvent | undefined {
  const type = m.headers[':message-type'];
  if (type === 'exception' || type === 'error') {
    const exception = String(m.headers[':exception-type'] ?? m.headers[':error-code'] ?? 'internalServerException');
    let message = String(m.headers[':error-message'] ?? '');
    try {
      const body = JSON.parse(m.payload.toString('utf8')) as { message?: string; Message?: string };
      message = body.message ?? body.Message ?? message;
    } catch {
      message ||= m.payload.toString('utf8');
    }
    return { kind: 'error', type: EXCEPTION_TYPES[exception] ?? 'api_error', message: message || exception, exception };
  }
  if (m.headers[':event-type'] !== 'chunk') return undefined;
  const wrapper = JSON.parse(m.payload.toString('utf8')) as { bytes?: string };
  if (typeof wrapper.bytes !== 'string') return undefined;
  return { kind: 'event', event: JSON.parse(Buffer.from(wrapper.bytes, 'base64').toString('utf8')) };
}

/** The ConverseStream events that carry what the gateway records (start and stop of the message, output, usage). */
const CONVERSE_EVENTS = new Set(['messageStart', 'contentBlockDelta', 'messageStop', 'metadata']);

/**
 * Reads usage from a Bedrock event stream beside the byte pipe: InvokeModelWithResponseStream `chunk` frames (Anthropic
 * events), ConverseStream events, and exception frames.
 */
export class EventStreamUsageTap implements UsageTap {
  readonly collector = new UsageCollector();
  private decoder = new EventStreamDecoder();
  private broken = false;

  write(chunk: Buffer): void {
    if (this.broken) return;
    let messages: EventStreamMessage[];
    try {
      messages = this.decoder.push(chunk);
    } catch {
      this.broken = true;
      this.collector.errorType ??= 'invalid_event_stream';
      return;
    }
    for (const m of messages) {
      try {
        const eventType = m.headers[':event-type'];
        if (typeof eventType === 'string' && CONVERSE_EVENTS.has(eventType) && m.headers[':message-type'] === 'event') {
          // ConverseStream: the event's own JSON, named by its header.
          const payload = JSON.parse(m.payload.toString('utf8')) as UsageEvent;
          payload.type = eventType;
          this.collector.onEvent(payload);
          continue;
        }
        const e = interpretBedrockMessage(m);
        if (e?.kind === 'event') this.collector.onEvent(e.event);
        else if (e?.kind === 'error') this.collector.errorType = e.type;
      } catch {
        // A chunk that is not JSON carries no usage.
      }
    }
  }

  end(): void {
    if (this.decoder.pending && !this.broken) this.collector.errorType ??= 'stream_cut';
  }
}

/** Silence longer than this on a translated stream gets a `ping`, as Anthropic's own API sends. */
export const PING_INTERVAL_MS = 10_000;

function sse(event: Record<string, unknown>): string {
  return `event: ${String(event.type)}\ndata: ${JSON.stringify(event)}\n\n`;
}

/**
 * Re-emits a Bedrock event stream as Anthropic SSE: each `chunk` becomes its Anthropic event, an exception
 * frame becomes an `error` event, and silent gaps longer than `pingMs` get `ping` events. The usage tap is
 * fed from the same decoded events. Backpressure pauses the upstream; after a client leaves, the upstream is read on
 * for its usage up to a bound (ClientGoneDrain), then aborted.
 */
export function pipeBedrockAsSse(
  res: ServerResponse,
  upstream: UpstreamResponse,
  abort: CallAbort,
  extraHeaders: Record<string, string>,
  pingMs = PING_INTERVAL_MS,
): Promise<PipeResult & { tap: UsageTap }> {
  const started = performance.now();
  const collector = new UsageCollector();
  const tap: UsageTap = { collector, write: () => undefined, end: () => undefined };
  const decoder = new EventStreamDecoder();
  const body = upstream.body;
  return new Promise((resolve) => {
    let bytes = 0;
    let firstByteMs: number | undefined;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (outcome: PipeResult['outcome'], error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      drain.clear();
      res.off('close', onClose);
      resolve({ outcome, bytes, firstByteMs, error, tap });
    };
    const drain = new ClientGoneDrain(() => {
      abort.abort();
      body.destroy();
      finish('client_aborted');
    });
    const write = (text: string) => {
      if (drain.gone) return;
      if (firstByteMs === undefined) firstByteMs = performance.now() - started;
      bytes += Buffer.byteLength(text);
      const ok = res.write(text);
      armPing();
      if (!ok) {
        body.pause();
        res.once('drain', () => body.resume());
      }
    };
    const armPing = () => {
      clearTimeout(timer);
      timer = setTimeout(() => write(sse({ type: 'ping' })), pingMs);
    };
    const fail = (type: string, message: string) => {
      collector.errorType = type;
      if (drain.gone) {
        body.destroy();
        finish('client_aborted', message);
        return;
      }
      write(sse({ type: 'error', error: { type, message } }));
      body.destroy();
      res.end(() => finish('complete', message));
    };
    const onClose = () => {
      if (!res.writableFinished) {
        clearTimeout(timer);
        drain.start(body);
      }
    };
    res.on('close', onClose);
    const requestId = upstream.headers['x-amzn-requestid'];
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      ...(typeof requestId === 'string' ? { 'request-id': requestId } : {}),
      ...extraHeaders,
    });
    res.flushHeaders();
    armPing();
    body.on('data', (chunk: Buffer) => {
      if (done) return;
      if (drain.gone) drain.take(chunk);
      let messages: EventStreamMessage[];
      try {
        messages = decoder.push(chunk);
      } catch (err) {
        fail('api_error', `The upstream event stream is corrupt: ${(err as Error).message}`);
        return;
      }
      for (const m of messages) {
        let e: BedrockEvent | undefined;
        try {
          e = interpretBedrockMessage(m);
        } catch {
          continue;
        }
        if (!e) continue;
        if (e.kind === 'error') {
          fail(e.type, e.message);
          return;
        }
        collector.onEvent(e.event);
        delete e.event['amazon-bedrock-invocationMetrics'];
        let text: string;
        try {
          text = sse(e.event);
        } catch {
          // Nested deeper than JSON.stringify recurses (JSON.parse accepts any depth): end with an error event, not a throw
          // inside the body's data handler.
          fail('api_error', 'The upstream sent an event nested too deeply to re-emit.');
          return;
        }
        write(text);
      }
    });
    body.on('end', () => {
      if (done) return;
      if (drain.gone) {
        finish('client_aborted');
        return;
      }
      if (decoder.pending) {
        // Cut mid-frame: cut the client too, so it sees the failure (and falls back) rather than a short answer.
        res.destroy();
        finish('upstream_cut', 'event stream ended mid-frame');
        return;
      }
      res.end(() => finish('complete'));
    });
    body.on('error', (err: Error) => {
      if (done) return;
      res.destroy(err);
      finish(abort.aborted || drain.gone ? 'client_aborted' : 'upstream_cut', (err as { code?: string }).code ?? err.message);
    });
  });
}
