import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { Agent, errors as undiciErrors } from './http-client';
import { Errors } from '../errors';
import { ClientGoneDrain } from '../streams/drain';
import { PROJECT_HEADER } from './keys';

/** What the gateway sends upstream for one call. */
export interface UpstreamRequest {
  /** Scheme, host and port, fixed by the profile (never by the client). */
  origin: string;
  /** Path and query, already rebased onto the upstream. */
  path: string;
  method: string;
  headers: Record<string, string>;
  body?: Buffer;
}

/** The upstream's answer before its body is read. */
export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[]>;
  body: Dispatcher.ResponseData['body'];
  /** Milliseconds from sending to the response headers. */
  headersMs: number;
}

/** How the byte pipe to the client ended. */
export type PipeOutcome = 'complete' | 'client_aborted' | 'upstream_cut';

export interface PipeResult {
  outcome: PipeOutcome;
  bytes: number;
  /** Milliseconds from pipe start to the first body byte written (undefined when none). */
  firstByteMs?: number;
  error?: string;
}

// Hop-by-hop headers (RFC 9110 §7.6.1) and those the HTTP client sets itself. `expect` was answered by the gateway's
// own server (100 Continue); forwarded, undici refuses the request (curl sends it with larger bodies).
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host', 'content-length', 'expect']);
// Credentials a client may send; the route decides which (if any) go upstream.
export const CLIENT_CREDENTIAL_HEADERS = ['authorization', 'x-api-key', 'proxy-authorization'] as const;

/** Finds gateway credentials (keys, signed tokens) in a header value: the key ring. */
export interface CredentialFinder {
  carriesCredential(value: string): boolean;
}

/**
 * Copies the client's headers for upstream: hop-by-hop and credential headers removed (but those in `keep`), identity
 * encoding asked. A header whose value carries a gateway key or a token this gateway signed never leaves, whatever its
 * name: it is dropped. When that leaves none of the client credentials `keep` lets through (a `credentials: "client"`
 * profile whose Authorization held the gateway key, as a shell with ANTHROPIC_AUTH_TOKEN left over sends it), the call is
 * refused with a 400 naming the header: forwarded without it, the upstream would answer a 401 that points nowhere.
 */
export function forwardableHeaders(
  incoming: Record<string, string | string[] | undefined>,
  keys: CredentialFinder,
  keep: ReadonlySet<string> = new Set(),
): Record<string, string> {
  const out: Record<string, string> = {};
  let dropped: string | undefined;
  let kept = false;
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    const credential = (CLIENT_CREDENTIAL_HEADERS as readonly string[]).includes(name);
    if (credential && !keep.has(name)) continue;
    if (name === PROJECT_HEADER) continue;
    const flat = Array.isArray(value) ? value.join(', ') : value;
    if (keys.carriesCredential(flat)) {
      if (credential) dropped ??= name;
      continue;
    }
    if (credential) kept = true;
    out[name] = flat;
  }
  if (dropped && !kept) {
    throw new Errors.InvalidRequest(
      `The ${dropped} header carries this gateway's key, which never leaves the gateway. This profile passes the client's own provider credentials through, so ${dropped} must carry yours: send the gateway key only in Proxy-Authorization (unset ANTHROPIC_AUTH_TOKEN and ANTHROPIC_API_KEY if they hold it; \`claude-code-gateway env --profile <name>\` prints what to set).`,
    );
  }
  // The usage tap reads the body as it passes: ask for it uncompressed (loopback to the client costs nothing).
  out['accept-encoding'] = 'identity';
  return out;
}

/** The HTTP client for all upstreams: keep-alive pools per origin, no response-body timeout shorter than Claude Code's own. */
export function createUpstreamAgent(): Agent {
  return new Agent({
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 120_000,
    connectTimeout: 15_000,
    headersTimeout: 10 * 60_000,
    bodyTimeout: 10 * 60_000,
  });
}

/**
 * Cancels one call's upstream request and pipe. undici takes an EventEmitter as a request's `signal`; an
 * AbortController's signal is an EventTarget built on first use, which cost ~2 % of the gateway's CPU per call.
 */
export class CallAbort extends EventEmitter {
  aborted = false;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
  }
}

/** Sends a request upstream; network failures become Anthropic-shaped 502/504 errors naming the upstream. */
export async function sendUpstream(agent: Dispatcher, req: UpstreamRequest, signal: CallAbort, profileName: string): Promise<UpstreamResponse> {
  const started = performance.now();
  try {
    const res = await agent.request({
      origin: req.origin,
      path: req.path,
      method: req.method as Dispatcher.HttpMethod,
      headers: req.headers,
      body: req.body,
      signal,
    });
    return { status: res.statusCode, headers: res.headers as Record<string, string | string[]>, body: res.body, headersMs: performance.now() - started };
  } catch (err) {
    throw upstreamError(err, req.origin, profileName);
  }
}

