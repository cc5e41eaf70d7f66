import * as assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { GENESIS, recordHash, sealRecord } from '../../src/core/store/postgres/audit-chain';
import { grantsSql, MIGRATIONS, SCHEMA_VERSION } from '../../src/core/store/postgres/schema';
import { channelName, checkName, ident, literal, migrationLockKey, StoreError } from '../../src/core/store/postgres/sql';

describe('store (PostgreSQL): names, quoting and sealing', () => {
  it('quotes identifiers and literals so that no name can end them', () => {
    assert.equal(ident('ccgw'), '"ccgw"');
    assert.equal(ident('a"b; DROP'), '"a""b; DROP"');
    assert.equal(literal("it's"), "'it''s'");
  });

  it('refuses schema names with "$" or NUL, empty ones and ones over 63 bytes, naming the setting', () => {
    for (const bad of ['', 'a$b', 'a\0b', 'x'.repeat(64), 'é'.repeat(32)]) {
      assert.throws(() => checkName(bad, 'store.schema'), (err: Error) => err instanceof StoreError && /^store\.schema ".*" is not usable/.test(err.message));
    }
    assert.equal(checkName('Team "gw"', 'store.schema'), 'Team "gw"');
  });

  it('gives each schema its own short notification channels and migration lock', () => {
    const a = channelName('ccgw', 'keys');
    assert.match(a, /^ccgw_[0-9a-f]{12}_keys$/);
    assert.equal(a, channelName('ccgw', 'keys'), 'the same in every process');
    assert.notEqual(a, channelName('other', 'keys'));
    assert.ok(Buffer.byteLength(channelName('x'.repeat(63), 'budgets')) < 63);
    const lock = BigInt(migrationLockKey('ccgw'));
    assert.ok(lock >= -(2n ** 63n) && lock < 2n ** 63n, 'a signed 64-bit advisory lock key');
    assert.notEqual(migrationLockKey('ccgw'), migrationLockKey('other'));
  });

  it('seals a record as JSON in a fixed order (chain, seq, t, type, fields, prev), hashed with HMAC when keyed', () => {
    const row = sealRecord('r1', 1, '2026-12-04T00:00:00.000Z', 'call', { key: 'alice', costUsd: 0.01 }, GENESIS, undefined);
    assert.equal(row.record, `{"chain":"r1","seq":1,"t":"2026-12-04T00:00:00.000Z","type":"call","key":"alice","costUsd":0.01,"prev":"${GENESIS}"}`);
    assert.equal(row.hash, createHash('sha256').update(row.record).digest('hex'));
    const key = Buffer.from('k'.repeat(32));
    const keyed = sealRecord('r1', 1, '2026-12-04T00:00:00.000Z', 'call', { key: 'alice', costUsd: 0.01 }, GENESIS, key);
    assert.equal(keyed.hash, createHmac('sha256', key).update(keyed.record).digest('hex'));
    assert.notEqual(keyed.hash, row.hash);
    assert.equal(recordHash(keyed.record, key), keyed.hash);
  });

  it('the schema version is the last migration; the grants give audit SELECT and INSERT only, and keys UPDATE of revoked_at only', () => {
    assert.equal(SCHEMA_VERSION, MIGRATIONS[MIGRATIONS.length - 1].version);
    assert.deepEqual(
      MIGRATIONS.map((m) => m.version),
      MIGRATIONS.map((_, i) => i + 1),
    );
    const sql = grantsSql('ccgw', 'gw');
    assert.match(sql, /GRANT SELECT, INSERT ON "ccgw"\.audit, "ccgw"\.audit_chains TO "gw";/);
    assert.match(sql, /GRANT UPDATE \(revoked_at\) ON "ccgw"\.keys TO "gw";/);
    for (const line of sql.split('\n')) if (/\baudit\b/.test(line)) assert.doesNotMatch(line, /UPDATE|DELETE|TRUNCATE|ALL/);
  });
});
