import type { FastifyInstance, RouteHandlerMethod } from 'fastify';
import type { GatewayRuntime } from '../../runtime';

/** The service name `/health` reports, so another window can tell our gateway from anything else on the port. */
export const SERVICE_NAME = 'claude-code-gateway';

/**
 * Routes that need no key: Claude Code's connection warm-up (`HEAD /` with no credentials) and `/health`.
 * None of them says anything secret.
 */
export function registerPublicRoutes(app: FastifyInstance, runtime: GatewayRuntime): void {
  const preconnect: RouteHandlerMethod = (_request, reply) => {
    reply.code(200).type('application/json').send({ service: SERVICE_NAME });
  };
  for (const url of ['/', '/anthropic', '/anthropic/']) {
    app.route({ method: ['GET', 'HEAD'], url, handler: preconnect, exposeHeadRoute: false });
  }
  app.get('/health', async () => ({
    status: 'ok',
    service: SERVICE_NAME,
    version: runtime.version,
    instanceId: runtime.instanceId,
    activeProfile: runtime.config.activeProfile,
    callsInFlight: runtime.callsInFlight,
    accounting: runtime.accountant.health?.(),
  }));
}
