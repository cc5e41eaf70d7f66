import type { BudgetRefusal, BudgetStatus } from '../accounting/budgets';
import type { RateHeadroom, RateRefusal } from '../accounting/rate-limits';
import type { UsageQuery, UsageReport } from '../accounting/usage-report';
import type { Period } from '../accounting/windows';
import type { BudgetConfig, RateLimitConfig } from '../config/schema';
import type { GatewayConfig } from '../config/validate';
import type { Disposable, Event } from '../events';

/**
 * A value now, or a Promise when the store must ask its backend first. The request path awaits only a real Promise
 * (`r instanceof Promise ? await r : r`), so a store that answers synchronously costs no extra turn of the event loop.
 */
export type Maybe<T> = T | Promise<T>;

/** A call's budget reservation, as the store that admitted it knows it (opaque to the accountant). */
export type StoreHold = object;

/** Budgets (USD per day, week or month per scope), admitted and settled by the store. */
export interface StoreBudgets {
  /** Budgets configured. */
  readonly size: number;
  reserve(scopes: readonly string[], estimateUsd: number, now: number): Maybe<StoreHold | BudgetRefusal>;
  settle(hold: StoreHold, scopes: readonly string[], costUsd: number, at: number): void;
  record(scopes: readonly string[], costUsd: number, at: number): void;
  statuses(now?: number): BudgetStatus[];
  /** Overrides a budget's limit for its current window; false when no such budget exists. */
  override(scope: string, period: Period, usd: number | undefined, at?: number, by?: string): Maybe<boolean>;
  configure(budgets: BudgetConfig[], now?: number): Maybe<void>;
}

/** Rate limits (requests and tokens per minute per scope). */
export interface StoreRates {
  readonly size: number;
  admit(scopes: readonly string[], now: number): Maybe<RateHeadroom | RateRefusal>;
  settle(scopes: readonly string[], tokens: number, now: number): void;
  configure(limits: RateLimitConfig[]): void;
}

/** The audit trail: one hash-chained record per event, queued and written in groups. */
export interface StoreAudit {
  /** Queues a record to be written with the others of this event-loop turn; false when it was dropped. */
  appendSoon(type: string, fields: Record<string, unknown>, now?: number): boolean;
  /** Queues a record and starts writing it now (lifecycle events). */
  append(type: string, fields: Record<string, unknown>, now?: number): boolean;
  /** Writes what is queued (the file store at once; the database store starts a write). */
  flush(): void;
}

/**
 * The store: where keys, budgets, rate-limit windows and the audit log live. One interface with two implementations
 * (files on this machine, PostgreSQL shared by replicas), chosen once at start; the accountant talks only to it.
 */
export interface GatewayStore extends Disposable {
  readonly kind: 'files' | 'postgres';
  readonly budgets: StoreBudgets;
  readonly rates: StoreRates;
  readonly audit: StoreAudit;
  /**
   * The error (a 503 in the Anthropic shape naming the store) while model calls must be refused: the store cannot be
   * reached or written. The accountant asks only when `failOpen` is false.
   */
  refusal(countTokens: boolean): Error | undefined;
  /** True when calls are served while the store is away (`store.failOpen`, or `audit.failOpen` for files). */
  readonly failOpen: boolean;
  /** Writes one settled call's record; the file store also keeps its usage index and head spend. */
  writeCall(record: Record<string, unknown>, scopes: readonly string[], costUsd: number, now: number): void;
  /** Applies a reloaded config's budgets and rate limits (the database store writes the limits and tells the other replicas). */
  reconfigure(config: GatewayConfig): void;
  /** GET /usage over the store. */
  usage(q: UsageQuery): Promise<UsageReport>;
  /** What /health shows about the store. */
  health(): Record<string, unknown>;
  /** Budget limits changed elsewhere (another replica's override or reload, heard by notification). */
  readonly onDidChangeBudgets?: Event<void>;
  /** Writes the stop record, then closes: queued records are written, leases returned. */
  close(stop: Record<string, unknown>): Promise<void>;
}

export function isStoreUnavailable(err: unknown): boolean {
  return (err as { code?: unknown } | undefined)?.code === 'CCGW_STORE_UNAVAILABLE';
}
