import type { FastifyInstance } from 'fastify';
import { Errors } from '../../errors';
import { googleTokensFor } from '../../credentials/google';
import { confineModelId, confineModelSegment, mappedModel } from '../../providers/model-id';
import { buildVertexRequest, VERTEX_REGION, vertexModelPath } from '../../providers/vertex';
import type { GatewayRuntime } from '../../runtime';
import { proxyCall } from '../proxy-call';
import { maxTokensOf, rawRest } from './bedrock';
import { authenticate, pathProfile, wrongRoute, type ModelRouteOptions } from './model-routes';

// /projects/{project}/locations/{region}/publishers/anthropic/models/{model}:{method}
const MODEL_PATH = /^\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/anthropic\/models\/([A-Za-z0-9._@-]+):(rawPredict|streamRawPredict)$/;

/** A path segment decoded; a malformed escape is a refused path, not a 500. */
function decodedSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new Errors.UnsafePath(`The path segment ${JSON.stringify(segment)} is not valid percent-encoding.`);
  }
}

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
    const [, rawProject, region, model, method] = m;
    const project = decodedSegment(rawProject);
    if (project !== profile.projectId) {
      throw new Errors.InvalidRequest(`The request is for Google Cloud project ${JSON.stringify(project)} but profile "${profile.name}" serves project "${profile.projectId}"; set ANTHROPIC_VERTEX_PROJECT_ID=${profile.projectId}.`);
    }
    if (!VERTEX_REGION.test(region)) throw new Errors.InvalidRequest(`"${region}" is not a Vertex AI region.`);
    const countTokens = model === 'count-tokens';
    // The one confinement of model ids in upstream URLs: the path's id, then the profile map's output.
    let upstreamModel = model;
    let segment = model;
    if (!countTokens) {
      const confined = confineModelSegment('vertex', model);
      const mapped = mappedModel(profile, confined.id);
      const out = mapped === undefined ? confined : confineModelId('vertex', mapped, { profile: profile.name, mappedFrom: confined.id });
      upstreamModel = out.id;
      segment = out.segment;
    }
    const upstreamPath = vertexModelPath(profile.projectId, region, segment, method as 'rawPredict' | 'streamRawPredict');
    const body = Buffer.isBuffer(request.body) ? request.body : undefined;
    await proxyCall({
      runtime, request, reply, profile, route: 'vertex', auth,
      requestedModel: countTokens ? undefined : model,
      upstreamModel: countTokens ? undefined : upstreamModel,
      streaming: method === 'streamRawPredict',
      countTokens,
      maxTokens: countTokens ? undefined : maxTokensOf(body),
      build: () => buildVertexRequest(runtime, profile, { method: 'POST', path: upstreamPath, region, headers: request.headers, body, keyHeader: auth.header }),
      // A 401 with the gateway's own token: the token may have been revoked early; one retry with a fresh one.
      canRefresh: () => profile.credentials === 'gateway',
      refresh: () => googleTokensFor(runtime).invalidate(profile),
    });
  });
}
