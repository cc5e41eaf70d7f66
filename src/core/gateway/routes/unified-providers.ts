import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Profile } from '../../config/validate';
import { anthropicErrorBody, anthropicTypeFor, Errors } from '../../errors';
import { BEDROCK_ANTHROPIC_VERSION, buildBedrockRequest } from '../../providers/bedrock';
import { profileModels, upstreamModelId } from '../../providers/model-catalog';
import { buildVertexRequest, VERTEX_ANTHROPIC_VERSION, vertexModelPath } from '../../providers/vertex';
import type { GatewayRuntime } from '../../runtime';
import { pipeBedrockAsSse } from '../../streams/eventstream';
import { JsonUsageTap, SseUsageTap, type UsageTap } from '../../streams/usage';
import type { CallOutcome } from '../call';
import { pipeToClient, responseHeaders, type CallAbort, type UpstreamResponse } from '../forward';
import type { Authenticated } from '../keys';
import { proxyCall } from '../proxy-call';
import { registerBedrockRoutes } from './bedrock';
import { parseJsonObject, type ModelRouteOptions } from './model-routes';
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
  const upstreamModel = upstreamModelId(profile, requestedModel);
  const streaming = body.stream === true && !countTokens;
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
    let payload = JSON.stringify(invokeBody);
    if (countTokens) {
      action = 'count-tokens';
      delete invokeBody.stream;
      payload = JSON.stringify({ input: { invokeModel: { body: Buffer.from(JSON.stringify({ max_tokens: 1, ...invokeBody })).toString('base64') } } });
    }
    headers['content-type'] = 'application/json';
    const call = { method: 'POST', pathAndQuery: `/model/${encodeURIComponent(upstreamModel)}/${action}`, headers, body: Buffer.from(payload) };
    build = () => buildBedrockRequest(runtime, profile, call, 'runtime');
    respond = (upstream, abort, extra) => {
      if (upstream.status >= 400) return sendAnthropicError(reply.raw, upstream, extra);
      if (countTokens) return sendCountTokens(reply.raw, upstream, extra);
      if (streaming) return pipeBedrockAsSse(reply.raw, upstream, abort, extra).then((r) => ({ ...r, outcome: r.outcome === 'complete' ? 'ok' : r.outcome }));
      return pipeWithTap(reply.raw, upstream, abort, extra, new JsonUsageTap());
    };
  } else {
    const region = profile.region ?? 'global';
    const vertexBody: Record<string, unknown> = { ...body, anthropic_version: VERTEX_ANTHROPIC_VERSION };
    if (countTokens) vertexBody.model = upstreamModel;
    else delete vertexBody.model;
    const modelPath = countTokens ? 'count-tokens' : upstreamModel;
    const call = {
      method: 'POST',
      path: vertexModelPath(profile.projectId ?? '', region, modelPath, streaming ? 'streamRawPredict' : 'rawPredict'),
      region,
      headers: { ...headers, 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify(vertexBody)),
      keyHeader: auth.header,
    };
    build = () => buildVertexRequest(runtime, profile, call);
    respond = (upstream, abort, extra) => {
      if (upstream.status >= 400) return sendAnthropicError(reply.raw, upstream, extra);
      return pipeWithTap(reply.raw, upstream, abort, extra, streaming ? new SseUsageTap() : new JsonUsageTap());
    };
  }
  await proxyCall({ runtime, request, reply, profile, route: 'unified', auth, requestedModel, upstreamModel, streaming, countTokens, build, respond });
}

async function pipeWithTap(res: ServerResponse, upstream: UpstreamResponse, abort: CallAbort, extra: Record<string, string>, tap: UsageTap) {
  const piped = await pipeToClient(res, upstream, abort, (c) => tap.write(c), extra);
  tap.end();
  return { outcome: piped.outcome === 'complete' ? ('ok' as const) : piped.outcome, firstByteMs: piped.firstByteMs, tap, error: piped.error };
}

async function readSmall(upstream: UpstreamResponse): Promise<string> {
  const text = await upstream.body.text();
  return text.slice(0, 64 * 1024);
}

/** Reshapes a Bedrock (`{message}`) or Google (`{error:{message}}`) error into Anthropic's body; status kept. */
async function sendAnthropicError(res: ServerResponse, upstream: UpstreamResponse, extra: Record<string, string>) {
  const text = await readSmall(upstream);
  // Already Anthropic-shaped (Vertex often answers so): pass as is. Otherwise lift the provider's message.
  let message: string | undefined = text;
  try {
    const j = JSON.parse(text) as { type?: string; message?: string; Message?: string; error?: { message?: string } | Array<{ error?: { message?: string } }> };
    const g = Array.isArray(j.error) ? j.error[0]?.error : j.error;
    message = j.type === 'error' ? undefined : (j.message ?? j.Message ?? g?.message ?? text);
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

/** Bedrock CountTokens answers `{inputTokens}`; Anthropic clients expect `{input_tokens}`. */
async function sendCountTokens(res: ServerResponse, upstream: UpstreamResponse, extra: Record<string, string>) {
  const j = JSON.parse(await readSmall(upstream)) as { inputTokens?: number };
  res.writeHead(200, { 'content-type': 'application/json', ...extra });
  res.end(JSON.stringify({ input_tokens: j.inputTokens ?? 0 }));
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
