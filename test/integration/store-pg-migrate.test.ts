import * as assert from 'node:assert/strict';
import type { Pool } from 'pg';
import { grantServingRole, migrate } from '../../src/core/store/postgres/migrate';
import { SCHEMA_VERSION } from '../../src/core/store/postgres/schema';
import { StoreError } from '../../src/core/store/postgres/sql';
import { OWNER, SERVING, startStoreCluster, type StoreCluster } from '../helpers/store-pg';

/** The PostgreSQL store's schema: versioned, migrated once under a lock, and least privilege for the serving role. */
describe('store (PostgreSQL): schema migration and grants', function () {
  this.timeout(60_000);
  let cluster: StoreCluster;
  let owner: Pool;
  let serving: Pool;

  before(async () => {
    cluster = await startStoreCluster();
    owner = cluster.pool(cluster.ownerUrl);
    serving = cluster.pool(cluster.servingUrl);
  });
  after(async () => {
    await cluster?.close();
  });

  it('three replicas starting at the same moment on a fresh database migrate once; all three succeed at the current version', async () => {
    const pools = [cluster.pool(cluster.ownerUrl, 2), cluster.pool(cluster.ownerUrl, 2), cluster.pool(cluster.ownerUrl, 2)];
    const results = await Promise.all(pools.map((p) => migrate(p)));
    for (const r of results) assert.equal(r.version, SCHEMA_VERSION);
    const applied = results.map((r) => r.applied);
    assert.equal(applied.filter((a) => a.length > 0).length, 1, `exactly one applied the migrations: ${JSON.stringify(applied)}`);
    assert.deepEqual(applied.find((a) => a.length), [1, 2]);
    const rows = await owner.query<{ version: number }>('SELECT version FROM ccgw.schema_version ORDER BY version');
    assert.deepEqual(rows.rows.map((r) => r.version), [1, 2], 'each migration recorded once');
    const tables = await owner.query<{ tableowner: string }>(`SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'ccgw'`);
    assert.deepEqual(tables.rows.map((r) => r.tableowner), [OWNER], 'every table belongs to the owner role');
  });

  it('the serving role without grants is told which grants are missing', async () => {
    await assert.rejects(migrate(serving), (err: Error) => {
      assert.ok(err instanceof StoreError, String(err));
      assert.match(err.message, /Role "ccgw_gateway" may not read "ccgw"\.schema_version: the grants for the serving role are missing/);
      return true;
    });
  });

  it('with the grants, the serving role finds the schema current and changes nothing', async () => {
    await grantServingRole(owner, SERVING);
    await grantServingRole(owner, SERVING); // idempotent: an operator may run it again
    const r = await migrate(serving);
    assert.deepEqual(r, { schema: 'ccgw', version: SCHEMA_VERSION, applied: [] });
  });

  it('the serving role can read and append audit records but not change, delete or truncate them', async () => {
    await serving.query(`INSERT INTO ccgw.audit (chain, seq, t, type, record, hash) VALUES ('c1', 1, now(), 'start', '{}', 'h')`);
    assert.equal((await serving.query('SELECT count(*)::int AS n FROM ccgw.audit')).rows[0].n, 1);
    for (const sql of [`UPDATE ccgw.audit SET record = '{"x":1}' WHERE chain = 'c1'`, `DELETE FROM ccgw.audit WHERE chain = 'c1'`, 'TRUNCATE ccgw.audit', `DELETE FROM ccgw.audit_chains`]) {
      await assert.rejects(serving.query(sql), /permission denied for table audit/, sql);
    }
    assert.equal((await owner.query('SELECT count(*)::int AS n FROM ccgw.audit')).rows[0].n, 1, 'the row is unchanged');
    await owner.query(`DELETE FROM ccgw.audit WHERE chain = 'c1'`);
  });

  it('the serving role may revoke keys but not rewrite their hash, delete them, or change budgets except through the functions', async () => {
    const hash = 'a'.repeat(64);
    await serving.query(`INSERT INTO ccgw.keys (id, sha256) VALUES ('k1', $1)`, [hash]);
    await serving.query(`UPDATE ccgw.keys SET revoked_at = now() WHERE id = 'k1'`);
    await assert.rejects(serving.query(`UPDATE ccgw.keys SET sha256 = $1 WHERE id = 'k1'`, ['b'.repeat(64)]), /permission denied for table keys/);
    await assert.rejects(serving.query(`DELETE FROM ccgw.keys WHERE id = 'k1'`), /permission denied for table keys/);
    await assert.rejects(serving.query(`UPDATE ccgw.budget_windows SET spent_usd = 0`), /permission denied for table budget_windows/);
    await assert.rejects(serving.query(`DELETE FROM ccgw.rate_slots`), /permission denied for table rate_slots/);
    // Nor hand spend back, or counts, through the functions it may call.
    const day = [new Date('2026-12-04T00:00:00Z'), new Date('2026-12-05T00:00:00Z')];
    await assert.rejects(
      serving.query('SELECT * FROM ccgw.budget_sync($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)', ['r', 'global', 'day', ...day, 1, -5, 0, 0, 0, 60000]),
      /budget_sync: amounts must be >= 0/,
    );
    await assert.rejects(
      serving.query('SELECT * FROM ccgw.rate_sync($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)', ['r', 'global', 'requests', 60, 1, [1], [-10], 0, 0, 60000]),
      /rate_sync: counts must be >= 0/,
    );
    await owner.query(`DELETE FROM ccgw.keys WHERE id = 'k1'`);
  });

  it('on an older schema the serving role fails with a message naming the owner role and what to run', async () => {
    await migrate(owner, { schema: 'old', upTo: 1 });
    await owner.query(`GRANT USAGE ON SCHEMA old TO ${SERVING}; GRANT SELECT ON old.schema_version TO ${SERVING}`);
    await assert.rejects(migrate(serving, { schema: 'old' }), (err: Error) => {
      assert.ok(err instanceof StoreError);
      assert.equal((err as StoreError).code, 'CCGW_STORE_SCHEMA_OLD');
      assert.match(err.message, /schema "old" is at version 1 \(this gateway needs version 2\), and role "ccgw_gateway" may not change it: run the migrations once as the owner role \("ccgw_owner"\)/);
      return true;
    });
    const r = await migrate(owner, { schema: 'old' });
    assert.deepEqual(r.applied, [2], 'the owner upgrades it from where it stands');
  });

  it('a schema that does not exist is not created by the serving role (the message says so)', async () => {
    await assert.rejects(migrate(serving, { schema: 'nowhere' }), /schema "nowhere" does not exist \(this gateway needs version 2\), and role "ccgw_gateway" may not create it/);
  });

  it('a schema newer than this gateway is refused, asking for a newer gateway', async () => {
    await migrate(owner, { schema: 'future' });
    await owner.query(`INSERT INTO future.schema_version (version, name) VALUES (99, 'from a later release')`);
    await assert.rejects(migrate(owner, { schema: 'future' }), /at version 99, newer than this gateway's 2: upgrade this gateway/);
  });

  it('any schema name is quoted safely (quotes, spaces, capitals); "$" is refused with a clear message', async () => {
    const name = 'Team "gw"; DROP SCHEMA ccgw --';
    const r = await migrate(owner, { schema: name });
    assert.deepEqual(r.applied, [1, 2]);
    const n = await owner.query('SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = $1', [name]);
    assert.ok(n.rows[0].n >= 8, 'its tables are in the schema of that exact name');
    assert.equal((await owner.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'ccgw'`)).rows[0].n, 1, 'ccgw is untouched');
    await assert.rejects(migrate(owner, { schema: 'a$b' }), /store\.schema "a\$b" is not usable: it must be 1-63 bytes without "\$" or NUL/);
  });
});
