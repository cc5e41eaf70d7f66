import type { Pool } from 'pg';
import type { Disposable } from '../../events';
import { GENESIS, sealRecord, type ChainKey, type SealedRow } from './audit-chain';
import { backoff, checkName, DEFAULT_SCHEMA, ident, sqlState } from './sql';

/** Records kept in memory while the database is away; beyond this they are dropped (and a `gap` record says how many). */
export const MAX_PENDING_RECORDS = 10_000;
/** At most this many records go in one INSERT (a long backlog is written in pieces). */
const MAX_BATCH = 1000;
/** How often a chain records the heads of the other chains (so that a chain's removed tail is noticed). */
export const CHECKPOINT_MS = 60_000;

/** Why the store's audit log cannot be written now, for /health and the 503 message. */
export interface StoreAuditFailure {
  code: string;
  message: string;
}

export interface PgAuditOptions {
  schema?: string;
  /** This replica's chain: its instance id (a new id per process start gives a new chain). */
  chain: string;
  /** The chain key (HMAC); see ChainKey. */
  key?: ChainKey;
  /** What the chain records about its writer in audit_chains (pid, version, host). */
  info?: Record<string, unknown>;
  /** Checkpoint interval; 0 turns the timer off (checkpoint() can still be called). */
  checkpointMs?: number;
}

interface Pending {
  type: string;
  fields: Record<string, unknown>;
  now: number;
}

/**
 * The audit log of one replica in the store: its own hash chain (chain id = instance id; seq, prev and hash as the
 * file log has them), so replicas never wait on each other to append. Records are written by group commit: every
 * record queued in one event-loop turn goes into one INSERT (of up to 1000 rows) at `setImmediate`, one INSERT in
 * flight at a time so that the chain is written in order.
 *
 * While the database is away, records stay in memory in order (up to MAX_PENDING_RECORDS) and the INSERT is retried
 * with backoff; `failure` and `pendingRecords` say so for /health, and the accountant refuses model calls unless
 * failOpen. A record is sealed only when its INSERT is sent, from the last head known to be in the table; after a
 * failure whose outcome is unknown (the connection broke during COMMIT), the chain's head is read back first, so a
 * batch is neither lost nor written twice.
 */
