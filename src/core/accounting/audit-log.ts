import * as fs from 'node:fs';
import * as path from 'node:path';
import { auditFileName, findRecordHash, GENESIS, listAuditFiles, readHeadState, readTail, seal, writeHead, type AuditHead, type ScopeDaySpend } from './audit-files';
import { AuditLock, AuditLockedError, LEASE_REFRESH_MS } from './audit-lock';
import { utcDate } from './windows';

/** Why the audit log cannot be written, for /health and the 503 message. */
export interface AuditFailure {
  code: string;
  message: string;
}

/** What opening the log found and did. */
export interface AuditRecovery {
  lastSeq: number;
  /** The last record was not a clean "stop": the gateway crashed or was killed. */
  unclean: boolean;
  /** A torn last line was moved to this file. */
  tornMovedTo?: string;
  tornBytes?: number;
  /** The head `HEAD.json` held at start, if it held one. */
  head?: AuditHead;
  /**
   * Set when the log does not reach what its head recorded (lines or files removed, the head deleted or edited):
   * tampering, never a crash. A `tamper` record saying so is the first record written after start.
   */
  tamper?: HeadProblem;
}

/** What the start found wrong between the log and its head. */
export interface HeadProblem {
  reason: 'log_truncated' | 'head_mismatch' | 'head_missing' | 'head_unreadable';
  message: string;
  /** What the head says the log reached. */
  expected?: { seq: number; hash: string };
  /** Where the log really ends. */
  found: { seq: number; hash: string };
}

/** Records kept in memory while the log cannot be written, written first once it can; beyond this they are dropped. */
export const MAX_PENDING_RECORDS = 10_000;

/** One write carries at most about this many characters of records (a long backlog is written in pieces). */
const MAX_WRITE_CHARS = 1 << 20;

interface PendingRecord {
  type: string;
  fields: Record<string, unknown>;
  now: number;
}

/**
 * The append-only, hash-chained audit log: daily JSONL files under one folder, opened with O_APPEND.
 *
 * Records are written by group commit: a call's record is queued when the call settles, and every record queued
 * in one event-loop turn is sealed and written with one synchronous `write(2)` at `setImmediate` (events such as
 * start, stop, a profile switch or a budget override are written at once, after anything queued before them). So
 * a crash loses at most the records of calls still in flight and of those that settled in the last loop turn,
 * and a write cut short leaves a torn last line that the next start moves aside (recording a "gap" event, which
 * `verify` reports as a gap, not as tampering). Under load this costs one syscall per turn instead of one per call.
 *
 * One writer per folder: `audit.lock` (see AuditLock) is taken at open and released on close; a second gateway on
 * the same folder gets AuditLockedError from the constructor instead of forking the chain. Records that cannot be
 * written (disk full, folder gone) stay in memory and are written, in order, before anything else once the log can
 * be written again; until then `failure` is set, and the accountant refuses model calls unless `failOpen`.
 */
export class AuditLog {
  private fd?: number;
  private fileDate?: string;
  private seq = 0;
  private prev = GENESIS;
  private _failure?: AuditFailure;
  private recovered = false;
  private lock?: AuditLock;
  /** Records not yet written: this turn's, or those waiting for the log to become writable again. */
  private queue: PendingRecord[] = [];
  private flushScheduled = false;
  private readonly flushSoon = (): void => {
    this.flushScheduled = false;
    this.flush();
  };
  private lastNow = NaN;
  private lastIso = '';
  /** The seq `HEAD.json` was last written with (-1: not yet by this writer). */
  private headSeq = -1;
  private timer?: NodeJS.Timeout;
  /** The queued `tamper` record of a start that found the log short of its head (until it is written). */
  private tamperFields?: Record<string, unknown>;
  /** What the head records besides seq and hash: the spend of the records written so far (set by the accountant). */
  headSpend?: () => ScopeDaySpend | undefined;
  /** Records lost for good: more than MAX_PENDING_RECORDS waited for the log, or some still waited at close. */
  dropped = 0;
  readonly recovery: AuditRecovery = { lastSeq: 0, unclean: false };

