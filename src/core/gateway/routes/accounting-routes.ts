import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { BudgetStatus } from '../../accounting/budgets';
import { metricsTokenDigest } from '../../accounting/metrics';
import { parseSince, USAGE_GROUPS, usageReport, type UsageGroupBy } from '../../accounting/usage-report';
import type { Period } from '../../accounting/windows';
import { budgetSchema } from '../../config/schema';
import { Errors } from '../../errors';
import type { GatewayRuntime } from '../../runtime';
import { sha256, type GatewayKey } from '../keys';
import { jsonBody } from './events';
import { authenticate } from './model-routes';

/**
 * `GET /usage` (a key's own usage; every key's for admin keys), `GET /metrics` (Prometheus text; admin keys and the metrics token) and
 * `GET /budgets`, behind the same gateway keys as the model routes; `POST /budgets/override` for admin keys.
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
    const query = { since, until, by: q.by as UsageGroupBy | undefined, keyId };
    let report;
    if (runtime.accountant.usage) report = await runtime.accountant.usage(query);
    else {
      runtime.accountant.flush?.();
      report = await usageReport(runtime.config.audit.dir, query);
    }
    reply.type('application/json');
    return { ...report, budgets: visibleBudgets(runtime, auth.key) };
  });

  app.get('/budgets', async (request) => {
    const auth = authenticate(runtime, request);
    return { budgets: visibleBudgets(runtime, auth.key) };
  });

  app.post('/budgets/override', async (request) => {
    const auth = authenticate(runtime, request);
    if (!auth.key.admin) throw new Errors.Forbidden(`Key "${auth.key.id}" is not an admin key; only keys with "admin": true may override budgets.`);
    const { scope, period, usd } = overrideRequest(jsonBody<unknown>(request));
    const before = findBudget(runtime.budgets(), scope, period);
    if (usd === undefined && !before.overridden) return { budget: before, previousUsd: before.usd, changed: false };
    const overridden = runtime.overrideBudget(scope, before.period, usd, auth.key.id);
    if (!(overridden instanceof Promise ? await overridden : overridden)) {
      throw new Errors.Unavailable('This gateway runs without budget accounting, so its budgets cannot be overridden.');
    }
    return { budget: findBudget(runtime.budgets(), scope, before.period), previousUsd: before.usd, changed: true };
  });

  app.get('/metrics', async (request, reply) => {
    requireMetricsReader(runtime, request);
    const text = (await runtime.accountant.metrics?.()) ?? '';
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    return text;
  });
}

const metricsDigests = new WeakMap<object, { digest?: Buffer }>();

/**
 * /metrics shows every team's, project's and profile's spend and limits: only admin keys and the metrics token (config
 * `metrics.token`, sent as `Authorization: Bearer`) read it. Other keys get a 403; their own budgets are at GET /budgets.
 */
function requireMetricsReader(runtime: GatewayRuntime, request: FastifyRequest): void {
  let cached = metricsDigests.get(runtime.config);
  if (!cached) metricsDigests.set(runtime.config, (cached = { digest: metricsTokenDigest(runtime.config, runtime.env) }));
  const presented = /^Bearer\s+(\S+)\s*$/i.exec(String(request.headers.authorization ?? ''))?.[1];
  if (cached.digest && presented !== undefined && timingSafeEqual(sha256(presented), cached.digest)) return;
  const auth = authenticate(runtime, request);
  if (!auth.key.admin) {
    throw new Errors.Forbidden(
      `Key "${auth.key.id}" may not read /metrics: it shows every team's and project's budgets, so only admin keys and the metrics token (config "metrics.token") may scrape it. A key's own budgets are at GET /budgets.`,
    );
  }
}

/** A validated override request: `usd` undefined clears the override; `period` undefined means the scope's only budget. */
function overrideRequest(body: unknown): { scope: string; period?: Period; usd?: number } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Errors.InvalidRequest('The body must be a JSON object: {"scope", "period", "usd"}.');
  const b = body as { scope?: unknown; period?: unknown; usd?: unknown };
  const scope = budgetSchema.shape.scope.safeParse(b.scope);
  if (!scope.success) throw new Errors.InvalidRequest(`scope: ${scope.error.issues[0].message}, got ${JSON.stringify(b.scope ?? null)}.`);
  const period = b.period === undefined ? undefined : budgetSchema.shape.period.safeParse(b.period);
  if (period && !period.success) throw new Errors.InvalidRequest(`period: must be day, week or month, got ${JSON.stringify(b.period)}.`);
  if (b.usd === null) return { scope: scope.data, period: period?.data };
  const usd = budgetSchema.shape.usd.safeParse(b.usd);
  if (!usd.success || !Number.isFinite(b.usd)) {
    throw new Errors.InvalidRequest(`usd: must be a positive amount in USD (or null to clear the override), got ${JSON.stringify(b.usd ?? null)}.`);
  }
  return { scope: scope.data, period: period?.data, usd: usd.data };
}

/** The one budget an override names, or an error that lists the budgets there are. */
function findBudget(budgets: BudgetStatus[], scope: string, period: Period | undefined): BudgetStatus {
  const ofScope = budgets.filter((b) => b.scope === scope);
  const list = (bs: BudgetStatus[]) => bs.map((b) => `${b.scope} per ${b.period}`).join(', ');
  if (ofScope.length === 0) throw new Errors.UnknownBudget(`No budget for scope "${scope}" (budgets: ${list(budgets) || 'none configured'}).`);
  if (period === undefined) {
    if (ofScope.length > 1) throw new Errors.InvalidRequest(`Scope "${scope}" has a budget per ${ofScope.map((b) => b.period).join(' and per ')}; say which with "period" (\`budget override --period\` on the command line).`);
    return ofScope[0];
  }
  const budget = ofScope.find((b) => b.period === period);
  if (!budget) throw new Errors.UnknownBudget(`Scope "${scope}" has no budget per ${period} (it has one per ${ofScope.map((b) => b.period).join(' and per ')}).`);
  return budget;
}

/** Every budget for admin keys; for others, the budgets they fall under. */
function visibleBudgets(runtime: GatewayRuntime, key: GatewayKey): BudgetStatus[] {
  return runtime.budgets().filter((b) => key.admin || visibleTo(b.scope, key));
}

/** Budgets a non-admin key may see: global, its own, its team's and those of the projects it may charge. */
function visibleTo(scope: string, key: Pick<GatewayKey, 'id' | 'team' | 'project' | 'projects'>): boolean {
  if (scope.startsWith('project:') && key.projects) return key.projects === '*' || key.projects.includes(scope.slice('project:'.length)) || scope === `project:${key.project}`;
  return scope === 'global' || scope === `key:${key.id}` || (!!key.team && scope === `team:${key.team}`) || (!!key.project && scope === `project:${key.project}`) || scope.startsWith('profile:');
}