export class PgAuditLog implements Disposable {
  private readonly table: string;
  private readonly chainsTable: string;
  private queue: Pending[] = [];
  private seq = 0;
  private prev = GENESIS;
  private ready = false;
  /** The last INSERT failed without knowing whether it committed: read the head back before sealing again. */
  private uncertain?: { before: { seq: number; hash: string }; last: SealedRow; count: number };
  private inFlight?: Promise<boolean>;
  private scheduled = false;
  private attempt = 0;
  private retryTimer?: NodeJS.Timeout;
  private checkpointTimer?: NodeJS.Timeout;
  private closed = false;
  private _failure?: StoreAuditFailure;
  /** Records lost for good: more than MAX_PENDING_RECORDS waited, or some still waited at close. */
  dropped = 0;
  private droppedUnrecorded = 0;
  /** Records written by this process. */
  written = 0;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly pool: Pool,
    private readonly options: PgAuditOptions,
  ) {
    const s = ident(checkName(options.schema ?? DEFAULT_SCHEMA, 'store.schema'));
    this.table = `${s}.audit`;
    this.chainsTable = `${s}.audit_chains`;
    const every = options.checkpointMs ?? CHECKPOINT_MS;
    if (every > 0) {
      this.checkpointTimer = setInterval(() => void this.checkpoint(), every);
      this.checkpointTimer.unref();
    }
  }

  get chain(): string {
    return this.options.chain;
  }

  /** Set while records cannot be written. */
  get failure(): StoreAuditFailure | undefined {
    return this._failure;
  }

  /** Records waiting for the database (0 while it is reachable and nothing is queued). */
  get pendingRecords(): number {
    return this.queue.length;
  }

  get lastSeq(): number {
    return this.seq;
  }

  /** Queues one record for this turn's INSERT; false when it was dropped (too many already wait). */
  append(type: string, fields: Record<string, unknown>, now = Date.now()): boolean {
    if (this.queue.length >= MAX_PENDING_RECORDS) {
      this.dropped++;
      this.droppedUnrecorded++;
      return false;
    }
    this.queue.push({ type, fields, now });
    if (!this.scheduled && !this.retryTimer) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        void this.flush();
      });
    }
    return true;
  }

  /** Writes everything queued so far (after the INSERT in flight, if any); true when all of it is in the table. */
  async flush(): Promise<boolean> {
    while (this.inFlight) await this.inFlight;
    this.inFlight = this.writeAll().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async writeAll(): Promise<boolean> {
    try {
      if (!this.ready) await this.open();
      if (this.uncertain) await this.settleUncertain();
      while (this.queue.length) {
        if (this.droppedUnrecorded && this.queue.length < MAX_PENDING_RECORDS) {
          const n = this.droppedUnrecorded;
          this.droppedUnrecorded = 0;
          this.queue.push({ type: 'gap', fields: { reason: 'dropped', records: n, detail: `${n} records were dropped while the store was away (more than ${MAX_PENDING_RECORDS} waited)` }, now: Date.now() });
        }
        const batch = this.queue.slice(0, MAX_BATCH);
        const rows: SealedRow[] = [];
        let prev = this.prev;
        for (let i = 0; i < batch.length; i++) {
          const r = batch[i];
          const row = sealRecord(this.options.chain, this.seq + 1 + i, new Date(r.now).toISOString(), r.type, r.fields, prev, this.options.key);
          rows.push(row);
          prev = row.hash;
        }
        const before = { seq: this.seq, hash: this.prev };
        try {
          await this.insert(rows);
        } catch (err) {
          if (sqlState(err) !== '23505') this.uncertain = { before, last: rows[rows.length - 1], count: rows.length };
          throw err;
        }
        this.advance(rows);
      }
      this._failure = undefined;
      this.attempt = 0;
      for (const w of this.waiters.splice(0)) w();
      return true;
    } catch (err) {
      this.fail(err);
      this.scheduleRetry();
      return false;
    }
  }

  /** Resolves once every record queued so far (and any queued meanwhile) is in the table, however long the store is away. */
  whenWritten(): Promise<void> {
    if (!this.queue.length && !this.inFlight) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  private advance(rows: SealedRow[]): void {
    const last = rows[rows.length - 1];
    this.seq = last.seq;
    this.prev = last.hash;
    this.queue.splice(0, rows.length);
    this.written += rows.length;
  }

  private async insert(rows: SealedRow[]): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${this.table} (chain, seq, t, type, record, hash)
         SELECT $1, s, t, ty, r, h FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[]) AS u(s, t, ty, r, h)`,
      [this.options.chain, rows.map((r) => r.seq), rows.map((r) => r.t), rows.map((r) => r.type), rows.map((r) => r.record), rows.map((r) => r.hash)],
    );
  }

  /** Registers the chain (insert-only) and continues from its head if this chain id wrote before. */
  private async open(): Promise<void> {
    await this.pool.query(`INSERT INTO ${this.chainsTable} (chain, info) VALUES ($1, $2) ON CONFLICT (chain) DO NOTHING`, [this.options.chain, this.options.info ?? null]);
    const head = await this.head();
    this.seq = head.seq;
    this.prev = head.hash;
    this.ready = true;
  }

  private async head(): Promise<{ seq: number; hash: string }> {
    const r = await this.pool.query<{ seq: string; hash: string }>(`SELECT seq, hash FROM ${this.table} WHERE chain = $1 ORDER BY seq DESC LIMIT 1`, [this.options.chain]);
    return r.rows[0] ? { seq: Number(r.rows[0].seq), hash: r.rows[0].hash } : { seq: 0, hash: GENESIS };
  }

  /** After an INSERT whose outcome is unknown: was it committed (drop it from the queue) or not (send it again)? */
  private async settleUncertain(): Promise<void> {
    const u = this.uncertain!;
    const head = await this.head();
    this.uncertain = undefined;
    if (head.seq === u.last.seq && head.hash === u.last.hash) {
      this.seq = head.seq;
      this.prev = head.hash;
      this.queue.splice(0, u.count);
      this.written += u.count;
    } else if (head.seq !== u.before.seq || head.hash !== u.before.hash) {
      throw Object.assign(new Error(`audit chain ${this.options.chain} was extended by someone else (its head is seq ${head.seq}, this writer expected ${u.before.seq})`), {
        code: 'CCGW_AUDIT_CHAIN_CONFLICT',
      });
    }
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.flush();
    }, backoff(this.attempt++));
    this.retryTimer.unref();
  }

  private fail(err: unknown): void {
    const e = err as { code?: string; message?: string };
    const code = sqlState(err) === '23505' ? 'CCGW_AUDIT_CHAIN_CONFLICT' : (e.code ?? 'ESTORE');
    this._failure = { code, message: `the store cannot write audit records (${code === 'CCGW_AUDIT_CHAIN_CONFLICT' ? 'another writer uses this chain' : e.code ?? e.message})` };
    if (code === 'CCGW_AUDIT_CHAIN_CONFLICT') this.ready = false;
  }

  /**
   * Appends a `checkpoint` record holding the head (seq and hash) of every other chain, so that records later removed
   * from the end of another chain are noticed by verify (a chain's own tail needs someone else's checkpoint).
   */
  async checkpoint(): Promise<boolean> {
    try {
      const r = await this.pool.query<{ chain: string; seq: string; hash: string }>(
        `SELECT c.chain, a.seq, a.hash FROM ${this.chainsTable} AS c
           CROSS JOIN LATERAL (SELECT seq, hash FROM ${this.table} AS x WHERE x.chain = c.chain ORDER BY seq DESC LIMIT 1) AS a
          WHERE c.chain <> $1 ORDER BY c.chain`,
        [this.options.chain],
      );
      const heads: Record<string, [number, string]> = {};
      for (const row of r.rows) heads[row.chain] = [Number(row.seq), row.hash];
      this.append('checkpoint', { heads });
      return this.flush();
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  dispose(): void {
    void this.close();
  }

  /** Writes what is queued (waiting up to `timeoutMs` for the database), then stops; what could not be written counts as dropped. */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length && Date.now() < deadline) {
      if (await this.flush()) break;
      await new Promise((r) => setTimeout(r, Math.min(250, Math.max(0, deadline - Date.now()))));
    }
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.dropped += this.queue.length;
    this.queue = [];
  }
}
