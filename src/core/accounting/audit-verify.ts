import * as path from 'node:path';
import { GENESIS, hashMatches, listAuditFiles, readHeadState, readLines, type AuditHead, type RawLine } from './audit-files';

/** What kind of damage a line shows. */
export type TamperKind = 'edited' | 'removed' | 'reordered' | 'inserted' | 'recorded';

/** The first line that breaks the chain. */
export interface TamperFinding {
  kind: TamperKind;
  file: string;
  line: number;
  seq?: number;
  message: string;
}

/** A gap the gateway itself recorded (a crash), or a torn last line not yet moved aside. */
export interface GapFinding {
  file: string;
  line: number;
  seq?: number;
  reason: string;
}

export interface VerifyResult {
  intact: boolean;
  files: number;
  records: number;
  lastSeq: number;
  gaps: GapFinding[];
  tamper?: TamperFinding;
  /** Tampering the gateway found at a start and wrote into the chain (`tamper` records): the log stays failed. */
  recorded: TamperFinding[];
}

const RECENT = 4096;

/**
 * Checks every daily file in order: each line's own hash, then that it extends the chain (`prev` is the
 * previous line's hash, `seq` one more). Names the first line that was edited, removed, reordered or
 * inserted. Gap events are listed, not counted as tampering.
 */
