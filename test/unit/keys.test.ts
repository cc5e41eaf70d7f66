import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { KeyRing } from '../../src/core/gateway/keys';
import { codeOf } from '../helpers/throws';

describe('gateway keys', () => {
  const secret = Buffer.from('unit-test-token-secret');
  const ring = KeyRing.fromConfig(
    [
      { id: 'alice', key: '${env:KEY_ALICE}', team: 'platform', project: 'web' },
      { id: 'bob', sha256: createHash('sha256').update('bob-secret').digest('hex') },
      { id: 'carol', key: 'carol-secret', revoked: true },
      { id: 'dave', key: '${env:KEY_DAVE_UNSET}' },
    ],
    { env: { KEY_ALICE: 'alice-secret' }, tokenSecret: secret },
  );

  it('accepts a key from Authorization: Bearer, x-api-key or Proxy-Authorization', () => {
    assert.equal(ring.authenticate({ authorization: 'Bearer alice-secret' }).key.id, 'alice');
    assert.equal(ring.authenticate({ 'x-api-key': 'alice-secret' }).header, 'x-api-key');
    assert.equal(ring.authenticate({ 'proxy-authorization': 'Bearer bob-secret' }).key.id, 'bob');
  });

  it('prefers Proxy-Authorization, so a client credential in Authorization can pass through', () => {
    const a = ring.authenticate({ authorization: 'Bearer ya29.google-token', 'proxy-authorization': 'Bearer alice-secret' });
    assert.equal(a.key.id, 'alice');
    assert.equal(a.header, 'proxy-authorization');
  });

  it('answers no credential with 401 and an unknown key with 403 (so Claude Code fails fast)', () => {
    assert.equal(codeOf(() => ring.authenticate({})), 'CCGW_NO_CREDENTIAL');
    assert.equal(codeOf(() => ring.authenticate({ authorization: 'Basic abc' })), 'CCGW_NO_CREDENTIAL');
    assert.equal(codeOf(() => ring.authenticate({ authorization: 'Bearer wrong' })), 'CCGW_UNKNOWN_KEY');
    assert.equal(codeOf(() => ring.authenticate({ authorization: 'Bearer alice-secret-but-longer' })), 'CCGW_UNKNOWN_KEY');
    assert.equal(codeOf(() => ring.authenticate({ authorization: 'Bearer carol-secret' })), 'CCGW_REVOKED_KEY');
  });

  it('warns about a key whose variable is unset instead of failing the whole ring', () => {
    assert.equal(ring.warnings.length, 1);
    assert.match(ring.warnings[0], /keys\[3\]\.key: environment variable KEY_DAVE_UNSET is not set/);
  });

  it('issues signed tokens that authenticate as the key until they expire', () => {
    const token = ring.issueToken('bob', 60_000);
    assert.equal(ring.authenticate({ authorization: `Bearer ${token}` }).key.id, 'bob');
    const expired = ring.issueToken('bob', 1_000, Date.now() - 10_000);
    assert.equal(codeOf(() => ring.authenticate({ authorization: `Bearer ${expired}` })), 'CCGW_EXPIRED_TOKEN');
    const forged = token.replace(/\.[^.]+$/, '.AAAA');
    assert.equal(codeOf(() => ring.authenticate({ authorization: `Bearer ${forged}` })), 'CCGW_UNKNOWN_KEY');
    const other = KeyRing.fromConfig([{ id: 'bob', key: 'x' }], { tokenSecret: Buffer.from('another-secret') });
    assert.equal(codeOf(() => other.authenticate({ authorization: `Bearer ${token}` })), 'CCGW_UNKNOWN_KEY');
    // A key whose secret is unknown here can still be used through tokens.
    assert.equal(ring.authenticate({ authorization: `Bearer ${ring.issueToken('dave', 60_000)}` }).key.id, 'dave');
  });

  it('pins a key to a profile', () => {
    ring.pin('alice', 'bedrock-us');
    assert.equal(ring.authenticate({ authorization: 'Bearer alice-secret' }).key.profile, 'bedrock-us');
  });
});
