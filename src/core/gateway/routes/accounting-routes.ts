import type { FastifyInstance } from 'fastify';
import { parseSince, USAGE_GROUPS, usageReport, type UsageGroupBy } from '../../accounting/usage-report';
import { Errors } from '../../errors';
import type { GatewayRuntime } from '../../runtime';
import { authenticate } from './model-routes';

/**
 * `GET /usage` (a key's own usage; every key's for admin keys) and `GET /metrics` (Prometheus text), both
 * behind the same gateway keys as the model routes.
 */
export function registerAccountingRoutes(app: FastifyInstance, runtime: GatewayRuntime): void {
  app.get('/usage', async (request, reply) => {
    const auth = authenticate(runtime, request);
    const q = request.query as { since?: string; until?: string; by?: string; key?: string };
    if (q.by !== undefined && !(USAGE_GROUPS as readonly string[]).includes(q.by)) {
      throw new Errors.InvalidRequest(`by: must be one of ${USAGE_GROUPS.join(', ')}, got "${q.by}"`);
    }
    let since: number;
    let until: number | undefined;
    try {
      since = parseSince(q.since);
      until = q.until ? parseSince(q.until) : undefined;
    } catch (err) {
      throw new Errors.InvalidRequest((err as Error).message);
    }
    if (q.key !== undefined && !auth.key.admin && q.key !== auth.key.id) {
      throw new Errors.Forbidden(`Key "${auth.key.id}" may only read its own usage; admin keys read every key's.`);
    }
    const keyId = auth.key.admin ? q.key : auth.key.id;
    const report = usageReport(runtime.config.audit.dir, { since, until, by: q.by as UsageGroupBy | undefined, keyId });
    reply.type('application/json');
    return { ...report, budgets: runtime.budgets().filter((b) => auth.key.admin || visibleTo(b.scope, auth.key)) };
  });

  app.get('/metrics', async (request, reply) => {
    authenticate(runtime, request);
    const text = (await runtime.accountant.metrics?.()) ?? '';
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    return text;
  });
}

/** Budgets a non-admin key may see: global, its own, its team's and project's. */
function visibleTo(scope: string, key: { id: string; team?: string; project?: string }): boolean {
  return scope === 'global' || scope === `key:${key.id}` || (!!key.team && scope === `team:${key.team}`) || (!!key.project && scope === `project:${key.project}`) || scope.startsWith('profile:');
}
