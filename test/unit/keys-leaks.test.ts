import * as assert from 'node:assert/strict';
import { forwardableHeaders } from '../../src/core/gateway/forward';
import { generateKey, KeyRing, projectFor, sha256, type GatewayKey } from '../../src/core/gateway/keys';
import { codeOf } from '../helpers/throws';

describe('gateway keys: finding them in header values and text', () => {
  const secret = Buffer.from('unit-test-token-secret');
  const key = generateKey();
  const configured = 'a-configured-key with spaces';
  const hashed = 'only-its-hash-is-known-0123';
  const ring = KeyRing.fromConfig(
    [
      { id: 'configured', key: configured },
      { id: 'hashed', sha256: sha256(hashed).toString('hex') },
    ],
    { tokenSecret: secret },
  );
  ring.add({ id: 'window' }, key);
  const token = ring.issueToken('window', 60_000);
  const expired = ring.issueToken('window', 1_000, Date.now() - 10_000);

  it('finds a key as the whole value, as a Bearer credential and as a word inside a longer value', () => {
    // A key known by its hash only: found as the whole value or Bearer credential; inside words once it has authenticated.
    assert.deepEqual(ring.credentialsIn(hashed), [hashed]);
    assert.deepEqual(ring.credentialsIn(`Bearer ${hashed}`), [hashed]);
    assert.deepEqual(ring.credentialsIn(`x=${hashed}; y`), []);
    assert.equal(ring.authenticate({ 'x-api-key': hashed }).key.id, 'hashed');
    for (const k of [key, hashed]) {
      assert.deepEqual(ring.credentialsIn(k), [k]);
      assert.deepEqual(ring.credentialsIn(`Bearer ${k}`), [k]);
      assert.deepEqual(ring.credentialsIn(`claude-code-20250219,${k}`), [k]);
      assert.deepEqual(ring.credentialsIn(`x=${k}; y`), [k]);
    }
    // A key of any characters is found where keys are sent: the whole value or a Bearer credential.
    assert.equal(ring.carriesCredential(configured), true);
    assert.equal(ring.carriesCredential(`Bearer ${configured}`), true);
  });

  it('finds a key glued to a JSON escape in a body, escaped once or twice', () => {
    assert.deepEqual(ring.credentialsIn(`{"content":"key:\\n${key}\\n"}`), [key]);
    assert.deepEqual(ring.credentialsIn(`{"content":"{\\"k\\":\\"x\\\\n${key}\\\\t\\"}"}`), [key]);
    assert.deepEqual(ring.credentialsIn(`"\\u000a${key}"`), [key]);
    // A key one character longer than another: "n" + the shorter key is a candidate of the longer one's length first.
    const two = new KeyRing();
    const longer = `${generateKey()}x`;
    two.add({ id: 'short' }, key);
    two.add({ id: 'long' }, longer);
    assert.deepEqual(two.credentialsIn(`"a\\n${key}"`), [key]);
  });

  it('finds tokens this ring signed, expired ones too, and not tokens of another gateway', () => {
    assert.deepEqual(ring.credentialsIn(`Bearer ${token}`), [token]);
    assert.deepEqual(ring.credentialsIn(`note ${expired} end`), [expired]);
    const other = new KeyRing(Buffer.from('another-gateway'));
    other.add({ id: 'window' }, 'x'.repeat(20));
    assert.equal(ring.carriesCredential(`Bearer ${other.issueToken('window', 60_000)}`), false);
  });

  it('ignores values that are not keys: near misses, longer and shorter strings', () => {
    for (const v of ['application/json', '2023-06-01', 'claude-cli/2.0.0 (external, cli)', key.slice(0, -1), `${key}x`, `Bearer ${hashed}0`, 'ccgwt1.abc.def']) {
      assert.equal(ring.carriesCredential(v), false, v);
    }
  });

  it('forwardableHeaders drops any header carrying a credential and refuses when that leaves no client credential', () => {
    const out = forwardableHeaders({ 'x-note': `a ${key}`, 'anthropic-beta': 'b1', authorization: 'Bearer user-own', 'x-api-key': key }, ring, new Set(['authorization', 'x-api-key']));
    assert.deepEqual(out, { 'anthropic-beta': 'b1', authorization: 'Bearer user-own', 'accept-encoding': 'identity' });
    assert.equal(codeOf(() => forwardableHeaders({ authorization: `Bearer ${token}` }, ring, new Set(['authorization']))), 'CCGW_INVALID_REQUEST');
    // Nothing to keep (gateway credentials): dropped, no refusal.
    assert.deepEqual(forwardableHeaders({ authorization: `Bearer ${key}` }, ring), { 'accept-encoding': 'identity' });
  });
});

describe('gateway keys: the project header', () => {
  const key = (k: Partial<GatewayKey>): GatewayKey => ({ id: 'k', ...k });

  it("is the key's own project when absent or equal to it", () => {
    assert.equal(projectFor(key({ project: 'web' }), undefined), 'web');
    assert.equal(projectFor(key({ project: 'web' }), 'web'), 'web');
    assert.equal(projectFor(key({}), undefined), undefined);
  });

  it('chooses one of the projects the key lists, or any with "*"', () => {
    assert.equal(projectFor(key({ projects: ['a', 'b'] }), 'b'), 'b');
    assert.equal(projectFor(key({ project: 'web', projects: ['a'] }), 'a'), 'a');
    assert.equal(projectFor(key({ projects: '*' }), 'anything'), 'anything');
  });

  it('refuses any other project with a 403 naming the header and the allowed projects', () => {
    for (const k of [key({}), key({ project: 'web' }), key({ projects: ['a'] }), key({ admin: true })]) {
      try {
        projectFor(k, 'victim');
        assert.fail('accepted');
      } catch (err) {
        const e = err as { code?: string; statusCode?: number; message: string };
        assert.equal(e.code, 'CCGW_FORBIDDEN');
        assert.equal(e.statusCode, 403);
        assert.match(e.message, /x-claude-code-gateway-project/);
        if (k.project) assert.match(e.message, /"web"/);
      }
    }
  });
});
