import * as assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { KeyRing, generateKey } from '../../src/core/gateway/keys';

/**
 * The gateway key comparison is constant-time in structure: every presented secret is hashed once to a fixed
 * length and compared with every key's digest, with no early exit, whatever its length or how close it is.
 * (Structure, not stopwatch: timed assertions would be flaky.)
 */
describe('abuse: gateway key comparison work does not depend on the presented key', () => {
  const original = crypto.timingSafeEqual;
  let compares: Array<[number, number]> = [];

  beforeEach(() => {
    compares = [];
    (crypto as { timingSafeEqual: typeof original }).timingSafeEqual = (a, b) => {
      compares.push([a.byteLength, b.byteLength]);
      return original(a, b);
    };
  });
  afterEach(() => {
    (crypto as { timingSafeEqual: typeof original }).timingSafeEqual = original;
  });

  function ring(n: number): { ring: KeyRing; keys: string[] } {
    const r = new KeyRing();
    const keys = Array.from({ length: n }, (_, i) => generateKey() + 'x'.repeat(i));
    keys.forEach((k, i) => r.add({ id: `k${i}` }, k));
    return { ring: r, keys };
  }

  function attempt(r: KeyRing, presented: string): string {
    try {
      return r.authenticate({ authorization: `Bearer ${presented}` }).key.id;
    } catch (err) {
      return (err as { code: string }).code;
    }
  }

  it('the right key, a wrong key and keys of other lengths each cost one 32-byte comparison per configured key', () => {
    const { ring: r, keys } = ring(5);
    const candidates = [keys[0], keys[4], keys[0].slice(0, -1), `${keys[0]}z`, 'a', 'b'.repeat(10_000), keys[2].replace(/.$/, '#')];
    const work = candidates.map((c) => {
      compares = [];
      attempt(r, c);
      return compares;
    });
    for (const w of work) {
      assert.equal(w.length, 5, 'every configured key is compared, also after a match (no early exit)');
      for (const [a, b] of w) assert.deepEqual([a, b], [32, 32], 'digests of equal length: no length leak, no throw');
    }
    assert.equal(attempt(r, keys[0]), 'k0');
    assert.equal(attempt(r, keys[4]), 'k4');
    assert.equal(attempt(r, 'a'), 'CCGW_UNKNOWN_KEY');
  });

  it('signed tokens compare signatures of fixed length only', () => {
    const r = new KeyRing(Buffer.from('a-token-secret-of-some-length-000'));
    r.add({ id: 'k' }, generateKey());
    const token = r.issueToken('k', 60_000);
    const [prefix, payload, sig] = token.split('.');
    // The last character changed to another one (a signature ending in "A" stayed the same token 1 run in 16).
    const otherLast = sig.endsWith('A') ? 'Q' : 'A';
    for (const bad of [`${prefix}.${payload}.${sig.slice(0, -1)}${otherLast}`, `${prefix}.${payload}.x`, `${prefix}.${payload}.${sig}${sig}`]) {
      compares = [];
      assert.equal(attempt(r, bad), 'CCGW_UNKNOWN_KEY');
      for (const [a, b] of compares) assert.equal(a, b);
    }
    assert.equal(attempt(r, token), 'k');
  });
});
