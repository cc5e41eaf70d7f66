import type { BudgetStatus } from '../../accounting/budgets';
import { windowAt, type Period, type Window } from '../../accounting/windows';

/** A lease on a slice of a budget window's room lasts this long unless renewed (a killed replica's slice returns after it). */
export const LEASE_MS = 60_000;
/** Settled spend is sent in batches at most this often (and at once when SYNC_CALLS settled since the last batch). */
export const SYNC_MS = 200;
export const SYNC_CALLS = 1000;
/** A replica asks for this share of a window's remaining room at a time (at least what the waiting calls need). */
export const SLICE_FRACTION = 0.1;
/** An unused slice is returned after this long without a call in its budget. */
export const IDLE_RETURN_MS = 2000;
/** After the database found no room (or no admission to lease), calls are refused locally for this long (a notice of an override ends it at once). */
export const EXHAUSTED_MS = 250;
/** A lease is used only until this long before it ends by the replica's clock (the database's may run a little behind). */
export const LEASE_MARGIN_MS = 5000;

/** Something this replica syncs with the database, one sync in flight at a time. */
export interface Synced {
  syncing?: Promise<boolean>;
  nextSync?: Promise<boolean>;
}

/**
 * Runs `syncNow` for `x` with one in flight at a time: everyone who asks while one is in flight shares the one after it
 * (which carries what they wait for).
 */
export function syncOneAtATime<T extends Synced>(x: T, syncNow: (x: T) => Promise<boolean>): Promise<boolean> {
  if (x.syncing) {
    x.nextSync ??= x.syncing.then(() => {
      x.nextSync = undefined;
      return syncOneAtATime(x, syncNow);
    });
    return x.nextSync;
  }
  x.syncing = syncNow(x).finally(() => {
    x.syncing = undefined;
  });
  return x.syncing;
}

/** One budget's state on this replica, for the current window. */
export interface Slice extends Synced {
  scope: string;
  period: Period;
  configuredUsd: number;
  window: Window;
  /** The effective limit (override or configured) as the database last said. */
  limit: number;
  overridden: boolean;
  /** The lease as the database holds it (includes unflushed and in-flight spend). */
  granted: number;
  /** Reservations of this replica's calls in flight. */
  reserved: number;
  /** Settled cost not yet sent. */
  unflushed: number;
  /** Settled cost in the batch in flight. */
  sending: number;
  settles: number;
  /** Spent in the window (all replicas) and other replicas' leases, as last read. */
  spent: number;
  others: number;
  /** This replica's clock: the lease may be used until then. */
  leaseUntil: number;
  exhaustedUntil: number;
  lastActivity: number;
  /** Reservations waiting for the database. */
  waiting: number;
  /** Sum of reservation sizes asked of the database (the largest one is `need`). */
  need: number;
  /** Return the unused slice at the next sync (an override lowered the limit). */
  giveBack: boolean;
}

/** A budget's status as this replica knows it; `leasedUsd` is room other replicas hold. */
export interface StoreBudgetStatus extends BudgetStatus {
  leasedUsd: number;
}

/** A budget nothing has been leased or spent for yet on this replica. */
export function freshSlice(scope: string, period: Period, usd: number, now: number): Slice {
  return {
    scope,
    period,
    configuredUsd: usd,
    window: windowAt(period, now),
    limit: usd,
    overridden: false,
    granted: 0,
    reserved: 0,
    unflushed: 0,
    sending: 0,
    settles: 0,
    spent: 0,
    others: 0,
    leaseUntil: 0,
    exhaustedUntil: 0,
    // Never used yet: a sync (a refresh for GET /budgets) reads it without leasing room for it.
    lastActivity: 0,
    waiting: 0,
    need: 0,
    giveBack: false,
  };
}

/** Room of a slice not held by a call in flight or by settled spend. */
export function free(s: Slice): number {
  return s.granted - s.reserved - s.unflushed - s.sending;
}

/** Room this replica would like to hold free in a slice: a tenth of what is left, at least what waits. */
export function desiredFree(s: Slice): number {
  const left = Math.max(0, s.limit - s.spent - s.others - s.unflushed - s.sending);
  return Math.max(s.waiting, left * SLICE_FRACTION);
}

/** A slice as BudgetStatus (spend read at the last batch, plus this replica's unsent spend). */
export function statusOf(s: Slice): StoreBudgetStatus {
  const spent = s.spent + s.unflushed + s.sending;
  return {
    scope: s.scope,
    period: s.period,
    usd: s.limit,
    spentUsd: spent,
    reservedUsd: s.reserved,
    leasedUsd: s.others,
    remainingUsd: Math.max(0, s.limit - spent),
    resetsAt: new Date(s.window.end).toISOString(),
    ...(s.overridden ? { overridden: true } : {}),
  };
}
