import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { SettledCall } from '../gateway/call';
import type { BudgetStatus } from './budgets';

const KINDS = ['input', 'output', 'cacheWrite5m', 'cacheWrite1h', 'cacheRead'] as const;
const KIND_LABEL: Record<(typeof KINDS)[number], string> = {
  input: 'input',
  output: 'output',
  cacheWrite5m: 'cache_write_5m',
  cacheWrite1h: 'cache_write_1h',
  cacheRead: 'cache_read',
};

/**
 * The gateway's Prometheus metrics, in a registry of its own (several gateways can live in one process:
 * tests, the extension host). Labels never carry key ids or secrets.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'profile' | 'provider' | 'model' | 'status'>;
  private readonly tokens: Counter<'profile' | 'model' | 'kind'>;
  private readonly cost: Counter<'profile' | 'model'>;
  private readonly errors: Counter<'type'>;
  private readonly latency: Histogram<'profile' | 'provider'>;

  constructor(budgets: () => BudgetStatus[]) {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'ccgw_requests_total', help: 'Model calls settled, by outcome', labelNames: ['profile', 'provider', 'model', 'status'], registers });
    this.tokens = new Counter({ name: 'ccgw_tokens_total', help: 'Tokens reported by upstreams, by kind', labelNames: ['profile', 'model', 'kind'], registers });
    this.cost = new Counter({ name: 'ccgw_cost_usd_total', help: 'Cost of model calls in USD at list prices', labelNames: ['profile', 'model'], registers });
    this.errors = new Counter({ name: 'ccgw_errors_total', help: 'Calls that did not end well, by error type', labelNames: ['type'], registers });
    this.latency = new Histogram({
      name: 'ccgw_upstream_latency_seconds',
      help: 'Time from the start of a call to its end',
      labelNames: ['profile', 'provider'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    new Gauge({
      name: 'ccgw_budget_remaining_usd',
      help: 'USD left in each budget for its current UTC window',
      labelNames: ['scope', 'period'],
      registers,
      collect() {
        this.reset();
        for (const b of budgets()) this.set({ scope: b.scope, period: b.period }, b.remainingUsd);
      },
    });
    new Gauge({
      name: 'ccgw_budget_limit_usd',
      help: 'The limit of each budget',
      labelNames: ['scope', 'period'],
      registers,
      collect() {
        this.reset();
        for (const b of budgets()) this.set({ scope: b.scope, period: b.period }, b.usd);
      },
    });
  }

  observe(c: SettledCall): void {
    const model = c.responseModel ?? c.upstreamModel ?? c.requestedModel ?? 'unknown';
    this.requests.inc({ profile: c.profile, provider: c.provider, model, status: c.status });
    for (const k of KINDS) if (c.usage[k]) this.tokens.inc({ profile: c.profile, model, kind: KIND_LABEL[k] }, c.usage[k]);
    if (c.costUsd) this.cost.inc({ profile: c.profile, model }, c.costUsd);
    if (c.status !== 'ok') this.errors.inc({ type: c.errorType ?? c.status });
    if (c.status !== 'rejected') this.latency.observe({ profile: c.profile, provider: c.provider }, c.latencyMs / 1000);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
