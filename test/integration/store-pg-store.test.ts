import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { BudgetLedger, isRefusal } from '../../src/core/accounting/budgets';
import { isRateRefusal, RateLimiter } from '../../src/core/accounting/rate-limits';
import type { BudgetConfig, RateLimitConfig } from '../../src/core/config/schema';
import { isStoreRefusal } from '../../src/core/store/postgres/budgets';
import { grantServingRole, migrate } from '../../src/core/store/postgres/migrate';
import { StoreError } from '../../src/core/store/postgres/sql';
import { PgStore } from '../../src/core/store/postgres/store';
import { SERVING, startStoreCluster, type StoreCluster } from '../helpers/store-pg';

const BUDGETS: BudgetConfig[] = [
  { scope: 'global', usd: 1000, period: 'day' },
  { scope: 'key:alice', usd: 500, period: 'day' },
];
const LIMITS: RateLimitConfig[] = [{ scope: 'key:alice', requestsPerMinute: 100_000, tokensPerMinute: 100_000_000 }];
const SCOPES = ['global', 'key:alice', 'profile:a'];

describe('store (PostgreSQL): one replica\'s store, its health, and admission without the database in steady state', function () {
  this.timeout(60_000);
  let cluster: StoreCluster;
  let store: PgStore;

  before(async () => {
    cluster = await startStoreCluster();
    const owner = cluster.pool(cluster.ownerUrl);
    await migrate(owner);
    await grantServingRole(owner, SERVING);
    store = await PgStore.open({ url: cluster.servingUrl, instanceId: randomUUID(), budgets: BUDGETS, rateLimits: LIMITS });
  });
  after(async () => {
    await store?.close();
    await cluster?.close();
  });

  it('opens as the serving role on a current schema and reports itself healthy', () => {
    assert.deepEqual(store.migration.applied, []);
    const h = store.health();
    assert.equal(h.kind, 'postgres');
    assert.equal(h.reachable, true);
    assert.equal(h.schemaVersion, 2);
    assert.equal(h.listening, true);
  });

  it('an unreachable database fails open() with a StoreError that names it without its password', async () => {
    const url = `postgres://ccgw_gateway:hunter2-secret@127.0.0.1:1/ccgw`;
    await assert.rejects(PgStore.open({ url, instanceId: 'x', budgets: [], rateLimits: [], connectTimeoutMs: 1000 }), (err: Error) => {
      assert.ok(err instanceof StoreError);
      assert.equal((err as StoreError).code, 'CCGW_STORE_UNAVAILABLE');
      assert.match(err.message, /the store \(PostgreSQL at postgres:\/\/ccgw_gateway:\*\*\*@127\.0\.0\.1:1\/ccgw\) cannot be reached/);
      assert.ok(!err.message.includes('hunter2'));
      return true;
    });
  });

  it('steady state: 20,000 admissions (budget reserve, rate admit, settle) are decided without waiting on the database', async () => {
    let queries = 0;
    const query = store.pool.query.bind(store.pool) as (...a: unknown[]) => unknown;
    (store.pool as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => {
      queries++;
      return query(...a);
    };
    /**
     * 20,000 admissions, 100 every 10 ms (10,000 a second, more than one replica serves: the bench's 32 connections
     * give a few thousand calls a second); CPU time of the process per admission, the store's batches included.
     */
    const run = async (admitOne: () => boolean): Promise<{ us: number; waited: number }> => {
      let waited = 0;
      const c0 = process.cpuUsage();
      for (let turn = 0; turn < 200; turn++) {
        for (let i = 0; i < 100; i++) if (!admitOne()) waited++;
        await new Promise((r) => setTimeout(r, 10));
      }
      const c = process.cpuUsage(c0);
      return { us: (c.user + c.system) / 20_000, waited };
    };
    // Warm up: the first admission of each budget and limit leases its slice.
    const first = await store.budgets.reserve(SCOPES, 0.001, Date.now());
    assert.ok(!isStoreRefusal(first));
    store.budgets.settle(first, SCOPES, 0.001, Date.now());
    assert.ok(!isRateRefusal(await store.rates.admit(SCOPES)));
    queries = 0;
    let budgetWaits = 0;
    let rateWaits = 0;
    const pg = await run(() => {
      const now = Date.now();
      const hold = store.budgets.reserve(SCOPES, 0.001, now);
      if (hold instanceof Promise) {
        budgetWaits++;
        void hold.then((h) => !isStoreRefusal(h) && store.budgets.settle(h, SCOPES, 0.0005, Date.now()));
        return false;
      }
      assert.ok(!isStoreRefusal(hold));
      const room = store.rates.admit(SCOPES, now);
      if (room instanceof Promise) {
        rateWaits++;
        void room.then(() => store.budgets.settle(hold, SCOPES, 0.0005, Date.now()));
        return false;
      }
      assert.ok(!isRateRefusal(room));
      store.budgets.settle(hold, SCOPES, 0.0005, now);
      store.rates.settle(SCOPES, 150, now);
      return true;
    });
    await store.budgets.refresh();
    const pgQueries = queries;
    const ledger = new BudgetLedger(BUDGETS);
    const limiter = new RateLimiter(LIMITS);
    const files = await run(() => {
      const now = Date.now();
      const hold = ledger.reserve(SCOPES, 0.001, now);
      assert.ok(!isRefusal(hold));
      assert.ok(!isRateRefusal(limiter.admit(SCOPES, now)));
      ledger.settle(hold, SCOPES, 0.0005, now);
      limiter.settle(SCOPES, 150, now);
      return true;
    });
    console.log(
      `      20,000 admissions: ${pg.waited} waited on the database (budget ${budgetWaits}, rate ${rateWaits}); ${pgQueries} queries in all (settle batches and leases); ` +
        `CPU ${pg.us.toFixed(2)} us a call with the store vs ${files.us.toFixed(2)} us with the in-memory BudgetLedger and RateLimiter`,
    );
    assert.equal(pg.waited, 0, 'no admission waited on the database');
    assert.ok(pgQueries < 2000, `far fewer queries than calls (${pgQueries})`);
    const statuses = await store.budgets.refresh();
    const alice = statuses.find((s) => s.scope === 'key:alice')!;
    const inDb = (await cluster.pg.psql(`SELECT sum(spent_usd) FROM ccgw.budget_windows WHERE scope = 'key:alice'`, 'ccgw')).trim();
    const expected = 0.001 + 20_000 * 0.0005;
    assert.ok(Math.abs(Number(inDb) - expected) < 1e-6, `every settled cost reached the database ($${inDb}; this replica reports $${alice.spentUsd}, failure ${JSON.stringify(store.failure)})`);
    assert.ok(Math.abs(alice.spentUsd - expected) < 1e-6, `and the replica reports it ($${alice.spentUsd})`);
  });

  it('with PostgreSQL stopped, the store reports which part failed; on return it recovers by itself and writes what waited', async () => {
    const before = store.audit.lastSeq;
    await cluster.pg.stop();
    try {
      store.audit.append('call', { key: 'alice', during: 'outage' });
      assert.equal(await store.audit.flush(), false);
      const f = store.failure;
      assert.equal(f?.part, 'audit');
      const h = store.health();
      assert.equal(h.reachable, false);
      assert.equal((h.audit as { pendingRecords: number }).pendingRecords, 1);
    } finally {
      await cluster.pg.start();
    }
    await store.audit.whenWritten();
    assert.equal(store.audit.lastSeq, before + 1);
    assert.equal(store.audit.failure, undefined);
  });

  it('a database that stops answering (its processes frozen, as in a network partition) fails what needs it within the query timeout; it recovers when they resume', async () => {
    const hung = await PgStore.open({
      url: cluster.servingUrl,
      instanceId: randomUUID(),
      budgets: [{ scope: 'key:hung', usd: 10, period: 'day' }],
      rateLimits: [],
      queryTimeoutMs: 1000,
      connectTimeoutMs: 1000,
    });
    // The server's processes: the postmaster (parent of a backend) and its children, all of this test's own cluster.
    const backend = (await hung.pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const postmaster = Number(fs.readFileSync(`/proc/${backend}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
    const children = execFileSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).trim().split('\n').map(Number);
    const pids = [postmaster, ...children];
    try {
      for (const pid of pids) process.kill(pid, 'SIGSTOP');
      const t0 = performance.now();
      await assert.rejects(Promise.resolve(hung.budgets.reserve(['key:hung'], 0.01, Date.now())), (err: Error) => err instanceof StoreError && (err as StoreError).code === 'CCGW_STORE_UNAVAILABLE');
      const ms = performance.now() - t0;
      console.log(`      frozen database: a call that needs it failed after ${ms.toFixed(0)} ms (query timeout 1000 ms)`);
      assert.ok(ms < 3000, `within the timeout, not held (${ms.toFixed(0)} ms)`);
      hung.audit.append('call', { key: 'alice', during: 'freeze' });
      assert.equal(await hung.audit.flush(), false);
      assert.ok(hung.failure);
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    }
    await hung.audit.whenWritten();
    const hold = await hung.budgets.reserve(['key:hung'], 0.01, Date.now());
    assert.ok(!isStoreRefusal(hold), 'admits again once the database answers');
    await hung.close();
  });
});
