import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Profile } from '../../config/validate';
import { anthropicErrorBody, anthropicTypeFor, Errors } from '../../errors';
import { BEDROCK_ANTHROPIC_VERSION, bedrockBaseUrl, buildBedrockRequest } from '../../providers/bedrock';
import { profileModels } from '../../providers/model-catalog';
import { confinedUpstreamModel } from '../../providers/model-id';
import { buildVertexRequest, VERTEX_ANTHROPIC_VERSION, vertexBaseUrl, vertexModelPath } from '../../providers/vertex';
import type { GatewayRuntime } from '../../runtime';
import { pipeBedrockAsSse } from '../../streams/eventstream';
import { JsonUsageTap, SseUsageTap, type UsageTap } from '../../streams/usage';
import type { CallOutcome } from '../call';
import { pipeToClient, responseHeaders, type CallAbort, type UpstreamResponse } from '../forward';
import type { Authenticated } from '../keys';
import { proxyCall } from '../proxy-call';
import { registerBedrockRoutes } from './bedrock';
import { parseJsonObject, serialise, type ModelRouteOptions } from './model-routes';
import { registerVertexRoutes } from './vertex';

/** The provider-native routes: `/bedrock/*` and `/vertex_ai/v1/*`. */
export function registerCloudRoutes(app: FastifyInstance, runtime: GatewayRuntime, opts: ModelRouteOptions): void {
  registerBedrockRoutes(app, runtime, opts);
  registerVertexRoutes(app, runtime, opts);
}

type Responder = (upstream: UpstreamResponse, abort: CallAbort, headers: Record<string, string>) => Promise<{ outcome: CallOutcome['status']; firstByteMs?: number; tap?: UsageTap; error?: string }>;

/**
 * The unified endpoint (Anthropic format) for Bedrock and Vertex AI profiles: model ids mapped through the
 * catalog and the profile's map, the body given the provider's `anthropic_version` (and, for Bedrock, the
 * `anthropic-beta` header as `anthropic_beta`), Bedrock event streams re-emitted as SSE, errors reshaped
 * into Anthropic's error body with the upstream status and message.
 */
export async function unifiedForProvider(
  runtime: GatewayRuntime,
  request: FastifyRequest,
  reply: FastifyReply,
  auth: Authenticated,
  profile: Profile,
  pathAndQuery: string,
): Promise<void> {
  const path = pathAndQuery.split('?')[0];
  if (request.method === 'GET' && path.startsWith('/v1/models')) return listModels(reply, profile, path);
  const countTokens = path === '/v1/messages/count_tokens';
  const body = parseJsonObject(request.body);
  const requestedModel = body.model;
  if (typeof requestedModel !== 'string' || !requestedModel) throw new Errors.InvalidRequest('model: a model id is required.');
  const provider = profile.provider === 'bedrock' ? 'bedrock' : 'vertex';
  // The one confinement of a client's (or the profile map's) model id before it goes into the upstream URL.
  const { id: upstreamModel, segment } = confinedUpstreamModel(profile, provider, requestedModel);
  const streaming = body.stream === true && !countTokens;
  // What the call may generate, for the budget reservation (count_tokens generates nothing).
  const maxTokens = !countTokens && typeof body.max_tokens === 'number' && Number.isFinite(body.max_tokens) && body.max_tokens >= 0 ? body.max_tokens : undefined;
  const betas = String(request.headers['anthropic-beta'] ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  const headers = { ...request.headers };
  delete headers['anthropic-version'];

  let build: () => ReturnType<typeof buildBedrockRequest>;
  let respond: Responder;
  if (profile.provider === 'bedrock') {
    const { model: _m, stream: _s, ...rest } = body;
    const invokeBody: Record<string, unknown> = { ...rest, anthropic_version: BEDROCK_ANTHROPIC_VERSION };
    if (betas.length) invokeBody.anthropic_beta = [...new Set([...(Array.isArray(rest.anthropic_beta) ? rest.anthropic_beta : []), ...betas])];
    delete headers['anthropic-beta'];
    let action = streaming ? 'invoke-with-response-stream' : 'invoke';
    let payload: Buffer;
    if (countTokens) {
      action = 'count-tokens';
      delete invokeBody.stream;
      payload = serialise({ input: { invokeModel: { body: serialise({ max_tokens: 1, ...invokeBody }).toString('base64') } } });
    } else {
      payload = serialise(invokeBody);
    }
    headers['content-type'] = 'application/json';
    const call = { method: 'POST', pathAndQuery: `/model/${segment}/${action}`, headers, body: payload };
    build = () => buildBedrockRequest(runtime, profile, call, 'runtime');
    const named = { profile: profile.name, origin: new URL(bedrockBaseUrl(profile, 'runtime')).origin };
    respond = (upstream, abort, extra) => {
      if (upstream.status >= 400) return sendAnthropicError(reply.raw, upstream, extra, named);
      if (countTokens) return sendCountTokens(reply.raw, upstream, extra, named);
      if (streaming) return pipeBedrockAsSse(reply.raw, upstream, abort, extra).then((r) => ({ ...r, outcome: r.outcome === 'complete' ? 'ok' : r.outcome }));
      return pipeWithTap(reply.raw, upstream, abort, extra, new JsonUsageTap());
    };
  } else {
    const region = profile.region ?? 'global';
    const vertexBody: Record<string, unknown> = { ...body, anthropic_version: VERTEX_ANTHROPIC_VERSION };
    if (countTokens) vertexBody.model = upstreamModel;
    else delete vertexBody.model;
    const modelPath = countTokens ? 'count-tokens' : segment;
    const call = {
      method: 'POST',
      path: vertexModelPath(profile.projectId ?? '', region, modelPath, streaming ? 'streamRawPredict' : 'rawPredict'),
      region,
      headers: { ...headers, 'content-type': 'application/json' },
      body: serialise(vertexBody),
      keyHeader: auth.header,
    };
    build = () => buildVertexRequest(runtime, profile, call);
    const named = { profile: profile.name, origin: new URL(vertexBaseUrl(profile, region)).origin };
    respond = (upstream, abort, extra) => {
      if (upstream.status >= 400) return sendAnthropicError(reply.raw, upstream, extra, named);
      return pipeWithTap(reply.raw, upstream, abort, extra, streaming ? new SseUsageTap() : new JsonUsageTap());
    };
  }
  await proxyCall({ runtime, request, reply, profile, route: 'unified', auth, requestedModel, upstreamModel, streaming, countTokens, maxTokens, build, respond });
}

async function pipeWithTap(res: ServerResponse, upstream: UpstreamResponse, abort: CallAbort, extra: Record<string, string>, tap: UsageTap) {
  const piped = await pipeToClient(res, upstream, abort, (c) => tap.write(c), extra);
  tap.end();
  return { outcome: piped.outcome === 'complete' ? ('ok' as const) : piped.outcome, firstByteMs: piped.firstByteMs, tap, error: piped.error };
}

/** The upstream of a call, as error messages name it. */
interface UpstreamName {
  profile: string;
  origin: string;
}

/** Error bodies and count_tokens answers are small: what is read of them, at most (the rest is dropped). */
const SMALL_BODY_LIMIT = 64 * 1024;

/**
 * Reads at most `SMALL_BODY_LIMIT` bytes of an upstream body; silence is bounded by the agent's body timeout. A body cut
 * short (a reset, a timeout) is an Errors.UpstreamCut naming the upstream. A client that leaves does not stop it: it is
 * small and bounded, and the audit line gets the upstream's message.
 */
async function readSmall(upstream: UpstreamResponse, named: UpstreamName, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of upstream.body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      // Leaving the loop destroys the body: the rest is never read.
      if (size >= SMALL_BODY_LIMIT) break;
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.name === 'AbortError') throw err;
    const cut = new Errors.UpstreamCut(named.profile, named.origin, `${what} (HTTP ${upstream.status}) ended after ${size} bytes: ${e.code ?? e.message}`);
    throw Object.assign(cut, { cause: err });
  }
  return Buffer.concat(chunks).subarray(0, SMALL_BODY_LIMIT).toString('utf8');
}

