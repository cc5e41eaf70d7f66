import { isUtf8 } from 'node:buffer';

/** A JSON body that is not what the unified endpoint accepts, with the byte offset where it went wrong. */
export class JsonScanError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at byte ${offset}`);
    this.name = 'JsonScanError';
  }
}

type Scalar = string | number | boolean | null;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether any byte is a raw control character (< 0x20). Raw control characters are legal JSON only as whitespace
 * between tokens; compact bodies (Claude Code's) have none. Four bytes at a time: a byte b < 0x20 is the one case
 * where (b - 0x20) borrows into its top bit while b's own top bit is clear, and a borrow only starts at such a
 * byte, so the test is exact. 3x faster than a regular expression over a latin1 copy (~25 µs for 87 KB).
 */
export function hasControlByte(buf: Buffer): boolean {
  const n = buf.length;
  let i = 0;
  while (i < n && (buf.byteOffset + i) % 4 !== 0) if (buf[i++] < 0x20) return true;
  const words = (n - i) >>> 2;
  if (words > 0) {
    const u32 = new Uint32Array(buf.buffer, buf.byteOffset + i, words);
    for (let w = 0; w < words; w++) {
      const x = u32[w];
      if (((x - 0x20202020) & ~x & 0x80808080) !== 0) return true;
    }
  }
  for (i += words * 4; i < n; i++) if (buf[i] < 0x20) return true;
  return false;
}

const enum State {
  Value,
  ValueOrEnd,
  KeyOrEnd,
  Key,
  Colon,
  CommaOrEnd,
  Done,
}

/**
 * Validates that a body is one JSON object and returns the top-level scalar members named in `keys`,
 * without building the document: strings are skipped with native searches, so a 100 KB Claude Code
 * request costs a tenth of JSON.parse. Bodies with raw control characters (pretty-printed JSON) take
 * JSON.parse instead, which is always the reference. Throws JsonScanError naming the problem.
 */
export function scanJsonObject(buf: Buffer, keys: readonly string[]): Record<string, Scalar> {
  if (!isUtf8(buf)) throw new JsonScanError('The body is not valid UTF-8', 0);
  if (hasControlByte(buf)) return viaParse(buf, keys);
  const wanted = new Set(keys);
  const out: Record<string, Scalar> = {};
  // An explicit stack, not recursion: any depth JSON.parse accepts is scanned without overflowing.
  const stack: number[] = []; // 0: object, 1: array
  const n = buf.length;
  let i = 0;
  let state = State.Value;
  let pendingKey: string | undefined;
  let nextBackslash = buf.indexOf(BACKSLASH);
  if (nextBackslash === -1) nextBackslash = n;

  /** Index just past the string starting at the quote at `at`, checking its escapes. */
  const stringEnd = (at: number): number => {
    let pos = at + 1;
    for (;;) {
      const q = buf.indexOf(QUOTE, pos);
      if (q === -1) throw new JsonScanError('Unterminated string', at);
      if (nextBackslash < pos) {
        nextBackslash = buf.indexOf(BACKSLASH, pos);
        if (nextBackslash === -1) nextBackslash = n;
      }
      if (nextBackslash > q) return q + 1;
      const e = buf[nextBackslash + 1];
      if (e === 0x75) {
        for (let k = 2; k < 6; k++) if (!isHex(buf[nextBackslash + k])) throw new JsonScanError('Bad Unicode escape in string', nextBackslash);
        pos = nextBackslash + 6;
      } else if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
        pos = nextBackslash + 2;
      } else {
        throw new JsonScanError('Bad escaped character in string', nextBackslash);
      }
      nextBackslash = buf.indexOf(BACKSLASH, pos);
      if (nextBackslash === -1) nextBackslash = n;
    }
  };

  const afterValue = () => (stack.length === 0 ? State.Done : State.CommaOrEnd);
  const capture = (value: Scalar) => {
    if (pendingKey !== undefined) out[pendingKey] = value;
    pendingKey = undefined;
  };

  while (i < n) {
    const c = buf[i];
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
      i++;
      continue;
    }
    switch (state) {
      case State.Value:
      case State.ValueOrEnd:
        if (state === State.ValueOrEnd && c === 0x5d) {
          stack.pop();
          i++;
          state = afterValue();
          break;
        }
        if (stack.length === 0 && c !== 0x7b) throw new JsonScanError('The body must be a JSON object', i);
        if (c === 0x7b || c === 0x5b) {
          // A wanted member whose (last) value is an object or array is not a scalar: JSON.parse's last duplicate wins.
          if (pendingKey !== undefined) delete out[pendingKey];
          pendingKey = undefined;
          stack.push(c === 0x7b ? 0 : 1);
          i++;
          state = c === 0x7b ? State.KeyOrEnd : State.ValueOrEnd;
        } else if (c === QUOTE) {
          const end = stringEnd(i);
          if (pendingKey !== undefined) capture(JSON.parse(buf.toString('utf8', i, end)) as string);
          i = end;
          state = afterValue();
        } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
          const end = numberEnd(buf, i);
          if (pendingKey !== undefined) capture(Number(buf.toString('latin1', i, end)));
          i = end;
          state = afterValue();
        } else if (literalAt(buf, i, 'true')) {
          capture(true);
          i += 4;
          state = afterValue();
        } else if (literalAt(buf, i, 'false')) {
          capture(false);
          i += 5;
          state = afterValue();
        } else if (literalAt(buf, i, 'null')) {
          capture(null);
          i += 4;
          state = afterValue();
        } else {
          throw new JsonScanError(`Unexpected character ${describe(c)}`, i);
        }
        break;
      case State.KeyOrEnd:
      case State.Key: {
        if (state === State.KeyOrEnd && c === 0x7d) {
          stack.pop();
          i++;
          state = afterValue();
          break;
        }
        if (c !== QUOTE) throw new JsonScanError('Expected a double-quoted property name', i);
        const end = stringEnd(i);
        if (stack.length === 1) {
          const key = end - i - 2 < 64 ? (JSON.parse(buf.toString('utf8', i, end)) as string) : undefined;
          pendingKey = key !== undefined && wanted.has(key) ? key : undefined;
        }
        i = end;
        state = State.Colon;
        break;
      }
      case State.Colon:
        if (c !== 0x3a) throw new JsonScanError("Expected ':' after property name", i);
        i++;
        state = State.Value;
        break;
      case State.CommaOrEnd: {
        const top = stack[stack.length - 1];
        if (c === 0x2c) {
          i++;
          state = top === 0 ? State.Key : State.Value;
        } else if ((top === 0 && c === 0x7d) || (top === 1 && c === 0x5d)) {
          stack.pop();
          i++;
          state = afterValue();
        } else {
          throw new JsonScanError(`Expected ',' or '${top === 0 ? '}' : ']'}'`, i);
        }
        break;
      }
      case State.Done:
        throw new JsonScanError('Unexpected data after the JSON object', i);
    }
  }
  if (state !== State.Done) throw new JsonScanError('Unexpected end of the body', n);
  return out;
}

function viaParse(buf: Buffer, keys: readonly string[]): Record<string, Scalar> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    const m = /position (\d+)/.exec((err as Error).message);
    throw new JsonScanError((err as Error).message.replace(/ in JSON at position \d+.*$/s, ''), m ? Number(m[1]) : 0);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new JsonScanError('The body must be a JSON object', 0);
  const out: Record<string, Scalar> = {};
  for (const k of keys) {
    const v = (parsed as Record<string, unknown>)[k];
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
  }
  return out;
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}

function literalAt(buf: Buffer, i: number, word: string): boolean {
  for (let k = 0; k < word.length; k++) if (buf[i + k] !== word.charCodeAt(k)) return false;
  return true;
}

/** End of a JSON number starting at `i` (grammar: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?). */
function numberEnd(buf: Buffer, start: number): number {
  let i = start;
  const digit = (c: number | undefined) => c !== undefined && c >= 0x30 && c <= 0x39;
  if (buf[i] === 0x2d) i++;
  if (buf[i] === 0x30) i++;
  else if (digit(buf[i])) while (digit(buf[i])) i++;
  else throw new JsonScanError('No number after minus sign', i);
  if (buf[i] === 0x2e) {
    i++;
    if (!digit(buf[i])) throw new JsonScanError('Unterminated fractional number', i);
    while (digit(buf[i])) i++;
  }
  if (buf[i] === 0x65 || buf[i] === 0x45) {
    i++;
    if (buf[i] === 0x2b || buf[i] === 0x2d) i++;
    if (!digit(buf[i])) throw new JsonScanError('Exponent part is missing a number', i);
    while (digit(buf[i])) i++;
  }
  return i;
}

function describe(c: number): string {
  return c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, '0')}`;
}
