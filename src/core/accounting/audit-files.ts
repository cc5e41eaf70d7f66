import { hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The `prev` of the very first record. */
export const GENESIS = '0'.repeat(64);

const FILE_RE = /^audit-(\d{4}-\d{2}-\d{2})\.jsonl$/;

/** One sealed audit line: the JSON object with `prev` and `hash` last. */
export interface SealedRecord {
  seq: number;
  t: string;
  type: string;
  prev: string;
  hash: string;
  [field: string]: unknown;
}

/** The daily file for a UTC date. */
export function auditFileName(date: string): string {
  return `audit-${date}.jsonl`;
}

/** Daily audit files in `dir`, oldest first, with their dates. */
export function listAuditFiles(dir: string): Array<{ file: string; date: string }> {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .map((n) => ({ n, m: FILE_RE.exec(n) }))
    .filter((x) => x.m)
    .map((x) => ({ file: path.join(dir, x.n), date: x.m![1] }))
    .sort((a, b) => (a.date < b.date ? -1 : a.date > b.date ? 1 : 0));
}

/**
 * Seals a record: adds `prev`, hashes the canonical JSON (the object serialised in insertion order, with
 * `prev` and without `hash`), and returns the line with `hash` appended as the last member.
 */
export function seal(record: Record<string, unknown>, prev: string): { line: string; hash: string } {
  // The same text as JSON.stringify({ ...record, prev }) without copying the record (a wide object's spread is slow).
  const own = JSON.stringify(record);
  const body = own === '{}' || 'prev' in record ? JSON.stringify({ ...record, prev }) : `${own.slice(0, -1)},"prev":${JSON.stringify(prev)}}`;
  const hash = sha256hex(body);
  return { line: `${body.slice(0, -1)},"hash":"${hash}"}\n`, hash };
}

/** Recomputes a parsed line's hash; true when it matches the `hash` it carries. */
export function hashMatches(rec: Record<string, unknown>): boolean {
  const { hash, ...rest } = rec;
  return typeof hash === 'string' && sha256hex(JSON.stringify(rest)) === hash;
}

export function sha256hex(s: string): string {
  return hash('sha256', s, 'hex');
}

/** One line of a file as the reader met it. */
export interface RawLine {
  file: string;
  /** 1-based line number in its file. */
  line: number;
  text: string;
  /** False for a last line without its newline (a write cut short). */
  complete: boolean;
}

/**
 * Cuts the chunks read from one file into lines (a line may span chunks), for `readLines` and `readLinesAsync`.
 * `push` and `end` return false when `onLine` asked to stop.
 */
export class LineCutter {
  private carry: Buffer[] = [];
  private lineNo = 0;

  constructor(
    private readonly file: string,
    private readonly onLine: (l: RawLine) => boolean | void,
  ) {}

  /** The first `n` bytes of `buf` (which is reused for the next chunk). */
  push(buf: Buffer, n: number): boolean {
    let start = 0;
    let nl: number;
    while ((nl = buf.indexOf(10, start)) !== -1 && nl < n) {
      let text: string;
      if (this.carry.length) {
        this.carry.push(buf.subarray(start, nl));
        text = Buffer.concat(this.carry).toString('utf8');
        this.carry = [];
      } else {
        text = buf.toString('utf8', start, nl);
      }
      start = nl + 1;
      this.lineNo++;
      if (this.onLine({ file: this.file, line: this.lineNo, text, complete: true }) === false) return false;
    }
    if (start < n) this.carry.push(Buffer.from(buf.subarray(start, n)));
    return true;
  }

  /** The file ended: a last line without its newline comes with `complete: false`. */
  end(): boolean {
    if (!this.carry.length) return true;
    return this.onLine({ file: this.file, line: this.lineNo + 1, text: Buffer.concat(this.carry).toString('utf8'), complete: false }) !== false;
  }
}

/**
 * Reads files line by line in large chunks (files can be bigger than a JS string may be), calling `onLine`
 * for each. Stops early when `onLine` returns false. Synchronous: for the CLI and for the start of a gateway (a
 * serving gateway reads with `readLinesAsync`, audit-scan.ts).
 */
export function readLines(files: string[], onLine: (l: RawLine) => boolean | void, chunkSize = 8 << 20): void {
  const buf = Buffer.allocUnsafe(chunkSize);
  for (const file of files) {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    try {
      const cut = new LineCutter(file, onLine);
      for (;;) {
        const n = fs.readSync(fd, buf, 0, chunkSize, null);
        if (n === 0) break;
        if (!cut.push(buf, n)) return;
      }
      if (!cut.end()) return;
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** The last complete line of a file and the byte offset where a torn tail (bytes after the last newline) starts. */
export function readTail(file: string): { last?: string; tornAt?: number; size: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return { size };
    let chunk = 64 * 1024;
    for (;;) {
      const from = Math.max(0, size - chunk);
      const buf = Buffer.allocUnsafe(size - from);
      fs.readSync(fd, buf, 0, buf.length, from);
      const endsWithNl = buf[buf.length - 1] === 10;
      const lastNl = endsWithNl ? buf.length - 1 : buf.lastIndexOf(10);
      const tornAt = endsWithNl ? undefined : lastNl === -1 ? from : from + lastNl + 1;
      if (lastNl === -1) {
        if (from === 0) return { tornAt, size };
        chunk *= 4;
        continue;
      }
      const prevNl = buf.lastIndexOf(10, lastNl - 1);
      if (prevNl === -1 && from > 0) {
        chunk *= 4;
        continue;
      }
      return { last: buf.toString('utf8', prevNl + 1, lastNl), tornAt, size };
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Spend the log holds, per budget scope and UTC date (`{ "global": { "2026-12-04": 1.25 } }`). */
export type ScopeDaySpend = Record<string, Record<string, number>>;

/**
 * The anchor of the chain, written at start, every few seconds while records are written, and on clean stop: lets
 * `verify` and the next start notice lines removed from the end, and says what the removed lines had cost.
 */
export interface AuditHead {
  seq: number;
  hash: string;
  /** When it was written. */
  t?: string;
  /** Cost of every call recorded up to `seq`, per budgeted scope and UTC day (the days budgets still look at). */
  spend?: ScopeDaySpend;
}

export function headPath(dir: string): string {
  return path.join(dir, 'HEAD.json');
}

/** What `HEAD.json` holds: a head, nothing (no file), or something that is not a head. */
export type HeadState = { head: AuditHead } | { missing: true } | { unreadable: string };

export function readHeadState(dir: string): HeadState {
  let text: string;
  try {
    text = fs.readFileSync(headPath(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { missing: true };
    return { unreadable: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
  try {
    const h = JSON.parse(text);
    if (typeof h.seq === 'number' && Number.isInteger(h.seq) && h.seq >= 0 && typeof h.hash === 'string') return { head: h as AuditHead };
  } catch {
    // Falls through.
  }
  return { unreadable: 'not a head record' };
}

export function readHead(dir: string): AuditHead | undefined {
  const s = readHeadState(dir);
  return 'head' in s ? s.head : undefined;
}

/**
 * Replaces `HEAD.json` atomically (a temp file, synced, renamed over it), so a crash never leaves half a head; the
 * log is synced first (`syncFd`) so that after a power cut the head never names records the disk lost.
 */
export function writeHead(dir: string, head: AuditHead, syncFd?: number): void {
  if (syncFd !== undefined) fs.fdatasyncSync(syncFd);
  const file = headPath(dir);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, JSON.stringify(head) + '\n');
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** The hash of the record with `seq` (searching the newest files first), or undefined when no line has that seq. */
export function findRecordHash(dir: string, seq: number): string | undefined {
  const files = listAuditFiles(dir).map((f) => f.file);
  const prefix = `{"seq":${seq},`;
  for (let i = files.length - 1; i >= 0; i--) {
    let first: number | undefined;
    let hit: string | undefined;
    readLines([files[i]], (l) => {
      if (first === undefined) {
        const m = /^\{"seq":(\d+),/.exec(l.text);
        first = m ? Number(m[1]) : 0;
        // The seq is in an older file (or nowhere): stop reading this one.
        if (first > seq) return false;
      }
      if (l.complete && l.text.startsWith(prefix)) {
        try {
          const rec = JSON.parse(l.text) as { hash?: unknown };
          hit = typeof rec.hash === 'string' ? rec.hash : '';
        } catch {
          hit = '';
        }
        return false;
      }
    });
    if (hit !== undefined) return hit;
    if (first !== undefined && first <= seq) return undefined;
  }
  return undefined;
}
