import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Profile } from '../config/validate';
import type { GatewayRuntime } from '../runtime';
import { anthropicErrorBody, anthropicTypeFor, awsErrorType, bedrockErrorBody } from '../errors';
import { emptyUsage, tapFor, type UsageTap } from '../streams/usage';
import type { CallInfo, CallOutcome, RouteName } from './call';
import { CallAbort, pipeToClient, sendUpstream, type UpstreamRequest, type UpstreamResponse } from './forward';
import { PROJECT_HEADER, projectFor, type Authenticated } from './keys';

/** Everything a route knows about a model call it is about to forward. */
export interface ProxyCallParams {
  runtime: GatewayRuntime;
  request: FastifyRequest;
  reply: FastifyReply;
  profile: Profile;
  route: RouteName;
  auth: Authenticated;
  requestedModel?: string;
  upstreamModel?: string;
  streaming: boolean;
  countTokens: boolean;
  /** The request's `max_tokens`, read by the route from the one parse of the body (for the budget reservation). */
  maxTokens?: number;
  /** Forwarded without metering (an endpoint the profile opted into); recorded as such. */
  unmetered?: boolean;
  /** Builds the upstream request; called again (with fresh credentials) for the one retry after a 401. */
  build: () => Promise<UpstreamRequest>;
  /** True when a 401 may be cured by refreshed credentials (an apiKeyHelper). */
  canRefresh?: () => boolean;
  refresh?: () => void;
  /** Overrides the response handling (translation); by default the body is piped unchanged with a usage tap. */
  respond?: (upstream: UpstreamResponse, abort: CallAbort, headers: Record<string, string>) => Promise<{ outcome: CallOutcome['status']; firstByteMs?: number; tap?: UsageTap; error?: string }>;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return typeof v === 'string' && v ? v : undefined;
}

/** Describes a model call for accounting. */
export function callInfo(p: ProxyCallParams): CallInfo {
  const url = p.request.url;
  const q = url.indexOf('?');
  const body = Buffer.isBuffer(p.request.body) ? p.request.body : undefined;
  const keepBodies = p.runtime.config.audit.bodies !== 'none';
  return {
    requestId: String(p.request.id),
    startedAt: Date.now(),
    key: p.auth.key,
    project: projectFor(p.auth.key, header(p.request, PROJECT_HEADER)),
    sessionId: header(p.request, 'x-claude-code-session-id'),
    agentId: header(p.request, 'x-claude-code-agent-id'),
    profile: p.profile.name,
    provider: p.profile.provider,
    route: p.route,
    method: p.request.method,
    path: q === -1 ? url : url.slice(0, q),
    requestedModel: p.requestedModel,
    upstreamModel: p.upstreamModel,
    streaming: p.streaming,
    countTokens: p.countTokens,
    requestBytes: body?.length,
    maxTokens: p.maxTokens,
    unmetered: p.unmetered,
    ...(keepBodies ? { requestBody: body, requestHeaders: flatHeaders(p.request.headers) } : {}),
  };
}

