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
  app.get('/health', async () => {
    const accounting = runtime.accountant.health?.() as { audit?: { writable?: boolean; failOpen?: boolean }; store?: { reachable?: boolean; failOpen?: boolean } } | undefined;
    const audit = accounting?.audit;
    const store = accounting?.store;
    const away = audit?.writable === false ? audit.failOpen : store?.reachable === false ? store.failOpen : undefined;
    return {
      // "refusing": model calls get 503 until the audit log (or the store) can be written; "degraded": served without it (failOpen).
      status: away === undefined ? 'ok' : away ? 'degraded' : 'refusing',
      service: SERVICE_NAME,
      version: runtime.version,
      instanceId: runtime.instanceId,
      activeProfile: runtime.config.activeProfile,
      callsInFlight: runtime.callsInFlight,
      // Which store serves the keys, budgets and audit, and whether it answers (kind, reachable, failing part).
      store,
      accounting,
    };
  });
}
