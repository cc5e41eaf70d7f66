import { Pool, type PoolConfig } from 'pg';
import type { BudgetConfig, RateLimitConfig } from '../../config/schema';
import type { Disposable } from '../../events';
import { PgAuditLog } from './audit';
import type { ChainKey } from './audit-chain';
import { PgBudgetLedger } from './budgets';
import { PgKeyStore } from './keys';
import { migrate, type MigrateResult } from './migrate';
import { PgNotifier } from './notifier';
import { PgRateLimiter } from './rates';
import { checkName, DEFAULT_SCHEMA, StoreError } from './sql';

export interface PgStoreOptions {
  /** postgres://user@host:port/database (the serving role's, or the owner's to migrate at start). */
  url: string;
  schema?: string;
  /** Connections in the pool (default 10); the store adds one listening connection. */
  poolSize?: number;
  /** How long to wait for a connection (default 5000 ms). */
  connectTimeoutMs?: number;
  /**
   * How long one query may take before it counts as a failure (default 5000 ms), so that a database that stops
   * answering (a network partition, a hung server) fails calls that need it instead of holding them.
   */
  queryTimeoutMs?: number;
  /** This replica's instance id: its audit chain and the name of its leases. */
  instanceId: string;
  /** The audit chain key (HMAC); without one, chains are plain SHA-256. */
  auditKey?: ChainKey;
  /** What audit_chains records about this replica (pid, version, host). */
  info?: Record<string, unknown>;
  budgets: readonly BudgetConfig[];
  rateLimits: readonly RateLimitConfig[];
  leaseMs?: number;
}

/** Why the store cannot serve now, for /health and the 503 message; `part` names what failed. */
export interface PgStoreFailure {
  part: 'audit' | 'budgets' | 'rateLimits' | 'notifications';
  code: string;
  message: string;
}

/**
 * The PostgreSQL store of one replica: a pool, one listening connection, and the keys, audit, budget and rate-limit
 * parts on them. `open` migrates (or checks) the schema under the migration lock, starts listening, and writes the
 * configured budget limits; it fails with a StoreError when the database cannot be reached or the schema is not usable.
 */
export class PgStore implements Disposable {
  private closed = false;

  private constructor(
    readonly pool: Pool,
    readonly schema: string,
    readonly migration: MigrateResult,
    readonly notifier: PgNotifier,
    readonly keys: PgKeyStore,
    readonly audit: PgAuditLog,
    readonly budgets: PgBudgetLedger,
    readonly rates: PgRateLimiter,
  ) {}

  static async open(o: PgStoreOptions): Promise<PgStore> {
    const schema = checkName(o.schema ?? DEFAULT_SCHEMA, 'store.schema');
    const config: PoolConfig = { connectionString: o.url, max: o.poolSize ?? 10, connectionTimeoutMillis: o.connectTimeoutMs ?? 5000, keepAlive: true };
    const pool = new Pool({ ...config, query_timeout: o.queryTimeoutMs ?? 5000 });
    // An idle connection that breaks (the server restarted) is reported here; the next query gets a new one.
    pool.on('error', () => undefined);
    let notifier: PgNotifier | undefined;
    try {
      // Migrating waits on the other replicas' migration lock for as long as they take: a pool without the query timeout.
      const migrating = new Pool({ ...config, max: 1 });
      migrating.on('error', () => undefined);
      const migration = await migrate(migrating, { schema })
        .catch((err: unknown) => {
          if (err instanceof StoreError) throw err;
          const e = err as { code?: string; message?: string };
          throw new StoreError(`the store (PostgreSQL at ${redactUrl(o.url)}) cannot be reached: ${e.message ?? e.code}`, 'CCGW_STORE_UNAVAILABLE', { cause: err });
        })
        .finally(() => migrating.end().catch(() => undefined));
      notifier = new PgNotifier({ connectionString: o.url, connectionTimeoutMillis: config.connectionTimeoutMillis }, [PgKeyStore.channel(schema), PgBudgetLedger.channel(schema)]);
      await notifier.start();
      const keys = new PgKeyStore(pool, schema, notifier);
      const audit = new PgAuditLog(pool, { schema, chain: o.instanceId, key: o.auditKey, info: o.info });
      const budgets = new PgBudgetLedger(pool, o.budgets, { schema, replica: o.instanceId, notifier, leaseMs: o.leaseMs });
      const rates = new PgRateLimiter(pool, o.rateLimits, { schema, replica: o.instanceId, leaseMs: o.leaseMs });
      await budgets.configure(o.budgets);
      return new PgStore(pool, schema, migration, notifier, keys, audit, budgets, rates);
    } catch (err) {
      await notifier?.close();
      await pool.end().catch(() => undefined);
      throw err;
    }
  }

  /** The first part that cannot reach the database now, if any. */
  get failure(): PgStoreFailure | undefined {
    const parts: Array<[PgStoreFailure['part'], { code: string; message: string } | undefined]> = [
      ['audit', this.audit.failure],
      ['budgets', this.budgets.failure],
      ['rateLimits', this.rates.failure],
      ['notifications', this.notifier.failure],
    ];
    for (const [part, f] of parts) if (f) return { part, ...f };
    return undefined;
  }

  /** What /health shows about the store. */
  health(): Record<string, unknown> {
    const f = this.failure;
    return {
      kind: 'postgres',
      schema: this.schema,
      schemaVersion: this.migration.version,
      reachable: !f,
      ...(f ? { error: f.code, failing: f.part } : {}),
      listening: this.notifier.listening,
      audit: { chain: this.audit.chain, pendingRecords: this.audit.pendingRecords, droppedRecords: this.audit.dropped, lastSeq: this.audit.lastSeq },
      budgets: this.budgets.size,
      rateLimits: this.rates.size,
    };
  }

  dispose(): void {
    void this.close();
  }

  /** Writes what is queued, returns every lease, stops listening and ends the pool. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.budgets.close(), this.rates.close(), this.audit.close()]).catch(() => undefined);
    this.keys.dispose();
    await this.notifier.close();
    await this.pool.end().catch(() => undefined);
  }
}

/** A connection URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the configured URL';
  }
}
