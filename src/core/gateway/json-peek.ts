const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;

/** Index of the quote closing a JSON string whose content starts at `from`, or -1. */
function stringEnd(buf: Buffer, from: number): number {
  let i = from;
  for (;;) {
    const q = buf.indexOf(QUOTE, i);
    if (q === -1) return -1;
    let backslashes = 0;
    for (let j = q - 1; j >= from && buf[j] === BACKSLASH; j--) backslashes++;
    if (backslashes % 2 === 0) return q;
    i = q + 1;
  }
}

function skipSpace(buf: Buffer, i: number): number {
  while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x0a || buf[i] === 0x0d || buf[i] === 0x09)) i++;
  return i;
}

/**
 * Reads top-level scalar members of a JSON object body without parsing the whole document: passthrough
 * routes forward the bytes unchanged and only need the model and stream flag for accounting. Strings are
 * skipped with native searches, so a 100 KB Claude Code request costs a fraction of JSON.parse.
 * Returns undefined when the body is not a JSON object.
 */
export function peekTopLevel(buf: Buffer | undefined, keys: readonly string[]): Record<string, string | boolean | number | null> | undefined {
  if (!buf || buf.length === 0) return undefined;
  let i = skipSpace(buf, 0);
  if (buf[i] !== OPEN_OBJ) return undefined;
  i++;
  const wanted = new Set(keys);
  const out: Record<string, string | boolean | number | null> = {};
  let found = 0;
  let depth = 1;
  let expectKey = true;
  while (i < buf.length && depth > 0) {
    const c = buf[i];
    if (c === QUOTE) {
      const end = stringEnd(buf, i + 1);
      if (end === -1) return out;
      if (depth === 1 && expectKey) {
        const key = buf.toString('utf8', i + 1, end);
        expectKey = false;
        if (wanted.has(key)) {
          let v = skipSpace(buf, end + 1);
          if (buf[v] !== COLON) return out;
          v = skipSpace(buf, v + 1);
          const value = readScalar(buf, v);
          if (value) {
            out[key] = value.value;
            if (++found === wanted.size) return out;
            i = value.end;
            continue;
          }
        }
      }
      i = end + 1;
      continue;
    }
    if (c === OPEN_OBJ || c === OPEN_ARR) depth++;
    else if (c === CLOSE_OBJ || c === CLOSE_ARR) depth--;
    else if (depth === 1 && c === COMMA) expectKey = true;
    i++;
  }
  return out;
}

function readScalar(buf: Buffer, i: number): { value: string | boolean | number | null; end: number } | undefined {
  if (buf[i] === QUOTE) {
    const end = stringEnd(buf, i + 1);
    if (end === -1) return undefined;
    try {
      return { value: JSON.parse(buf.toString('utf8', i, end + 1)) as string, end: end + 1 };
    } catch {
      return undefined;
    }
  }
  let end = i;
  while (end < buf.length && buf[end] !== COMMA && buf[end] !== CLOSE_OBJ && buf[end] !== 0x20 && buf[end] !== 0x0a && buf[end] !== 0x0d) end++;
  const text = buf.toString('latin1', i, end);
  if (text === 'true') return { value: true, end };
  if (text === 'false') return { value: false, end };
  if (text === 'null') return { value: null, end };
  const n = Number(text);
  return Number.isFinite(n) && text !== '' ? { value: n, end } : undefined;
}