export function verifyAudit(dir: string): VerifyResult {
  const files = listAuditFiles(dir).map((f) => f.file);
  const result: VerifyResult = { intact: true, files: files.length, records: 0, lastSeq: 0, gaps: [], recorded: [] };
  let prev = GENESIS;
  let seq = 0;
  const recent = new Map<string, { seq: number; at: RawLine }>();
  let pendingBad: { at: RawLine; rec?: Record<string, unknown>; prevBefore: string } | undefined;
  let tornTail: RawLine | undefined;
  const where = (l: RawLine) => `${path.basename(l.file)} line ${l.line}`;
  const headState = readHeadState(dir);
  const head: AuditHead | undefined = 'head' in headState ? headState.head : undefined;
  let headSeen = false;

  const found = (t: TamperFinding): false => {
    result.intact = false;
    result.tamper = t;
    return false;
  };

  readLines(files, (l) => {
    if (!l.text.trim()) return;
    if (tornTail) return found({ kind: 'edited', file: l.file, line: l.line, message: `${where(tornTail)} is incomplete but is not the last line` });
    let rec: Record<string, unknown> | undefined;
    try {
      rec = JSON.parse(l.text);
    } catch {
      rec = undefined;
    }
    if (pendingBad) {
      // The line after a line whose hash is wrong tells an edit from an insertion.
      const b = pendingBad;
      const inserted = rec?.prev === b.prevBefore;
      return found({
        kind: inserted ? 'inserted' : 'edited',
        file: b.at.file,
        line: b.at.line,
        seq: typeof b.rec?.seq === 'number' ? b.rec.seq : undefined,
        message: inserted ? `${where(b.at)} was inserted: it is not part of the chain (the next line follows the line before it)` : `${where(b.at)} was edited: its content does not match its hash`,
      });
    }
    if (!l.complete && !rec) {
      tornTail = l;
      return;
    }
    if (!rec || typeof rec.seq !== 'number' || !hashMatches(rec)) {
      pendingBad = { at: l, rec, prevBefore: prev };
      return;
    }
    const rs = rec.seq as number;
    if (rec.prev !== prev || rs !== seq + 1) {
      const copyOf = recent.get(rec.hash as string);
      if (copyOf) {
        return found({ kind: 'inserted', file: l.file, line: l.line, seq: rs, message: `${where(l)} was inserted: it is a copy of ${where(copyOf.at)}` });
      }
      if (rs <= seq) {
        // A line that chains onto an earlier one: whatever sits between them was inserted.
        const earlier = recent.get(rec.prev as string);
        const impostor = earlier && earlier.seq === rs - 1 ? [...recent.values()].find((r) => r.seq === rs) : undefined;
        if (earlier && impostor) {
          return found({ kind: 'inserted', file: impostor.at.file, line: impostor.at.line, seq: rs, message: `${where(impostor.at)} was inserted: ${where(l)} follows ${where(earlier.at)} in the chain` });
        }
        return found({ kind: 'inserted', file: l.file, line: l.line, seq: rs, message: `${where(l)} was inserted: seq ${rs} comes after seq ${seq}` });
      }
      if (rs > seq + 1) {
        const missing = seq + 1;
        const later = appearsLater(files, l, missing);
        if (later) {
          return found({ kind: 'reordered', file: l.file, line: l.line, seq: rs, message: `${where(l)} (seq ${rs}) is out of order: seq ${missing} comes after it, at ${where(later)}` });
        }
        const range = rs - 1 === missing ? `seq ${missing} was` : `seq ${missing}-${rs - 1} were`;
        return found({ kind: 'removed', file: l.file, line: l.line, seq: rs, message: `record ${range} removed before ${where(l)}` });
      }
      // Right seq, wrong predecessor: the next line tells an inserted line from an edited one.
      pendingBad = { at: l, rec, prevBefore: prev };
      return;
    }
    if (rec.type === 'gap') result.gaps.push({ file: l.file, line: l.line, seq: rs, reason: String(rec.reason ?? 'gap') });
    if (rec.type === 'tamper') {
      result.recorded.push({
        kind: 'recorded',
        file: l.file,
        line: l.line,
        seq: rs,
        message: `${where(l)} records tampering the gateway found when it started at ${String(rec.t)}: ${String(rec.detail ?? rec.reason ?? 'tamper')}`,
      });
    }
    if (head && rs === head.seq) headSeen = rec.hash === head.hash;
    prev = rec.hash as string;
    seq = rs;
    result.records++;
    recent.set(prev, { seq: rs, at: l });
    if (recent.size > RECENT) recent.delete(recent.keys().next().value!);
  });

  if (result.intact && pendingBad) {
    const b = pendingBad;
    found({ kind: 'edited', file: b.at.file, line: b.at.line, message: `${where(b.at)} was edited: its content does not match its hash` });
  }
  if (result.intact && tornTail) {
    result.gaps.push({ file: tornTail.file, line: tornTail.line, reason: 'incomplete last line (a write cut short by a crash; the gateway moves it aside at its next start)' });
  }
  if (result.intact && 'missing' in headState && result.records > 0) {
    found({ kind: 'removed', file: headPathOf(dir), line: 0, seq: seq + 1, message: `HEAD.json is missing (the gateway writes it at every start), so records after seq ${seq} may have been removed with it` });
  } else if (result.intact && 'unreadable' in headState) {
    found({ kind: 'edited', file: headPathOf(dir), line: 0, message: `HEAD.json is not a head the gateway wrote (${headState.unreadable})` });
  } else if (result.intact && head && head.seq > seq) {
    found({ kind: 'removed', file: files[files.length - 1] ?? dir, line: 0, seq: seq + 1, message: `records after seq ${seq} were removed (the log ended at seq ${head.seq} when the gateway last stopped)` });
  } else if (result.intact && head && !headSeen && head.seq > 0) {
    found({ kind: 'edited', file: files[files.length - 1] ?? dir, line: 0, seq: head.seq, message: `record seq ${head.seq} is not the one written when the gateway last stopped` });
  }
  if (result.intact && result.recorded.length) found(result.recorded[0]);
  result.lastSeq = seq;
  return result;
}

function headPathOf(dir: string): string {
  return path.join(dir, 'HEAD.json');
}

function appearsLater(files: string[], after: RawLine, seq: number): RawLine | undefined {
  let passed = false;
  let hit: RawLine | undefined;
  const needle = `"seq":${seq},`;
  readLines(files.slice(files.indexOf(after.file)), (l) => {
    if (!passed) {
      passed = l.file === after.file && l.line === after.line;
      return;
    }
    if (l.text.startsWith(`{${needle}`) || l.text.includes(needle)) {
      hit = l;
      return false;
    }
  });
  return hit;
}
