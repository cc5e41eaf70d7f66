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

interface PendingRecord {
  type: string;
  fields: Record<string, unknown>;
  now: number;
}

/**
 * The append-only, hash-chained audit log: daily JSONL files under one folder. Each append is one
 * synchronous write of one whole line to a file opened with O_APPEND, so a crash loses at most the records
 * of calls still in flight, and a write cut short leaves a torn last line that the next start moves aside
 * (recording a "gap" event, which `verify` reports as a gap, not as tampering).
 *
 * One writer per folder: `audit.lock` (see AuditLock) is taken at open and released on close; a second gateway on
 * the same folder gets AuditLockedError from the constructor instead of forking the chain. A record that cannot be
 * written (disk full, folder gone) is kept in memory and written, in order, before anything else once the log can
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
  private pending: PendingRecord[] = [];
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

  /** Records waiting in memory for the log to become writable. */
  get pendingRecords(): number {
    return this.pending.length;
  }

  /** Set while the log cannot be written. */
  get failure(): AuditFailure | undefined {
    return this._failure;
  }

  get lastSeq(): number {
    return this.seq;
  }

  /**
   * Appends one record (it gets `seq`, `t`, `prev` and `hash`); false when it could not be written now (it then
   * waits in memory and is written before the next record that can be).
   */
  append(type: string, fields: Record<string, unknown>, now = Date.now()): boolean {
    if ((this.pending.length === 0 || this.flushPending()) && this.write(type, fields, now)) return true;
    if (this.pending.length < MAX_PENDING_RECORDS) this.pending.push({ type, fields, now });
    else this.dropped++;
    return false;
  }

  private write(type: string, fields: Record<string, unknown>, now: number): boolean {
    const t = this.isoTime(now);
    // A spread into this small literal stays on V8's fast path (a for-in copy is 2.5x slower, and so is its JSON).
    const { line, hash } = seal({ seq: this.seq + 1, t, type, ...fields }, this.prev);
    try {
      if (!this.recovered || !this.lock) throw Object.assign(new Error('the log could not be opened at start'), { code: this._failure?.code });
      const date = t.slice(0, 10);
      if (this.fd === undefined || date !== this.fileDate) this.open(date);
      const bytes = Buffer.byteLength(line);
      const written = fs.writeSync(this.fd!, line);
      if (written !== bytes) {
        // A short write (the disk filled mid-line): take the torn part back so the file stays a list of whole lines.
        fs.ftruncateSync(this.fd!, fs.fstatSync(this.fd!).size - written);
        throw Object.assign(new Error(`short write (${written} of ${bytes} bytes)`), { code: 'ENOSPC' });
      }
    } catch (err) {
      this.fail(err);
      return false;
    }
    this._failure = undefined;
    this.seq++;
    this.prev = hash;
    return true;
  }

  /** `now` as an ISO string; several records a millisecond under load share one. */
  private isoTime(now: number): string {
    if (now !== this.lastNow) {
      this.lastNow = now;
      this.lastIso = new Date(now).toISOString();
    }
    return this.lastIso;
  }

  /** Writes the records that waited, oldest first; false (with `failure` set) at the first that still cannot be. */
  private flushPending(): boolean {
    while (this.pending.length) {
      const r = this.pending[0];
      if (!this.write(r.type, r.fields, r.now)) return false;
      this.pending.shift();
    }
    return true;
  }

  /** Writes the anchor `verify` uses to notice removed trailing lines, and closes the file. */
  close(): void {
    if (this.pending.length && !this.flushPending()) {
      this.dropped += this.pending.length;
      this.pending = [];
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
    if (!this.pending.length) this._failure = undefined;
    return this.flushPending();
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
