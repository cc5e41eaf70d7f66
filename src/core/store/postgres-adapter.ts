import { hostname } from 'node:os';
import type { BudgetRefusal } from '../accounting/budgets';
import type { UsageQuery, UsageReport } from '../accounting/usage-report';
import type { Period } from '../accounting/windows';
import { expandEnv } from '../config/expand';
import type { GatewayConfig, StoreConfig } from '../config/validate';
import { Emitter, type Event } from '../events';
import { Errors } from '../errors';
import type { ChainKey } from './postgres/audit-chain';
import type { StoreBudgetHold } from './postgres/budgets';
import { PgStore, redactUrl } from './postgres/store';
import { storeUsageReport } from './postgres/usage';
import type { GatewayStore, Maybe, StoreAudit, StoreBudgets, StoreHold } from './store';

export type PgStoreConfig = Extract<StoreConfig, { kind: 'postgres' }>;

/** The audit chain key: the UTF-8 bytes of `store.auditKey` once expanded (what `audit verify` uses too), or none. */
export function pgAuditKey(store: PgStoreConfig, env: NodeJS.ProcessEnv = process.env): ChainKey {
  return store.auditKey === undefined ? undefined : Buffer.from(expandEnv(store.auditKey, 'store.auditKey', 'the audit chain', env), 'utf8');
}

/**
 * Opens the configured PostgreSQL store for one replica (migrating or checking the schema, listening, writing the
 * budget limits) and adapts it to the gateway's store interface. Fails with a StoreError naming the database
 * (without its password) when it cannot be reached.
 */
export async function openPostgresStore(config: GatewayConfig, info: { instanceId: string; version: string; env?: NodeJS.ProcessEnv }): Promise<PostgresStore> {
  const store = config.store as PgStoreConfig;
  const env = info.env ?? process.env;
  const url = expandEnv(store.url, 'store.url', 'the PostgreSQL store', env);
  const pg = await PgStore.open({
    url,
    schema: store.schema,
    poolSize: store.poolSize,
    connectTimeoutMs: store.connectTimeoutMs,
    queryTimeoutMs: store.queryTimeoutMs,
    instanceId: info.instanceId,
    auditKey: pgAuditKey(store, env),
    info: { pid: process.pid, version: info.version, host: hostname() },
    budgets: config.budgets,
    rateLimits: config.rateLimits,
  });
  const opened = new PostgresStore(pg, config, redactUrl(url));
  opened.audit.append('start', { instance: info.instanceId, version: info.version, pid: process.pid, schemaVersion: pg.migration.version });
  return opened;
}

/**
 * The PostgreSQL store behind the gateway's store interface: budgets and rate limits leased in slices (admitted
 * locally in steady state; a Promise only when a slice must grow), the audit log as this replica's chain, limits
 * changed on any replica heard by notification.
 */
export class PostgresStore implements GatewayStore {
  readonly kind = 'postgres';
  readonly budgets: StoreBudgets;
  readonly audit: StoreAudit;
  private readonly changes = new Emitter<void>();
  readonly onDidChangeBudgets: Event<void> = this.changes.event;
  private closed = false;

  constructor(
    readonly pg: PgStore,
    private config: GatewayConfig,
    /** The database's URL without its password, for messages. */
    readonly where: string,
  ) {
    const ledger = pg.budgets;
    this.budgets = {
      get size() {
        return ledger.size;
      },
      reserve: (scopes, usd, now): Maybe<StoreHold | BudgetRefusal> => ledger.reserve(scopes, usd, now),
      settle: (hold, scopes, usd, at) => ledger.settle(hold as StoreBudgetHold, scopes, usd, at),
      record: (scopes, usd, at) => ledger.record(scopes, usd, at),
      statuses: (now) => ledger.statuses(now),
      override: (scope: string, period: Period, usd: number | undefined, at?: number, by?: string) => ledger.override(scope, period, usd, at, by),
      configure: (budgets, now) => ledger.configure(budgets, now),
    };
    const log = pg.audit;
    this.audit = {
      appendSoon: (type, fields, now) => log.append(type, fields, now),
      append: (type, fields, now) => log.append(type, fields, now),
      flush: () => void log.flush(),
    };
    ledger.onDidChangeLimit(() => this.changes.fire());
  }

  get rates(): PgStore['rates'] {
    return this.pg.rates;
  }

  get failOpen(): boolean {
    return this.config.store.kind === 'postgres' && this.config.store.failOpen === true;
  }

  refusal(countTokens: boolean): Error | undefined {
    if (countTokens) return undefined;
    const f = this.pg.failure;
    return f ? this.unavailable(`${f.part}: ${f.message}`) : undefined;
  }

  /** The 503 for a call the store cannot serve now, naming the store and what failed (not where it is: the operator's log says that). */
  unavailable(detail: string): Error {
    return new Errors.StoreUnavailable(
      `The gateway's store (PostgreSQL) cannot be reached (${detail}), so it refuses model calls. They are served again as soon as it answers; set "store.failOpen": true to serve without it meanwhile.`,
    );
  }

  writeCall(record: Record<string, unknown>, _scopes: readonly string[], _costUsd: number, now: number): void {
    this.pg.audit.append('call', record, now);
  }

  reconfigure(config: GatewayConfig): void {
    this.config = config;
    // Writes the limits into the database, whose trigger tells the other replicas; a failure shows in /health.
    this.pg.budgets.configure(config.budgets).catch(() => undefined);
    this.pg.rates.configure(config.rateLimits);
  }

  usage(q: UsageQuery): Promise<UsageReport> {
    return storeUsageReport(this.pg.pool, q, { schema: this.pg.schema });
  }

  health(): Record<string, unknown> {
    const f = this.pg.failure;
    const audit = this.pg.audit;
    return {
      // Not where the database is: /health answers without a key.
      store: { ...this.pg.health(), failOpen: this.failOpen },
      audit: {
        writable: !audit.failure,
        failOpen: this.failOpen,
        ...(audit.failure ? { error: audit.failure.code } : {}),
        pendingRecords: audit.pendingRecords,
        droppedRecords: audit.dropped,
        bodies: this.config.audit.bodies,
      },
      ...(f ? { storeError: f.code } : {}),
      budgets: this.pg.budgets.size,
      rateLimits: this.pg.rates.size,
    };
  }

  async close(stop: Record<string, unknown>): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pg.audit.append('stop', stop);
    this.changes.dispose();
    await this.pg.close();
  }

  dispose(): void {
    void this.close({});
  }
}
