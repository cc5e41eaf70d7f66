import * as fs from 'node:fs';
import * as path from 'node:path';
import { auditFileName, GENESIS, headPath, listAuditFiles, readTail, seal } from './audit-files';
import { AuditLock, AuditLockedError } from './audit-lock';
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

  /** Queues one record; it is written with the others of this event-loop turn, in one write, at `setImmediate`. */
  appendSoon(type: string, fields: Record<string, unknown>, now = Date.now()): void {
    this.enqueue(type, fields, now);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushSoon);
    }
  }

  private enqueue(type: string, fields: Record<string, unknown>, now: number): void {
    if (this.queue.length < MAX_PENDING_RECORDS) this.queue.push({ type, fields, now });
    else this.dropped++;
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

  /** Writes the anchor `verify` uses to notice removed trailing lines, and closes the file. */
  close(): void {
    if (this.queue.length && !this.flush()) {
      this.dropped += this.queue.length;
      this.queue = [];
    }
    if (this.fd !== undefined) {
      try {
        fs.fsyncSync(this.fd);
      } catch {
        // Best effort: the data is in the OS already.
      }
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
    try {
      fs.writeFileSync(headPath(this.dir), JSON.stringify({ seq: this.seq, hash: this.prev }) + '\n', { mode: 0o600 });
    } catch {
      // An unwritable folder was already reported through `failure`.
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
      this.lock ??= AuditLock.acquire(this.dir, this.instance);
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

  /** Finds the chain head in the newest file; moves a torn last line aside. */
  private recover(): void {
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

  private fail(err: unknown): void {
    const e = err as NodeJS.ErrnoException;
    this._failure = { code: e.code ?? 'EAUDIT', message: `the audit log in ${this.dir} cannot be written (${e.code ?? e.message})` };
  }
}
