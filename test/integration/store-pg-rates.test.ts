import * as assert from 'node:assert/strict';
import type { Pool } from 'pg';
import { isRateRefusal, type RateRefusal } from '../../src/core/accounting/rate-limits';
import type { RateLimitConfig } from '../../src/core/config/schema';
import { grantServingRole, migrate } from '../../src/core/store/postgres/migrate';
import { PgRateLimiter } from '../../src/core/store/postgres/rates';
import { StoreError } from '../../src/core/store/postgres/sql';
import { SERVING, startStoreCluster, type StoreCluster } from '../helpers/store-pg';

const LIMITS: RateLimitConfig[] = [
  { scope: 'key:burst', requestsPerMinute: 60 },
  { scope: 'key:slide', requestsPerMinute: 60 },
  { scope: 'key:tokens', tokensPerMinute: 10_000 },
  { scope: 'key:outage', requestsPerMinute: 1000 },
];

describe('store (PostgreSQL): rate limits shared by three replicas through leases', function () {
  this.timeout(60_000);
  let cluster: StoreCluster;
  let owner: Pool;
  /** The replicas' clock: the tests move it to slide the minute instead of waiting for it. */
  let offset = 0;
  const clock = () => Date.now() + offset;
  let limiters: PgRateLimiter[];

  before(async () => {
    cluster = await startStoreCluster();
    owner = cluster.pool(cluster.ownerUrl);
    await migrate(owner);
    await grantServingRole(owner, SERVING);
    limiters = ['A', 'B', 'C'].map((replica) => new PgRateLimiter(cluster.pool(cluster.servingUrl, 5), LIMITS, { replica, clock }));
  });
  after(async () => {
    for (const l of limiters ?? []) await l.close().catch(() => undefined);
    await cluster?.close();
  });

  /** `n` admissions spread over the three replicas, all at once. */
  async function burst(scope: string, n: number): Promise<{ admitted: number; refusals: RateRefusal[] }> {
    const results = await Promise.all(Array.from({ length: n }, (_, i) => limiters[i % 3].admit([scope], clock())));
    const refusals = results.filter(isRateRefusal);
    return { admitted: n - refusals.length, refusals };
  }

  it('60 requests/minute: 150 requests at once over three replicas admit at most 60, and the refusals carry retry-after from the shared minute', async () => {
    const { admitted, refusals } = await burst('key:burst', 150);
    console.log(`      60/min, 150 at once over 3 replicas: ${admitted} admitted (slack 0), retry-after ${[...new Set(refusals.map((r) => r.retryAfterSeconds))].join('/')} s`);
    assert.ok(admitted <= 60, `at most 60 admitted (${admitted})`);
    assert.ok(admitted >= 55, `the minute's room was used (${admitted})`);
    for (const r of refusals) {
      assert.equal(r.scope, 'key:burst');
      assert.equal(r.kind, 'requests');
      assert.equal(r.limit, 60);
      assert.ok(r.retryAfterSeconds >= 1 && r.retryAfterSeconds <= 60, `retry-after ${r.retryAfterSeconds}`);
    }
    assert.ok(refusals.some((r) => r.retryAfterSeconds >= 55), 'the shared minute frees up when its first second leaves it, about 60 s from now');
    // Later in the same minute, every replica still refuses.
    offset += 20_000;
    const later = await burst('key:burst', 30);
    assert.ok(admitted + later.admitted <= 60, `at most 60 in the minute (${admitted} + ${later.admitted})`);
    assert.ok(later.refusals.every((r) => r.retryAfterSeconds >= 35 && r.retryAfterSeconds <= 41), `retry-after counts down with the shared minute: ${later.refusals.map((r) => r.retryAfterSeconds)}`);
    // Once the minute has slid past the burst, requests are admitted again.
    offset += 41_000;
    const next = await burst('key:burst', 90);
    assert.ok(next.admitted > 0 && next.admitted <= 60, `a new minute admits again, at most 60 (${next.admitted})`);
  });

  it('requests spread over a minute on three replicas: no sliding minute holds more than 60 admissions', async () => {
    const admittedAt: number[] = [];
    const start = clock();
    // 240 requests over 120 simulated seconds (2 a second, 4x the limit), on replicas in turn.
    for (let i = 0; i < 240; i++) {
      offset = start - Date.now() + i * 500;
      const now = clock();
      const r = await limiters[i % 3].admit(['key:slide'], now);
      if (!isRateRefusal(r)) admittedAt.push(Math.floor(now / 1000));
    }
    let worst = 0;
    for (const t of admittedAt) worst = Math.max(worst, admittedAt.filter((u) => u >= t && u < t + 60).length);
    console.log(`      240 requests over 120 s at 2/s: ${admittedAt.length} admitted, busiest sliding minute ${worst}`);
    assert.ok(worst <= 60, `the busiest minute admitted ${worst}`);
    assert.ok(admittedAt.length >= 100, `the limit was used in both minutes (${admittedAt.length})`);
  });

  it('tokens per minute: tokens settled on one replica count on the others after their next sync', async () => {
    const [a, b] = limiters;
    assert.ok(!isRateRefusal(await b.admit(['key:tokens'])));
    a.settle(['key:tokens'], 12_000);
    await a.flush();
    await b.flush();
    const r = await b.admit(['key:tokens']);
    assert.ok(isRateRefusal(r), "B refuses: A's tokens filled the minute");
    assert.equal(r.kind, 'tokens');
    assert.ok(r.retryAfterSeconds >= 55 && r.retryAfterSeconds <= 60, `retry-after ${r.retryAfterSeconds}`);
  });

  it('a config reload that drops or changes a limit returns its unused lease', async () => {
    const limiter = new PgRateLimiter(cluster.pool(cluster.servingUrl, 2), [{ scope: 'key:reload', requestsPerMinute: 100 }], { replica: 'reloader', clock });
    try {
      assert.ok(!isRateRefusal(await limiter.admit(['key:reload'], clock())));
      const held = async () =>
        (await owner.query<{ n: string }>(`SELECT coalesce(sum(outstanding), 0) AS n FROM ccgw.rate_leases WHERE replica = 'reloader' AND scope = 'key:reload'`)).rows[0].n;
      assert.ok(Number(await held()) > 0, 'it holds leased admissions');
      limiter.configure([{ scope: 'key:reload', requestsPerMinute: 200 }]);
      await limiter.flush();
      assert.equal(Number(await held()), 0, "the old limit's lease was returned");
      const used = await owner.query<{ n: number }>(`SELECT coalesce(sum(n), 0)::int AS n FROM ccgw.rate_slots WHERE scope = 'key:reload'`);
      assert.equal(used.rows[0].n, 1, 'and its admission reported');
    } finally {
      await limiter.close();
    }
  });

  it('with PostgreSQL stopped, a replica admits from the admissions it holds and refuses with a StoreError when it needs more; counts are reported on return', async () => {
    const a = limiters[0];
    assert.ok(!isRateRefusal(await a.admit(['key:outage'])));
    await a.flush();
    await cluster.pg.stop();
    let local = 0;
    try {
      for (;;) {
        const r = a.admit(['key:outage']);
        if (r instanceof Promise) {
          await assert.rejects(r, (err: Error) => err instanceof StoreError && /cannot be reached to lease rate-limit room for key:outage/.test(err.message));
          break;
        }
        assert.ok(!isRateRefusal(r));
        local++;
      }
      assert.ok(local > 0, 'some were admitted from the lease without the database');
      assert.ok(a.failure);
    } finally {
      await cluster.pg.start();
    }
    // Without any request: the replica finds the database back by itself, and reports what it counted.
    if (a.failure) await new Promise<void>((r) => a.onDidRecover(() => r()));
    assert.equal(a.failure, undefined);
    await a.flush();
    const n = await owner.query<{ n: number }>(`SELECT coalesce(sum(n), 0)::int AS n FROM ccgw.rate_slots WHERE scope = 'key:outage' AND kind = 'requests'`);
    assert.equal(n.rows[0].n, 1 + local, 'every admission made while the database was away was reported');
  });
});
