import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { capturedBodies } from '../helpers/traffic';
import { hasControlByte, JsonScanError, scanJsonObject } from '../../src/core/gateway/json-scan';

const KEYS = ['model', 'stream', 'max_tokens', 'a'];

/** What JSON.parse says of a text: the wanted top-level scalars, or that it is not a JSON object. */
function reference(text: string): Record<string, unknown> | 'invalid' {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'invalid';
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'invalid';
  const out: Record<string, unknown> = {};
  for (const k of KEYS) {
    const x = (v as Record<string, unknown>)[k];
    if (x === null || ['string', 'number', 'boolean'].includes(typeof x)) out[k] = x;
  }
  return out;
}

function scan(text: string): Record<string, unknown> | 'invalid' {
  try {
    return scanJsonObject(Buffer.from(text, 'utf8'), KEYS);
  } catch (err) {
    assert.ok(err instanceof JsonScanError, String(err));
    return 'invalid';
  }
}

describe('scanJsonObject (validating scan of unified-endpoint bodies)', () => {
  it('agrees with JSON.parse on generated JSON objects', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...KEYS, 'b', 'ü', 'x"y'), fc.jsonValue({ maxDepth: 4 })), (obj) => {
        const text = JSON.stringify(obj);
        assert.deepEqual(scan(text), reference(text));
      }),
      { numRuns: 2000, seed: 42 },
    );
  });

  it('agrees with JSON.parse on corrupted JSON (every verdict and every extracted value)', () => {
    const corrupt = fc
      .tuple(fc.dictionary(fc.constantFrom(...KEYS, 'b'), fc.jsonValue({ maxDepth: 3 })), fc.nat(), fc.constantFrom('delete', 'insert', 'replace'), fc.constantFrom(...'{}[]",:\\ 0-.eE+tfnu\u0001\n'.split('')))
      .map(([obj, at, op, ch]) => {
        const t = JSON.stringify(obj);
        const p = t.length ? at % t.length : 0;
        if (op === 'delete') return t.slice(0, p) + t.slice(p + 1);
        if (op === 'insert') return t.slice(0, p) + ch + t.slice(p);
        return t.slice(0, p) + ch + t.slice(p + 1);
      });
    fc.assert(
      fc.property(corrupt, (text) => {
        assert.deepEqual(scan(text), reference(text), JSON.stringify(text));
      }),
      { numRuns: 5000, seed: 7 },
    );
  });

  it('agrees with JSON.parse on duplicated keys, escaped key names and whitespace anywhere (the last duplicate wins)', () => {
    // Members written by hand: JSON.stringify never repeats a key, escapes a plain letter or puts a tab before a comma.
    const escapeKey = (k: string, mask: number) =>
      [...k].map((ch, i) => ((mask >> i) & 1 ? `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}` : ch)).join('');
    const member = fc
      .tuple(fc.constantFrom(...KEYS, 'b'), fc.nat(1023), fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('', ' ', '\t', '\n', '\r\n '))
      .map(([k, mask, v, ws]) => `${ws}"${escapeKey(k, mask)}"${ws}:${ws}${JSON.stringify(v)}${ws}`);
    fc.assert(
      fc.property(fc.array(member, { maxLength: 8 }), (members) => {
        const text = `{${members.join(',')}}`;
        assert.deepEqual(scan(text), reference(text), text);
      }),
      { numRuns: 3000, seed: 11 },
    );
    // The instances that priced an Opus call as Haiku through the old passthrough peek.
    for (const text of ['{"mod\\u0065l":"claude-opus-4-1"}', '{"model":"claude-haiku-4-5","model":"claude-opus-4-1"}', '{"stream":true\t,"model":"m"}', '{"model":"claude-haiku-4-5","model":{"x":1}}']) {
      assert.deepEqual(scan(text), reference(text), text);
    }
  });

  it('names the problem and where it is', () => {
    assert.throws(() => scanJsonObject(Buffer.from('{"model": "x",}'), KEYS), /Expected a double-quoted property name at byte 14/);
    assert.throws(() => scanJsonObject(Buffer.from('[1]'), KEYS), /must be a JSON object/);
    assert.throws(() => scanJsonObject(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]), KEYS), /not valid UTF-8/);
    const deep = '{"a":' + '['.repeat(100_000) + ']'.repeat(100_000) + ',"model":"m"}';
    assert.deepEqual(scan(deep), reference(deep), 'deep nesting scans like JSON.parse, without recursion');
    assert.throws(() => scanJsonObject(Buffer.from('{"a":' + '['.repeat(1000) + ']'.repeat(999) + '}'), KEYS), /Expected ',' or '\]' at byte 2004/);
  });

  it('agrees with JSON.parse on every captured Claude Code request, pretty-printed too', () => {
    const captured = capturedBodies();
    if (!captured.length) return;
    let checked = 0;
    for (const { body } of captured) {
      for (const text of [JSON.stringify(body), JSON.stringify(body, null, 2)]) assert.deepEqual(scan(text), reference(text));
      checked++;
    }
    assert.ok(checked > 50);
  });
});

describe('hasControlByte (four bytes at a time)', () => {
  it('agrees with a byte-by-byte check on any bytes at any alignment', () => {
    const byte = fc.oneof(fc.integer({ min: 0, max: 0x21 }), fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x20, 0x1f, 0x80, 0x9f, 0xff));
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 40 }), fc.integer({ min: 0, max: 7 }), (bytes, offset) => {
        const backing = Buffer.alloc(bytes.length + 8, 0x41);
        const buf = backing.subarray(offset, offset + bytes.length);
        buf.set(bytes);
        assert.equal(hasControlByte(buf), bytes.some((b) => b < 0x20));
      }),
      { numRuns: 5000 },
    );
  });
});
