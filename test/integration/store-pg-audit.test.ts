import * as assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { PgAuditLog } from '../../src/core/store/postgres/audit';
import { verifyStoreAudit } from '../../src/core/store/postgres/audit-verify';
import { grantServingRole, migrate } from '../../src/core/store/postgres/migrate';
import { storeUsageReport } from '../../src/core/store/postgres/usage';
import { SERVING, startStoreCluster, type StoreCluster } from '../helpers/store-pg';

/** Counts the statements a pool is asked to run (to see group commit: one INSERT for a turn's records). */
function countQueries(pool: Pool): { readonly inserts: number } {
  const counter = { inserts: 0 };
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  (pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('INSERT INTO "ccgw".audit ')) counter.inserts++;
    return query(...args);
  };
  return counter;
}

function callRecord(i: number): Record<string, unknown> {
  return { key: 'alice', profile: 'a', model: 'claude-sonnet-4-5', status: 'ok', costUsd: 0.001 * (i % 7), usage: { input: 10 + i, output: 5 } };
}

describe('store (PostgreSQL): audit chains from many replicas', function () {
  this.timeout(60_000);
  let cluster: StoreCluster;
  let serving: Pool;
  let superPool: Pool;
  const key = randomBytes(32);
  const logs: PgAuditLog[] = [];
  const open = (chain: string, opts: { key?: Buffer; pool?: Pool } = {}) => {
    const log = new PgAuditLog(opts.pool ?? serving, { chain, key: 'key' in opts ? opts.key : key, checkpointMs: 0 });
    logs.push(log);
    return log;
  };

  before(async () => {
    cluster = await startStoreCluster();
    const owner = cluster.pool(cluster.ownerUrl);
    await migrate(owner);
    await grantServingRole(owner, SERVING);
    serving = cluster.pool(cluster.servingUrl);
    superPool = cluster.pool(cluster.pg.url('postgres', 'ccgw'));
  });
  after(async () => {
    for (const l of logs) await l.close(0);
    await cluster?.close();
  });

  it('three replicas each write their own chain; the records of one event-loop turn go in one INSERT; verify passes', async () => {
    const pools = [cluster.pool(cluster.servingUrl), cluster.pool(cluster.servingUrl), cluster.pool(cluster.servingUrl)];
    const counters = pools.map(countQueries);
    const replicas = ['r1', 'r2', 'r3'].map((c, i) => open(c, { pool: pools[i] }));
    for (const [i, log] of replicas.entries()) log.append('start', { instance: log.chain, pid: 1000 + i });
    await Promise.all(replicas.map((l) => l.whenWritten()));
    const before = counters.map((c) => c.inserts);
    for (const log of replicas) for (let i = 0; i < 300; i++) log.append('call', callRecord(i));
    await Promise.all(replicas.map((l) => l.whenWritten()));
    assert.deepEqual(
      counters.map((c, i) => c.inserts - before[i]),
      [1, 1, 1],
      'the 300 records each replica queued in one turn went in one INSERT',
    );
    for (const log of replicas) log.append('stop', { instance: log.chain });
    await Promise.all(replicas.map((l) => l.whenWritten()));
    const v = await verifyStoreAudit(serving, { key });
    assert.equal(v.intact, true, JSON.stringify(v.tamper));
    assert.equal(v.chains, 3);
    assert.equal(v.records, 3 * 302);
    assert.deepEqual(v.gaps, []);
    const seqs = await serving.query<{ chain: string; n: number; max: string }>(`SELECT chain, count(*)::int AS n, max(seq) AS max FROM ccgw.audit GROUP BY chain ORDER BY chain`);
    assert.deepEqual(seqs.rows.map((r) => [r.chain, r.n, Number(r.max)]), [['r1', 302, 302], ['r2', 302, 302], ['r3', 302, 302]]);
  });

  it('usage over the store sums the call records of every replica between since and until', async () => {
    const day = Date.parse('2026-01-15T10:00:00Z');
    const replicas = [open('usage-1'), open('usage-2')];
    for (let i = 0; i < 6; i++) {
      replicas[i % 2].append('call', { key: i % 3 === 0 ? 'alice' : 'bob', status: 'ok', usage: { input: 100, output: 10 }, costUsd: 0.25, priceKnown: true }, day + i * 1000);
    }
    replicas[0].append('call', { key: 'alice', status: 'ok', usage: { input: 1, output: 1 }, costUsd: 100 }, day + 86_400_000);
    await Promise.all(replicas.map((l) => l.whenWritten()));
    const r = await storeUsageReport(serving, { since: Date.parse('2026-01-15T00:00:00Z'), until: Date.parse('2026-01-15T23:59:59Z'), by: 'key' });
    assert.equal(r.totals.requests, 6);
    assert.equal(r.totals.input, 600);
    assert.equal(r.totals.costUsd, 1.5);
    assert.deepEqual(
      r.groups?.map((g) => [g.group, g.requests, g.costUsd]),
      [
        ['alice', 2, 0.5],
        ['bob', 4, 1],
      ],
    );
    // More records than one page (5000), several sharing a millisecond: each is counted once.
    for (let i = 0; i < 6000; i++) replicas[i % 2].append('call', { key: 'carol', status: 'ok', usage: { input: 1, output: 0 }, costUsd: 0.001 }, day + 3_600_000 + Math.floor(i / 4));
    await Promise.all(replicas.map((l) => l.whenWritten()));
    const big = await storeUsageReport(serving, { since: Date.parse('2026-01-15T00:00:00Z'), until: Date.parse('2026-01-15T23:59:59Z') });
    assert.equal(big.totals.requests, 6006);
    assert.equal(big.totals.input, 6600);
  });

  it('with the database stopped, records wait in memory in order (pending and failure for /health) and are all written when it returns; the chain stays intact', async () => {
    const log = open('outage');
    log.append('start', { instance: 'outage' });
    await log.whenWritten();
    await cluster.pg.stop();
    for (let i = 0; i < 100; i++) log.append('call', callRecord(i));
    assert.equal(await log.flush(), false);
    assert.equal(log.pendingRecords, 100);
    assert.ok(log.failure, 'failure is set while the store is away');
    assert.match(log.failure.message, /the store cannot write audit records/);
    for (let i = 100; i < 150; i++) log.append('call', callRecord(i));
    const t0 = performance.now();
    await cluster.pg.start();
    await log.whenWritten();
    console.log(`      150 records queued during the outage written ${(performance.now() - t0).toFixed(0)} ms after the server was started again`);
    assert.equal(log.pendingRecords, 0);
    assert.equal(log.failure, undefined);
    log.append('stop', { instance: 'outage' });
    await log.whenWritten();
    const rows = await serving.query<{ record: string }>(`SELECT record FROM ccgw.audit WHERE chain = 'outage' AND type = 'call' ORDER BY seq`);
    assert.deepEqual(
      rows.rows.map((r) => (JSON.parse(r.record) as { usage: { input: number } }).usage.input - 10),
      Array.from({ length: 150 }, (_, i) => i),
      'every record, once, in the order it was appended',
    );
    const v = await verifyStoreAudit(serving, { key });
    assert.equal(v.intact, true, JSON.stringify(v.tamper));
  });

  it('verify names a record changed, deleted or inserted by someone with more rights than the gateway (one finding per chain)', async () => {
    // As the superuser: change r1's seq 10, delete r2's seq 20, add a forged record at the end of r3.
    await superPool.query(`UPDATE ccgw.audit SET record = replace(record, '"status":"ok"', '"status":"error"') WHERE chain = 'r1' AND seq = 10`);
    await superPool.query(`DELETE FROM ccgw.audit WHERE chain = 'r2' AND seq = 20`);
    const last = (await superPool.query<{ hash: string }>(`SELECT hash FROM ccgw.audit WHERE chain = 'r3' ORDER BY seq DESC LIMIT 1`)).rows[0].hash;
    const forged = JSON.stringify({ chain: 'r3', seq: 303, t: new Date().toISOString(), type: 'call', key: 'mallory', costUsd: 0, prev: last });
    await superPool.query(`INSERT INTO ccgw.audit (chain, seq, t, type, record, hash) VALUES ('r3', 303, now(), 'call', $1, $2)`, [forged, createHash('sha256').update(forged).digest('hex')]);
    const v = await verifyStoreAudit(serving, { key });
    assert.equal(v.intact, false);
    const byChain = Object.fromEntries(v.tamper.map((t) => [t.chain, t]));
    assert.equal(byChain.r1?.kind, 'edited');
    assert.equal(byChain.r1?.seq, 10);
    assert.match(byChain.r1.message, /chain r1 seq 10 was edited: its text does not match its hash/);
    assert.equal(byChain.r2?.kind, 'removed');
    assert.equal(byChain.r2?.seq, 20);
    assert.match(byChain.r2.message, /chain r2: record seq 20 was removed \(the chain goes from seq 19 to seq 21\)/);
    assert.equal(byChain.r3?.kind, 'inserted');
    assert.equal(byChain.r3?.seq, 303);
    assert.match(byChain.r3.message, /chain r3 seq 303 was inserted: its hash was not made with the chain key/);
    assert.equal(byChain.outage, undefined, 'the untouched chain is intact');
  });

  it('without a chain key, an edit whose hash was recomputed is still caught by the next record; a removed tail is caught by another chain\'s checkpoint', async () => {
    const a = open('plain-a', { key: undefined });
    const b = open('plain-b', { key: undefined });
    for (let i = 0; i < 20; i++) a.append('call', callRecord(i));
    for (let i = 0; i < 20; i++) b.append('call', callRecord(i));
    await Promise.all([a.whenWritten(), b.whenWritten()]);
    assert.equal(await a.checkpoint(), true, 'a records the heads of the other chains (b at seq 20)');
    const edited = (await superPool.query<{ record: string }>(`SELECT record FROM ccgw.audit WHERE chain = 'plain-a' AND seq = 5`)).rows[0].record.replace('"key":"alice"', '"key":"bob"');
    await superPool.query(`UPDATE ccgw.audit SET record = $1, hash = $2 WHERE chain = 'plain-a' AND seq = 5`, [edited, createHash('sha256').update(edited).digest('hex')]);
    await superPool.query(`DELETE FROM ccgw.audit WHERE chain = 'plain-b' AND seq > 17`);
    const v = await verifyStoreAudit(serving);
    const byChain = Object.fromEntries(v.tamper.map((t) => [t.chain, t]));
    assert.equal(byChain['plain-a']?.kind, 'edited');
    assert.equal(byChain['plain-a']?.seq, 5);
    assert.match(byChain['plain-a'].message, /chain plain-a seq 5 was edited: seq 6 follows a record with another hash/);
    assert.equal(byChain['plain-b']?.kind, 'removed');
    assert.match(byChain['plain-b'].message, /chain plain-b: records after seq 17 were removed \(chain plain-a seq 21 saw it reach seq 20\)/);
    assert.ok(v.gaps.some((g) => g.chain === 'plain-b' && /without a stop record/.test(g.reason)), 'a chain without a stop record is listed as a gap');
  });

  it('a chain no gateway started, and a chain deleted as a whole, are named', async () => {
    await superPool.query(`INSERT INTO ccgw.audit (chain, seq, t, type, record, hash) VALUES ('ghost', 1, now(), 'call', '{}', 'x')`);
    await superPool.query(`DELETE FROM ccgw.audit WHERE chain = 'outage'`);
    const v = await verifyStoreAudit(serving, { key });
    const byChain = Object.fromEntries(v.tamper.map((t) => [t.chain, t]));
    assert.match(byChain.ghost?.message ?? '', /chain ghost was inserted: no gateway started it/);
    assert.match(byChain.outage?.message ?? '', /chain outage was started \(it is in audit_chains\) but all its records were removed/);
  });
});
