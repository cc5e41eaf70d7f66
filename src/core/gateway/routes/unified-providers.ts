import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Profile } from '../../config/validate';
import { Errors } from '../../errors';
import type { GatewayRuntime } from '../../runtime';
import type { Authenticated } from '../keys';

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
