import { createHash } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { expandEnv, MissingEnvError } from '../config/expand';
import type { GatewayConfig } from '../config/validate';
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

type Labels = Record<string, string>;

/**
 * Counter values kept as plain numbers per label set and handed to prom-client when /metrics is read:
 * prom-client hashes the labels of every `inc(labels, n)` (about 1 µs each, up to seven per call).
 */
class Tally {
  private readonly series = new Map<string, { labels: Labels; value: number }>();

  add(id: string, labels: () => Labels, n: number): void {
    const s = this.series.get(id);
    if (s) s.value += n;
    else this.series.set(id, { labels: labels(), value: n });
  }

  /** A prom-client `collect` that publishes the tally. */
  collector(): (this: Counter<string>) => void {
    const series = this.series;
    return function (this: Counter<string>) {
      this.reset();
      for (const s of series.values()) this.inc(s.labels, s.value);
    };
  }
}

/** Budgets shown in /metrics: every scope but `key:<id>` (labels never carry key ids; GET /budgets shows those to admins). */
function labelled(budgets: BudgetStatus[]): BudgetStatus[] {
  return budgets.filter((b) => !b.scope.startsWith('key:'));
}

/**
 * The digest of the token that may scrape /metrics besides admin keys (config `metrics.token`, `${env:…}` expanded, or
 * `metrics.sha256`), or undefined when none is configured or its variable is unset.
 */
export function metricsTokenDigest(config: GatewayConfig, env: NodeJS.ProcessEnv): Buffer | undefined {
  const m = config.metrics;
  if (m.sha256) return Buffer.from(m.sha256, 'hex');
  if (m.token === undefined) return undefined;
  try {
    return createHash('sha256').update(expandEnv(m.token, 'metrics.token', 'the metrics token', env)).digest();
  } catch (err) {
    if (err instanceof MissingEnvError) return undefined;
    throw err;
  }
}

/**
 * The gateway's Prometheus metrics, in a registry of its own (several gateways can live in one process:
 * tests, the extension host). Labels never carry key ids or secrets; only admin keys and the metrics token read them.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly requests = new Tally();
  private readonly tokens = new Tally();
  private readonly cost = new Tally();
  private readonly errors = new Tally();
  private readonly latency: Histogram<'profile' | 'provider'>;

  constructor(budgets: () => BudgetStatus[]) {
    const registers = [this.registry];
    new Counter({ name: 'ccgw_requests_total', help: 'Model calls settled, by outcome', labelNames: ['profile', 'provider', 'model', 'status'], registers, collect: this.requests.collector() });
    new Counter({ name: 'ccgw_tokens_total', help: 'Tokens reported by upstreams, by kind', labelNames: ['profile', 'model', 'kind'], registers, collect: this.tokens.collector() });
    new Counter({ name: 'ccgw_cost_usd_total', help: 'Cost of model calls in USD at list prices', labelNames: ['profile', 'model'], registers, collect: this.cost.collector() });
    new Counter({ name: 'ccgw_errors_total', help: 'Calls that did not end well, by error type', labelNames: ['type'], registers, collect: this.errors.collector() });
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
        for (const b of labelled(budgets())) this.set({ scope: b.scope, period: b.period }, b.remainingUsd);
      },
    });
    new Gauge({
      name: 'ccgw_budget_limit_usd',
      help: 'The limit of each budget',
      labelNames: ['scope', 'period'],
      registers,
      collect() {
        this.reset();
        for (const b of labelled(budgets())) this.set({ scope: b.scope, period: b.period }, b.usd);
      },
    });
  }

  observe(c: SettledCall): void {
    const model = c.responseModel ?? c.upstreamModel ?? c.requestedModel ?? 'unknown';
    const pm = `${c.profile}\u0000${model}`;
    this.requests.add(`${pm}\u0000${c.provider}\u0000${c.status}`, () => ({ profile: c.profile, provider: c.provider, model, status: c.status }), 1);
    for (const k of KINDS) if (c.usage[k]) this.tokens.add(`${pm}\u0000${k}`, () => ({ profile: c.profile, model, kind: KIND_LABEL[k] }), c.usage[k]);
    if (c.costUsd) this.cost.add(pm, () => ({ profile: c.profile, model }), c.costUsd);
    if (c.status !== 'ok') {
      const type = c.errorType ?? c.status;
      this.errors.add(type, () => ({ type }), 1);
    }
    if (c.status !== 'rejected') this.latency.observe({ profile: c.profile, provider: c.provider }, c.latencyMs / 1000);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
