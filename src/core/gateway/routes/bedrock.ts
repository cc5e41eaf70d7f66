import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Errors } from '../../errors';
import { BEDROCK_RUNTIME_ACTIONS, buildBedrockRequest } from '../../providers/bedrock';
import type { GatewayRuntime } from '../../runtime';
import { EventStreamUsageTap } from '../../streams/eventstream';
import { JsonUsageTap } from '../../streams/usage';
import { pipeToClient } from '../forward';
import { proxyCall } from '../proxy-call';
import { authenticate, pathProfile, wrongRoute, type ModelRouteOptions } from './model-routes';

const RUNTIME_PATH = /^\/model\/([^/?]+)\/([a-z-]+)$/;
const CONTROL_PATH = /^\/(inference-profiles|foundation-models)(\/[^/?]+)?$/;
// What a model id or ARN may contain once decoded (ARNs carry ':' and '/').
const MODEL_ID = /^[A-Za-z0-9._:@/+-]+$/;
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
  if (!after.startsWith(`${marker}/`)) throw new Errors.InvalidRequest(`The request path "${url.split('?')[0]}" is not allowed: spell the route prefix ${marker} literally.`);
  const rest = after.slice(marker.length);
  const path = rest.split('?')[0];
  // Encoded slashes only inside a Bedrock model id (an ARN); that id is decoded and checked again by its route.
  const outsideModelId = marker === '/bedrock' ? path.replace(BEDROCK_MODEL_SEGMENT, '/model/id') : path;
  if (UNSAFE_CLOUD_PATH.test(path) || rest.includes('#') || /%2f/i.test(outsideModelId)) {
    throw new Errors.InvalidRequest(`The request path "${path}" is not allowed: dot segments, encoded slashes and dots, backslashes and fragments are refused.`);
  }
  return rest;
}

/** A decoded model id or ARN, or undefined when it is not one (bad escapes, other characters, dot segments). */
function modelIdOf(segment: string): string | undefined {
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch {
    return undefined;
  }
  return MODEL_ID.test(id) && !id.split('/').some((s) => s === '' || s === '.' || s === '..') ? id : undefined;
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
      if (control[2] !== undefined && modelIdOf(control[2].slice(1)) === undefined) throw new Errors.InvalidRequest(`"${control[2].slice(1)}" is not a Bedrock resource id or ARN.`);
      if (request.method !== 'GET') throw new Errors.InvalidRequest(`Only GET is forwarded to the Bedrock control plane (${path}).`);
      await proxyCall({
        runtime, request, reply, profile, route: 'bedrock', auth, streaming: false, countTokens: false,
        build: () => buildBedrockRequest(runtime, profile, { method: 'GET', pathAndQuery: rest, headers: request.headers }, 'control'),
      });
      return;
    }

    const m = RUNTIME_PATH.exec(path);
    if (!m || !BEDROCK_RUNTIME_ACTIONS.has(m[2])) {
      throw new Errors.NotFound(`No Bedrock route for ${request.method} ${path}: the gateway serves /model/{id}/(${[...BEDROCK_RUNTIME_ACTIONS].join('|')}) and GET /inference-profiles, /foundation-models.`);
    }
    const modelId = modelIdOf(m[1]);
    if (modelId === undefined) throw new Errors.InvalidRequest(`"${m[1]}" is not a Bedrock model id or ARN.`);
    const mapped = profile.models?.map?.[modelId];
    const segment = mapped ? encodeURIComponent(mapped) : m[1];
    const query = rest.includes('?') ? rest.slice(rest.indexOf('?')) : '';
    const action = m[2];
    const streaming = action === 'invoke-with-response-stream' || action === 'converse-stream';
    await proxyCall({
      runtime, request, reply, profile, route: 'bedrock', auth,
      requestedModel: modelId,
      upstreamModel: mapped ?? modelId,
      streaming,
      countTokens: action === 'count-tokens',
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