function flatHeaders(h: FastifyRequest['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in h) {
    const v = h[name];
    if (v !== undefined) out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/**
 * Forwards one model call: admission, upstream request (one retry after a 401 when credentials can be
 * refreshed), the byte pipe with its usage tap, and settlement. Errors before the response starts go to
 * the gateway's error handler (Anthropic shape); after it starts, the client sees the same cut as upstream.
 */
export async function proxyCall(p: ProxyCallParams): Promise<void> {
  const info = callInfo(p);
  const started = performance.now();
  const admitting = p.runtime.admit(info);
  // Awaited only when the store had to ask its database: the file store's path stays synchronous.
  const admission = admitting instanceof Promise ? await admitting : admitting;
  const abort = new CallAbort();
  const onClientGone = () => {
    if (!p.reply.raw.writableFinished) abort.abort();
  };
  p.reply.raw.once('close', onClientGone);
  const outcome = (o: Partial<CallOutcome> & Pick<CallOutcome, 'status' | 'httpStatus'>): CallOutcome => ({
    latencyMs: performance.now() - started,
    usage: emptyUsage(),
    ...o,
  });

  let upstream: UpstreamResponse;
  try {
    upstream = await sendUpstream(p.runtime.agent, await p.build(), abort, p.profile.name);
    if (upstream.status === 401 && p.canRefresh?.()) {
      await upstream.body.dump().catch(() => undefined);
      p.refresh?.();
      upstream = await sendUpstream(p.runtime.agent, await p.build(), abort, p.profile.name);
    }
  } catch (err) {
    p.reply.raw.off('close', onClientGone);
    const e = err as { statusCode?: number; code?: string; message?: string; name?: string };
    if (abort.aborted) {
      admission.settle(outcome({ status: 'client_aborted', httpStatus: 499, errorType: 'client_aborted' }));
    } else {
      admission.settle(outcome({ status: 'gateway_error', httpStatus: e.statusCode ?? 500, errorType: e.code, errorMessage: e.message }));
    }
    throw err;
  }
  p.reply.raw.off('close', onClientGone);

  const extra: Record<string, string> = { 'x-gateway-request-id': info.requestId, ...admission.headers };
  p.reply.hijack();
  // From here on no error handler answers the client: whatever the responder throws or rejects with, the call is
  // answered (or its connection closed) and settled below, exactly once.
  let result: { outcome: CallOutcome['status']; firstByteMs?: number; tap?: UsageTap; error?: string };
  try {
    if (p.respond) {
      result = await p.respond(upstream, abort, extra);
    } else {
      const tap = tapFor(firstHeader(upstream.headers['content-type']));
      const piped = await pipeToClient(p.reply.raw, upstream, abort, (c) => tap.write(c), extra);
      tap.end();
      result = { outcome: piped.outcome === 'complete' ? 'ok' : piped.outcome, firstByteMs: piped.firstByteMs, tap, error: piped.error };
    }
  } catch (err) {
    admission.settle(outcome(answerAfterThrow(p, err, upstream, abort, extra)));
    return;
  }
  const c = result.tap?.collector;
  let status = result.outcome === 'ok' && upstream.status >= 400 ? 'upstream_error' : result.outcome;
  // A stream that ended cleanly at the TCP level but before message_stop is cut short all the same.
  if (status === 'ok' && p.streaming && c?.sawMessageStart && !c.sawMessageStop) status = 'upstream_cut';
  // Bedrock's token-count headers when the body had no usage; output no less than was seen when the final usage never came.
  const estimated = c !== undefined && upstream.status < 300 && c.finish(upstream.headers, p.streaming, status === 'ok', info.requestBytes);
  admission.settle(
    outcome({
      status,
      httpStatus: upstream.status,
      upstreamStatus: upstream.status,
      ttfbMs: result.firstByteMs === undefined ? undefined : upstream.headersMs + result.firstByteMs,
      usage: c?.usage ?? emptyUsage(),
      responseModel: c?.model,
      stopReason: c?.stopReason,
      errorType: c?.errorType ?? (status === 'ok' ? undefined : status),
      errorMessage: result.error,
      estimated: estimated || undefined,
    }),
  );
}

/**
 * Answers a call whose responder threw after the hijack: an error in the route's shape (502 unless the gateway's own error
 * says otherwise) when no header was sent yet, else a closed connection (the client sees a cut, as from the upstream).
 * The upstream body is released. Returns the outcome to settle with.
 */
function answerAfterThrow(p: ProxyCallParams, err: unknown, upstream: UpstreamResponse, abort: CallAbort, extra: Record<string, string>): Pick<CallOutcome, 'status' | 'httpStatus'> & Partial<CallOutcome> {
  const res = p.reply.raw;
  // Released (an unread body holds its connection); destroying an unfinished body emits an error nobody else awaits.
  upstream.body.on('error', () => undefined);
  upstream.body.destroy();
  if (abort.aborted) {
    res.destroy();
    return { status: 'client_aborted', httpStatus: 499, upstreamStatus: upstream.status, errorType: 'client_aborted' };
  }
  const e = (err ?? {}) as { statusCode?: number; code?: unknown; message?: string; name?: string };
  const code = typeof e.code === 'string' && e.code.startsWith('CCGW_') ? e.code : undefined;
  // The gateway's own errors say what happened; anything else is a bug: logged, and named only by the request id.
  if (!code) p.request.log.error({ err, reqId: p.request.id }, 'unexpected gateway error after the response started');
  const message = code ? String(e.message) : `Internal gateway error (request id ${p.request.id}); the gateway log has the details.`;
  const status: CallOutcome['status'] = code === 'CCGW_UPSTREAM_CUT' ? 'upstream_cut' : 'gateway_error';
  const recorded = { status, upstreamStatus: upstream.status, errorType: code ?? status, errorMessage: code ? message : `unexpected ${e.name ?? typeof err}` };
  if (!res.headersSent && !res.destroyed) {
    const httpStatus = code && e.statusCode && e.statusCode >= 400 ? e.statusCode : 502;
    const type = anthropicTypeFor(code, httpStatus);
    const bedrock = p.route === 'bedrock';
    try {
      res.writeHead(httpStatus, {
        'content-type': 'application/json',
        'x-gateway-error': code ?? 'error',
        ...(bedrock ? { 'x-amzn-errortype': awsErrorType(httpStatus) } : {}),
        ...extra,
      });
      res.end(bedrock ? bedrockErrorBody(type, message) : anthropicErrorBody(type, message));
      return { ...recorded, httpStatus };
    } catch {
      // Headers the client cannot be sent: close the connection instead.
    }
  }
  res.destroy();
  return { ...recorded, httpStatus: res.headersSent ? res.statusCode : 502 };
}

function firstHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export function newRequestId(): string {
  return randomUUID();
}
