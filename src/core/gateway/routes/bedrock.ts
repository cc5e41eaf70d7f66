import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Errors } from '../../errors';
import { BEDROCK_RUNTIME_ACTIONS, buildBedrockRequest } from '../../providers/bedrock';
import { confineModelId, confineModelSegment, mappedModel } from '../../providers/model-id';
import type { GatewayRuntime } from '../../runtime';
import { EventStreamUsageTap } from '../../streams/eventstream';
import { JsonUsageTap } from '../../streams/usage';
import { pipeToClient } from '../forward';
import { JsonScanError, scanJsonObject } from '../json-scan';
import { proxyCall } from '../proxy-call';
import { authenticate, pathProfile, wrongRoute, type ModelRouteOptions } from './model-routes';

const RUNTIME_PATH = /^\/model\/([^/?]+)\/([a-z-]+)$/;
const CONTROL_PATH = /^\/(inference-profiles|foundation-models)(\/[^/?]+)?$/;
// Paths the upstream could read differently from the gateway: dot segments, backslashes, empty segments, fragments, and
// percent-escapes of control or unreserved characters (`%2e%2e` is `..` upstream). Encoded slashes are checked apart.
const UNSAFE_CLOUD_PATH = /(^|\/)\.\.?(\/|$)|%5c|\\|\/\/|#|%(?:[01][0-9a-f]|7f|3[0-9]|[46][1-9a-f]|[57][0-9a]|2d|2e|5f|7e)/i;
// The one segment where Claude Code sends URL-encoded ARNs (`%3A`, `%2F`): the Bedrock model id.
const BEDROCK_MODEL_SEGMENT = /^\/model\/[^/?#]+/;

/**
 * The path after a route prefix exactly as the client sent it (no decoding), for routes registered both at
 * the root and under /profiles/:profile.
 */
export function rawRest(request: FastifyRequest, marker: string, pinned: boolean | undefined): string {
  const url = request.url;
  const pin = pinned ? (/^\/profiles\/[^/?#]*/.exec(url)?.[0] ?? '') : '';
  const after = url.slice(pin.length);
  // The router decodes before matching; a prefix matched in another spelling (/%62edrock/) is refused.
  if (!after.startsWith(`${marker}/`)) throw new Errors.UnsafePath(`The request path "${url.split('?')[0]}" is not allowed: spell the route prefix ${marker} literally.`);
  const rest = after.slice(marker.length);
  const path = rest.split('?')[0];
  // Encoded slashes only inside a Bedrock model id (an ARN); that id is decoded and checked again by its route.
  const outsideModelId = marker === '/bedrock' ? path.replace(BEDROCK_MODEL_SEGMENT, '/model/id') : path;
  if (UNSAFE_CLOUD_PATH.test(path) || rest.includes('#') || /%2f/i.test(outsideModelId)) {
    throw new Errors.UnsafePath(`The request path "${path}" is not allowed: dot segments, encoded slashes and dots, backslashes and fragments are refused.`);
  }
  return rest;
}

/** Model-invoking actions whose body is an Anthropic Messages request (its `max_tokens` sizes the reservation). */
const MESSAGES_ACTIONS = new Set(['invoke', 'invoke-with-response-stream']);

/**
 * The `max_tokens` of a native body that is forwarded unchanged, for the budget reservation, read by the fuzz-tested
 * scanner (what JSON.parse reads). A body that is not a JSON object is forwarded as before: the upstream refuses it, and
 * the reservation takes its default.
 */
export function maxTokensOf(body: Buffer | undefined): number | undefined {
  if (!body?.length) return undefined;
  try {
    const v = scanJsonObject(body, ['max_tokens']).max_tokens;
    return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
  } catch (err) {
    if (err instanceof JsonScanError) return undefined;
    throw err;
  }
}

function hasCredential(request: FastifyRequest): boolean {
  const h = request.headers;
  return Boolean(h.authorization || h['x-api-key'] || h['proxy-authorization']);
}

/** An AWS-shaped error, for answers the gateway gives in Bedrock's own voice. */
function awsError(reply: FastifyReply, status: number, type: string, message: string): FastifyReply {
  return reply.code(status).header('x-amzn-errortype', `${type}:http://internal.amazon.com/coral/com.amazonaws.bedrock/`).type('application/json').send({ message });
}

/** `/bedrock/*`: Claude Code in Bedrock mode (CLAUDE_CODE_USE_BEDROCK=1, SKIP auth) against a Bedrock profile. */
export function registerBedrockRoutes(app: FastifyInstance, runtime: GatewayRuntime, opts: ModelRouteOptions): void {
  app.all('/bedrock/*', async (request, reply) => {
    const rest = rawRest(request, '/bedrock', opts.pinned);
    const path = rest.split('?')[0];
    const control = CONTROL_PATH.exec(path);
    if (control && request.method === 'GET' && !hasCredential(request)) {
      // Claude Code's AWS SDK asks for inference profiles without any credential: answer here (it then uses
      // its built-in model ids) and never spend the gateway's AWS credentials on an anonymous request.
      return awsError(reply, 404, 'ResourceNotFoundException', 'The gateway does not list Bedrock inference profiles to unauthenticated callers.');
    }
    const auth = authenticate(runtime, request);
    const profile = runtime.resolveProfile(pathProfile(request), auth.key);
    if (profile.provider !== 'bedrock') throw wrongRoute(profile, '/bedrock');
    const body = Buffer.isBuffer(request.body) ? request.body : undefined;

    if (control) {
      // One resource id or ARN (an inference profile, a foundation model), confined like a model id.
      const resource = control[2] === undefined ? undefined : confineModelSegment('bedrock', control[2].slice(1));
      if (request.method !== 'GET') throw new Errors.InvalidRequest(`Only GET is forwarded to the Bedrock control plane (${path}).`);
      const query = rest.includes('?') ? rest.slice(rest.indexOf('?')) : '';
      const pathAndQuery = resource ? `/${control[1]}/${resource.segment}${query}` : rest;
      await proxyCall({
        runtime, request, reply, profile, route: 'bedrock', auth, streaming: false, countTokens: false,
        build: () => buildBedrockRequest(runtime, profile, { method: 'GET', pathAndQuery, headers: request.headers }, 'control'),
      });
      return;
    }

    const m = RUNTIME_PATH.exec(path);
    if (!m || !BEDROCK_RUNTIME_ACTIONS.has(m[2])) {
      throw new Errors.NotFound(`No Bedrock route for ${request.method} ${path}: the gateway serves /model/{id}/(${[...BEDROCK_RUNTIME_ACTIONS].join('|')}) and GET /inference-profiles, /foundation-models.`);
    }
    // The one confinement of model ids in upstream URLs: the path's id, then the profile map's output.
    const { id: modelId, segment: asSent } = confineModelSegment('bedrock', m[1]);
    const mapped = mappedModel(profile, modelId);
    const segment = mapped === undefined ? asSent : confineModelId('bedrock', mapped, { profile: profile.name, mappedFrom: modelId }).segment;
    const query = rest.includes('?') ? rest.slice(rest.indexOf('?')) : '';
    const action = m[2];
    const streaming = action === 'invoke-with-response-stream' || action === 'converse-stream';
    await proxyCall({
      runtime, request, reply, profile, route: 'bedrock', auth,
      requestedModel: modelId,
      upstreamModel: mapped ?? modelId,
      streaming,
      countTokens: action === 'count-tokens',
      maxTokens: MESSAGES_ACTIONS.has(action) ? maxTokensOf(body) : undefined,
      build: () => buildBedrockRequest(runtime, profile, { method: request.method, pathAndQuery: `/model/${segment}/${action}${query}`, headers: request.headers, body }, 'runtime'),
      respond: async (upstream, abort, headers) => {
        const ct = String(upstream.headers['content-type'] ?? '');
        const tap = ct.includes('application/vnd.amazon.eventstream') ? new EventStreamUsageTap() : new JsonUsageTap();
        // Byte for byte, content type included: Claude Code rejects a Bedrock stream in any other framing.
        const piped = await pipeToClient(reply.raw, upstream, abort, (c) => tap.write(c), headers);
        tap.end();
        return { outcome: piped.outcome === 'complete' ? 'ok' : piped.outcome, firstByteMs: piped.firstByteMs, tap, error: piped.error };
      },
    });
  });
}
