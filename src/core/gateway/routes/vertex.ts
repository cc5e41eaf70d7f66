import type { FastifyInstance } from 'fastify';
import { Errors } from '../../errors';
import { googleTokensFor } from '../../credentials/google';
import { buildVertexRequest, VERTEX_REGION } from '../../providers/vertex';
import type { GatewayRuntime } from '../../runtime';
import { proxyCall } from '../proxy-call';
import { rawRest } from './bedrock';
import { authenticate, pathProfile, wrongRoute, type ModelRouteOptions } from './model-routes';

// /projects/{project}/locations/{region}/publishers/anthropic/models/{model}:{method}
const MODEL_PATH = /^\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/anthropic\/models\/([A-Za-z0-9._@-]+):(rawPredict|streamRawPredict)$/;

/** `/vertex_ai/v1/*`: Claude Code in Vertex mode (CLAUDE_CODE_USE_VERTEX=1) against a Vertex profile. */
export function registerVertexRoutes(app: FastifyInstance, runtime: GatewayRuntime, opts: ModelRouteOptions): void {
  app.post('/vertex_ai/v1/*', async (request, reply) => {
    const auth = authenticate(runtime, request);
    const profile = runtime.resolveProfile(pathProfile(request), auth.key);
    if (profile.provider !== 'vertex') throw wrongRoute(profile, '/vertex_ai/v1');
    const rest = rawRest(request, '/vertex_ai/v1', opts.pinned);
    const path = rest.split('?')[0];
    const m = MODEL_PATH.exec(path);
    if (!m) {
      throw new Errors.NotFound(`No Vertex AI route for POST ${path}: the gateway serves /projects/{project}/locations/{region}/publishers/anthropic/models/{model}:(rawPredict|streamRawPredict) and models/count-tokens:rawPredict.`);
    }
    const [, project, region, model, method] = m;
    if (/^\.+$/.test(model)) throw new Errors.InvalidRequest(`"${model}" is not a Vertex AI model id.`);
    if (decodeURIComponent(project) !== profile.projectId) {
      throw new Errors.InvalidRequest(`The request is for Google Cloud project "${decodeURIComponent(project)}" but profile "${profile.name}" serves project "${profile.projectId}"; set ANTHROPIC_VERTEX_PROJECT_ID=${profile.projectId}.`);
    }
    if (!VERTEX_REGION.test(region)) throw new Errors.InvalidRequest(`"${region}" is not a Vertex AI region.`);
    const countTokens = model === 'count-tokens';
    const upstreamModel = profile.models?.map?.[model] ?? model;
    const upstreamPath = `/v1/projects/${project}/locations/${region}/publishers/anthropic/models/${upstreamModel}:${method}`;
    const body = Buffer.isBuffer(request.body) ? request.body : undefined;
    await proxyCall({
      runtime, request, reply, profile, route: 'vertex', auth,
      requestedModel: countTokens ? undefined : model,
      upstreamModel: countTokens ? undefined : upstreamModel,
      streaming: method === 'streamRawPredict',
      countTokens,
      build: () => buildVertexRequest(runtime, profile, { method: 'POST', path: upstreamPath, region, headers: request.headers, body, keyHeader: auth.header }),
      // A 401 with the gateway's own token: the token may have been revoked early; one retry with a fresh one.
      canRefresh: () => profile.credentials === 'gateway',
      refresh: () => googleTokensFor(runtime).invalidate(profile),
    });
  });
}