/** Reshapes a Bedrock (`{message}`) or Google (`{error:{message}}`) error into Anthropic's body; status kept. */
async function sendAnthropicError(res: ServerResponse, upstream: UpstreamResponse, extra: Record<string, string>, named: UpstreamName) {
  const text = await readSmall(upstream, named, 'its error answer');
  // Already Anthropic-shaped (Vertex often answers so): pass as is. Otherwise lift the provider's message.
  let message: string | undefined = text;
  try {
    const j = JSON.parse(text) as { type?: string; message?: unknown; Message?: unknown; error?: { message?: unknown } | Array<{ error?: { message?: unknown } }> } | null;
    const g = Array.isArray(j?.error) ? j.error[0]?.error : j?.error;
    const lifted = [j?.message, j?.Message, g?.message].find((m): m is string => typeof m === 'string');
    message = j?.type === 'error' ? undefined : (lifted ?? text);
  } catch {
    // Not JSON: the text is the message.
  }
  const type = anthropicTypeFor(undefined, upstream.status);
  const body = message ? anthropicErrorBody(type, message) : text;
  const headers = responseHeaders(upstream.headers);
  delete headers['content-length'];
  res.writeHead(upstream.status, { ...headers, 'content-type': 'application/json', ...extra });
  res.end(body);
  const tap = new JsonUsageTap();
  tap.collector.errorType = type;
  return { outcome: 'ok' as const, tap, error: message || undefined };
}

/** Bedrock CountTokens answers `{inputTokens}`; Anthropic clients expect `{input_tokens}`. Anything else is a 502. */
async function sendCountTokens(res: ServerResponse, upstream: UpstreamResponse, extra: Record<string, string>, named: UpstreamName) {
  const text = await readSmall(upstream, named, 'its count_tokens answer');
  let inputTokens: unknown;
  try {
    inputTokens = (JSON.parse(text) as { inputTokens?: unknown } | null)?.inputTokens;
  } catch {
    inputTokens = undefined;
  }
  if (typeof inputTokens !== 'number' || !Number.isSafeInteger(inputTokens) || inputTokens < 0) {
    const type = String(upstream.headers['content-type'] ?? 'no content type');
    throw new Errors.UpstreamBadAnswer(named.profile, named.origin, `count_tokens answered HTTP ${upstream.status} (${type}, ${text.length} characters) without a JSON {"inputTokens": <count>}`);
  }
  res.writeHead(200, { 'content-type': 'application/json', ...extra });
  res.end(JSON.stringify({ input_tokens: inputTokens }));
  return { outcome: 'ok' as const };
}

function listModels(reply: FastifyReply, profile: Profile, path: string): FastifyReply {
  const models = profileModels(profile).map((m) => ({ type: 'model', id: m.id, display_name: m.displayName, created_at: '2025-01-01T00:00:00Z' }));
  const one = /^\/v1\/models\/(.+)$/.exec(path);
  if (one) {
    const id = decodeURIComponent(one[1]);
    const m = models.find((x) => x.id === id);
    if (!m) throw new Errors.NotFound(`Profile "${profile.name}" has no model "${id}".`);
    return reply.type('application/json').send(m);
  }
  return reply.type('application/json').send({ data: models, has_more: false, first_id: models[0]?.id ?? null, last_id: models.at(-1)?.id ?? null });
}