  /** Throws AuditLockedError when another live gateway writes `dir`; any other problem sets `failure`. */
  constructor(
    readonly dir: string,
    private readonly instance?: string,
  ) {
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.lock = AuditLock.acquire(dir, instance);
      this.recover();
      this.recovered = true;
      fs.accessSync(dir, fs.constants.W_OK);
    } catch (err) {
      if (err instanceof AuditLockedError) throw err;
      this.fail(err);
    }
    // Renews the lock's lease and keeps the head near the end of the log (so a kill -9 followed by a truncation of
    // what came after the last head is the most that can go unnoticed).
    this.timer = setInterval(() => this.renew(), LEASE_REFRESH_MS);
    this.timer.unref();
  }

  /**
   * The fields of the `tamper` record queued at start (the log was short of its head), while it is not yet written:
   * the accountant adds the spend it restored. Undefined when the start found nothing wrong.
   */
  get pendingTamper(): Record<string, unknown> | undefined {
    return this.tamperFields;
  }

  /** Records waiting in memory for the log to become writable (0 while it is writable). */
  get pendingRecords(): number {
    return this._failure ? this.queue.length : 0;
  }

  /** Set while the log cannot be written. */
  get failure(): AuditFailure | undefined {
    return this._failure;
  }

  get lastSeq(): number {
    return this.seq;
  }

  /**
   * Appends one record now, after any queued before it (it gets `seq`, `t`, `prev` and `hash`); false when it could
   * not be written (it then waits in memory and is written before anything else once the log can be).
   */
  append(type: string, fields: Record<string, unknown>, now = Date.now()): boolean {
    this.enqueue(type, fields, now);
    return this.flush();
  }

  /**
   * Queues one record; it is written with the others of this event-loop turn, in one write, at `setImmediate`.
   * False when it was dropped (MAX_PENDING_RECORDS already wait for a log that cannot be written).
   */
  appendSoon(type: string, fields: Record<string, unknown>, now = Date.now()): boolean {
    const queued = this.enqueue(type, fields, now);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushSoon);
    }
    return queued;
  }

  private enqueue(type: string, fields: Record<string, unknown>, now: number): boolean {
    if (this.queue.length < MAX_PENDING_RECORDS) {
      this.queue.push({ type, fields, now });
      return true;
    }
    this.dropped++;
    return false;
  }

  /**
   * Seals and writes every queued record, oldest first, one write per UTC date (and per MAX_WRITE_CHARS); false
   * (with `failure` set) when some could not be written: those stay queued, unsealed, and the chain is unchanged.
   */
  flush(): boolean {
    const q = this.queue;
    let done = 0;
    try {
      if (done < q.length && (!this.recovered || !this.lock)) throw Object.assign(new Error('the log could not be opened at start'), { code: this._failure?.code });
      while (done < q.length) {
        let seq = this.seq;
        let prev = this.prev;
        let text = '';
        let date: string | undefined;
        let n = done;
        for (; n < q.length && text.length < MAX_WRITE_CHARS; n++) {
          const r = q[n];
          const t = this.isoTime(r.now);
          const d = t.slice(0, 10);
          if (date === undefined) date = d;
          else if (d !== date) break;
          // A spread into this small literal stays on V8's fast path (a for-in copy is 2.5x slower, and so is its JSON).
          const sealed = seal({ seq: seq + 1, t, type: r.type, ...r.fields }, prev);
          text += sealed.line;
          seq++;
          prev = sealed.hash;
        }
        this.writeText(date!, text);
        this.seq = seq;
        this.prev = prev;
        done = n;
      }
    } catch (err) {
      this.fail(err);
    }
    if (done === q.length) {
      if (done) {
        q.length = 0;
        this._failure = undefined;
        this.tamperFields = undefined;
        if (this.headSeq === -1) this.checkpoint();
      }
      return true;
    }
    if (done) q.splice(0, done);
    return false;
  }

  /** One write of whole lines to the file of `date`; throws when the lines are not all in the file. */
  private writeText(date: string, text: string): void {
    if (this.fd === undefined || date !== this.fileDate) this.open(date);
    const bytes = Buffer.byteLength(text);
    const written = fs.writeSync(this.fd!, text);
    if (written !== bytes) {
      // A short write (the disk filled mid-line): take the torn part back so the file stays a list of whole lines.
      fs.ftruncateSync(this.fd!, fs.fstatSync(this.fd!).size - written);
      throw Object.assign(new Error(`short write (${written} of ${bytes} bytes)`), { code: 'ENOSPC' });
    }
  }

  /** `now` as an ISO string; several records a millisecond under load share one. */
  private isoTime(now: number): string {
    if (now !== this.lastNow) {
      this.lastNow = now;
      this.lastIso = new Date(now).toISOString();
    }
    return this.lastIso;
  }

  /**
   * Writes `HEAD.json` (seq, hash and the spend so far) when every record is written; false when it could not be.
   * Called at the first write, every LEASE_REFRESH_MS while records are written, and on close.
   */
  checkpoint(): boolean {
    if (this._failure || this.queue.length || !this.recovered || !this.lock) return false;
    try {
      const spend = this.headSpend?.();
      writeHead(this.dir, { seq: this.seq, hash: this.prev, t: new Date().toISOString(), ...(spend ? { spend } : {}) }, this.fd);
      this.headSeq = this.seq;
      return true;
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  /** The timer's work: renew the lease (or notice it was lost), and move the head up to the records written since. */
  renew(): void {
    if (this.lock) {
      let ours: boolean;
      try {
        ours = this.lock.refresh();
      } catch {
        // The folder cannot be written now; the next write reports it, and a later tick renews.
        return;
      }
      if (!ours) {
        // Another gateway took the folder over (our lease ran out, e.g. while this process was suspended): writing on
        // would fork the chain. Records wait in memory; probe() retries the lock.
        this.lock = undefined;
        this._failure = { code: 'EAUDITLOCKLOST', message: `the audit log in ${this.dir} was taken over by another gateway after this one's lease ran out` };
        return;
      }
    }
    if (this.queue.length) this.flush();
    if (this.seq !== this.headSeq) this.checkpoint();
  }

  /** Writes the queued records and the head (the anchor that notices removed trailing lines), and closes the file. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.queue.length && !this.flush()) {
      this.dropped += this.queue.length;
      this.queue = [];
    }
    // Only a head that matches what is in the files: after a failure the last good head stays.
    this.checkpoint();
    if (this.fd !== undefined) {
      try {
        fs.fsyncSync(this.fd);
      } catch {
        // Best effort: the data is in the OS already.
      }
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
    this.lock?.release();
    this.lock = undefined;
  }

  /**
   * Retries after a failure: takes the lock and reads the head if that failed at start, then writes the records
   * that waited. Only a real write proves the log writable again (opening a file on a full disk succeeds).
   */
  probe(): boolean {
    if (!this._failure) return true;
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      if (!this.lock) {
        this.lock = AuditLock.acquire(this.dir, this.instance);
        if (this._failure.code === 'EAUDITLOCKLOST') {
          // Whoever held the folder meanwhile wrote its own records: continue from its head, not ours.
          this.recovered = false;
          this.headSeq = -1;
        }
      }
      if (!this.recovered) {
        this.recover();
        this.recovered = true;
      }
      if (this.fd === undefined) this.open(utcDate(Date.now()));
    } catch (err) {
      this.fail(err);
      return false;
    }
    if (!this.queue.length) this._failure = undefined;
    return this.flush();
  }

  private open(date: string): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    this.fd = fs.openSync(path.join(this.dir, auditFileName(date)), fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o600);
    this.fileDate = date;
  }

  /** Finds the chain head in the newest file; moves a torn last line aside; checks the log against `HEAD.json`. */
  private recover(): void {
    this.recovery.unclean = false;
    this.recovery.tamper = undefined;
    this.findLast();
    this.checkHead();
  }

  private findLast(): void {
    const files = listAuditFiles(this.dir);
    for (let i = files.length - 1; i >= 0; i--) {
      const { file } = files[i];
      const tail = readTail(file);
      if (tail.tornAt !== undefined) {
        const fd = fs.openSync(file, 'r+');
        try {
          const torn = Buffer.alloc(tail.size - tail.tornAt);
          fs.readSync(fd, torn, 0, torn.length, tail.tornAt);
          const movedTo = `${file}.torn-${Date.now()}`;
          fs.writeFileSync(movedTo, torn, { mode: 0o600 });
          fs.ftruncateSync(fd, tail.tornAt);
          this.recovery.tornMovedTo = path.basename(movedTo);
          this.recovery.tornBytes = torn.length;
        } finally {
          fs.closeSync(fd);
        }
      }
      if (!tail.last) continue;
      const last = JSON.parse(tail.last) as { seq?: number; hash?: string; type?: string };
      if (typeof last.seq !== 'number' || typeof last.hash !== 'string') throw new Error(`${file}: the last line is not an audit record`);
      this.seq = last.seq;
      this.prev = last.hash;
      this.recovery.lastSeq = last.seq;
      this.recovery.unclean = last.type !== 'stop' || this.recovery.tornMovedTo !== undefined;
      return;
    }
    this.recovery.unclean = this.recovery.tornMovedTo !== undefined;
  }

  /**
   * A log shorter than its head, or one whose record at the head's seq is not the one the head names, was tampered
   * with (a crash only ever leaves records after the head: the head is written after the records it names are on
   * disk). So is a missing or unreadable head beside a log that has records (the head is written at the first write
   * of every start). The problem is queued as a `tamper` record, the first one written after start.
   */
  private checkHead(): void {
    const state = readHeadState(this.dir);
    const found = { seq: this.seq, hash: this.prev };
    let problem: HeadProblem | undefined;
    if ('missing' in state) {
      if (this.seq === 0) {
        // A new folder: anchor it now, so that a crash before the first head write cannot look like a deleted head.
        writeHead(this.dir, { seq: 0, hash: GENESIS, t: new Date().toISOString() });
        return;
      }
      problem = {
        reason: 'head_missing',
        found,
        message: `HEAD.json is missing although the log holds records up to seq ${this.seq}: the gateway writes it at every start, so it was deleted, and records after seq ${this.seq} may have been removed with it`,
      };
    } else if ('unreadable' in state) {
      problem = { reason: 'head_unreadable', found, message: `HEAD.json cannot be read as a head (${state.unreadable}): it was edited or replaced` };
    } else {
      const head = state.head;
      this.recovery.head = head;
      const expected = { seq: head.seq, hash: head.hash };
      if (head.seq > this.seq) {
        const range = head.seq === this.seq + 1 ? `record seq ${head.seq} is` : `records seq ${this.seq + 1}-${head.seq} are`;
        problem = {
          reason: 'log_truncated',
          expected,
          found,
          message: `the log ends at seq ${this.seq}, but HEAD.json${head.t ? ` (written ${head.t})` : ''} says it reached seq ${head.seq}: ${range} missing (lines or daily files were removed)`,
        };
      } else {
        const hash = head.seq === this.seq ? this.prev : head.seq === 0 ? GENESIS : findRecordHash(this.dir, head.seq);
        if (hash !== head.hash) {
          problem = {
            reason: 'head_mismatch',
            expected,
            found,
            message:
              hash === undefined
                ? `HEAD.json names seq ${head.seq}, which is not in the log: records were removed or HEAD.json was edited`
                : `the record at seq ${head.seq} is not the one HEAD.json names (hash ${hash.slice(0, 12)}..., expected ${head.hash.slice(0, 12)}...): the log was rewritten or HEAD.json was edited`,
          };
        }
      }
    }
    if (!problem) return;
    this.recovery.tamper = problem;
    this.tamperFields = {
      reason: problem.reason,
      detail: problem.message,
      ...(problem.expected ? { expected: problem.expected } : {}),
      found: problem.found,
      ...(this.recovery.tornMovedTo ? { movedTo: this.recovery.tornMovedTo, bytes: this.recovery.tornBytes } : {}),
    };
    this.enqueue('tamper', this.tamperFields, Date.now());
  }

  private fail(err: unknown): void {
    const e = err as NodeJS.ErrnoException;
    if (err instanceof AuditLockedError) this._failure = { code: err.code, message: err.message };
    else this._failure = { code: e.code ?? 'EAUDIT', message: `the audit log in ${this.dir} cannot be written (${e.code ?? e.message})` };
  }
}