/** Maps a client-side failure to the gateway's error vocabulary. */
export function upstreamError(err: unknown, origin: string, profileName: string): Error {
  const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
  const code = e.code ?? e.cause?.code;
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new Errors.UpstreamTimeout(profileName, origin, code ?? e.message);
  }
  if (e.name === 'AbortError') return e;
  const reason = code ?? e.message;
  return new Errors.UpstreamUnreachable(profileName, origin, reason);
}

/** Response headers that describe the connection rather than the content. */
export function responseHeaders(headers: Record<string, string | string[]>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) if (!HOP_BY_HOP.has(name) || name === 'content-length') out[name] = headers[name];
  return out;
}

/**
 * Streams the upstream body to the client unchanged, chunk by chunk, calling `tap` on each chunk
 * beside the pipe. Backpressure from a slow client pauses the upstream; a client that goes away stops the pipe, and
 * the upstream is read on for its usage up to a bound, then aborted (ClientGoneDrain).
 */
export function pipeToClient(
  res: ServerResponse,
  upstream: UpstreamResponse,
  abort: CallAbort,
  tap?: (chunk: Buffer) => void,
  extraHeaders?: Record<string, string>,
): Promise<PipeResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    let bytes = 0;
    let firstByteMs: number | undefined;
    let done = false;
    const body = upstream.body;
    const finish = (outcome: PipeOutcome, error?: string) => {
      if (done) return;
      done = true;
      drain.clear();
      res.off('close', onClose);
      resolve({ outcome, bytes, firstByteMs, error });
    };
    const drain = new ClientGoneDrain(() => {
      abort.abort();
      body.destroy();
      finish('client_aborted');
    });
    let ended = false;
    const onClose = () => {
      clearTimeout(headerTimer);
      if (res.writableFinished) return;
      held = undefined;
      // All of the body was read (it was on its way to the client): nothing more to count.
      if (ended) finish('client_aborted');
      else drain.start(body);
    };
    res.on('close', onClose);
    const headers = responseHeaders(upstream.headers);
    if (extraHeaders) for (const name in extraHeaders) headers[name] = extraHeaders[name];
    res.writeHead(upstream.status, headers);
    const contentType = String(upstream.headers['content-type'] ?? '');
    const isStream = contentType.includes('event-stream') || contentType.includes('eventstream');
    // Headers leave with the first body chunk (one write instead of two). A stream whose first event is slow
    // gets its headers on their own after a moment, so the client knows the call was accepted.
    const headerTimer: NodeJS.Timeout | undefined = isStream ? setTimeout(() => !res.destroyed && res.flushHeaders(), 20) : undefined;
    // For a JSON body, one chunk is held back so the last one goes out with the end of the response.
    let held: Buffer | undefined;
    const send = (chunk: Buffer) => {
      if (!res.write(chunk)) {
        body.pause();
        res.once('drain', () => body.resume());
      }
    };
    body.on('data', (chunk: Buffer) => {
      if (done) return;
      if (drain.gone) {
        drain.take(chunk);
        if (tap) tapSafely(tap, chunk);
        return;
      }
      if (firstByteMs === undefined) {
        firstByteMs = performance.now() - started;
        clearTimeout(headerTimer);
      }
      bytes += chunk.length;
      // A stream's bytes go to the client before the tap reads them (time to first byte is what a user feels).
      if (isStream) send(chunk);
      else {
        if (held) send(held);
        held = chunk;
      }
      if (tap) tapSafely(tap, chunk);
    });
    body.on('end', () => {
      clearTimeout(headerTimer);
      ended = true;
      if (drain.gone) {
        finish('client_aborted');
        return;
      }
      const last = held;
      held = undefined;
      if (last) res.end(last, () => finish('complete'));
      else res.end(() => finish('complete'));
    });
    body.on('error', (err: Error) => {
      clearTimeout(headerTimer);
      if (done) return;
      // The upstream cut the stream: cut the client too, so it sees the same failure (and falls back).
      res.destroy(err);
      finish(abort.aborted || drain.gone ? 'client_aborted' : 'upstream_cut', (err as { code?: string }).code ?? err.message);
    });
  });
}

function tapSafely(tap: (chunk: Buffer) => void, chunk: Buffer): void {
  try {
    tap(chunk);
  } catch {
    // The tap only observes; a parser bug must never break the byte pipe.
  }
}
