import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Profile } from '../../config/validate';
import { Errors } from '../../errors';
import type { GatewayRuntime } from '../../runtime';
import type { Authenticated } from '../keys';
import { registerBedrockRoutes } from './bedrock';
import { registerVertexRoutes } from './vertex';
import type { ModelRouteOptions } from './model-routes';

/** The provider-native routes: `/bedrock/*` and `/vertex_ai/v1/*`. */
export function registerCloudRoutes(app: FastifyInstance, runtime: GatewayRuntime, opts: ModelRouteOptions): void {
  registerBedrockRoutes(app, runtime, opts);
  registerVertexRoutes(app, runtime, opts);
}

/** The unified endpoint for profiles whose upstream speaks another wire format (Bedrock, Vertex AI). */
export async function unifiedForProvider(
  _runtime: GatewayRuntime,
  _request: FastifyRequest,
  _reply: FastifyReply,
  _auth: Authenticated,
  profile: Profile,
  _pathAndQuery: string,
): Promise<void> {
  throw new Errors.WrongRoute(`The unified endpoint does not serve ${profile.provider} profiles yet (profile "${profile.name}").`);
}
