import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { PgKeyStore, type KeyChange } from '../../src/core/store/postgres/keys';
import { grantServingRole, migrate } from '../../src/core/store/postgres/migrate';
import { PgNotifier } from '../../src/core/store/postgres/notifier';
import { StoreError } from '../../src/core/store/postgres/sql';
import { SERVING, startStoreCluster, type StoreCluster } from '../helpers/store-pg';

/** One replica of the key store: a pool, the listening connection and the key store, as a gateway process holds them. */
interface Replica {
  pool: Pool;
  notifier: PgNotifier;
  keys: PgKeyStore;
  changes: KeyChange[];
  /** Resolves with the first change (from now on) that `match` accepts. */
  next(match: (c: KeyChange) => boolean): Promise<KeyChange>;
}

async function replica(cluster: StoreCluster): Promise<Replica> {
  const pool = cluster.pool(cluster.servingUrl);
  const notifier = new PgNotifier({ connectionString: cluster.servingUrl }, [PgKeyStore.channel()]);
  const keys = new PgKeyStore(pool, undefined, notifier);
  const changes: KeyChange[] = [];
  keys.onDidChange((c) => changes.push(c));
  await notifier.start();
  return {
    pool,
    notifier,
    keys,
    changes,
    next: (match) =>
      new Promise((resolve) => {
        const sub = keys.onDidChange((c) => {
          if (match(c)) {
            sub.dispose();
            resolve(c);
          }
        });
      }),
  };
}

describe('store (PostgreSQL): keys and their change feed', function () {
  this.timeout(60_000);
  let cluster: StoreCluster;
  let a: Replica;
  let b: Replica;

  before(async () => {
    cluster = await startStoreCluster();
    const owner = cluster.pool(cluster.ownerUrl);
    await migrate(owner);
    await grantServingRole(owner, SERVING);
    a = await replica(cluster);
    b = await replica(cluster);
  });
  after(async () => {
    for (const r of [a, b]) {
      r?.keys.dispose();
      await r?.notifier.close();
    }
    await cluster?.close();
  });

  it('create stores only the SHA-256 and returns nothing secret; list and revoke work; duplicates are refused by name', async () => {
    const secret = 'ccgw-keys-test-secret-000000000000001';
    const created = await a.keys.create({ id: 'alice', secret, team: 'core', project: 'p1', admin: true });
    assert.equal(created.sha256, createHash('sha256').update(secret).digest('hex'));
    assert.ok(!JSON.stringify(created).includes(secret));
    const row = await cluster.pg.psql(`SELECT row_to_json(k) FROM ccgw.keys k WHERE id = 'alice'`, 'ccgw');
    assert.ok(!row.includes(secret), 'the secret is nowhere in the table');
    assert.deepEqual(
      (await b.keys.list()).map((k) => [k.id, k.team, k.project, k.admin, k.revokedAt]),
      [['alice', 'core', 'p1', true, undefined]],
    );
    await assert.rejects(a.keys.create({ id: 'alice', secret: 'another-secret-0000000000' }), (err: Error) => err instanceof StoreError && /a key with id "alice" already exists/.test(err.message));
    await assert.rejects(a.keys.create({ id: 'bob', secret }), /that key is already stored under another id/);
    await assert.rejects(a.keys.create({ id: 'bad id', secret: 'x'.repeat(20) }), /key id "bad id" must be 1-64 letters/);
    const revoked = await b.keys.revoke('alice');
    assert.ok(revoked?.revokedAt);
    assert.equal((await a.keys.revoke('alice'))?.revokedAt, revoked.revokedAt, 'revoking twice keeps the first time');
    assert.equal(await a.keys.revoke('nobody'), undefined);
  });

  it('a key created or revoked on one replica is known to the other within 2 s (notice time measured)', async () => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const id = `notice-${i}`;
      const heard = b.next((c) => c.kind === 'upsert' && c.key.id === id && !c.key.revokedAt);
      const t0 = performance.now();
      await a.keys.create({ id, secret: `ccgw-notice-secret-${i}-0000000000000` });
      const c = await heard;
      times.push(performance.now() - t0);
      assert.ok(c.kind === 'upsert' && c.key.sha256.length === 64);
      const revoked = b.next((c) => c.kind === 'upsert' && c.key.id === id && c.key.revokedAt !== undefined);
      const t1 = performance.now();
      await a.keys.revoke(id);
      await revoked;
      times.push(performance.now() - t1);
    }
    const worst = Math.max(...times);
    console.log(`      notice time (create/revoke on A until B heard it, incl. A's write): median ${median(times).toFixed(1)} ms, worst ${worst.toFixed(1)} ms over ${times.length}`);
    assert.ok(worst < 2000, `every change was heard within 2 s (worst ${worst.toFixed(0)} ms)`);
  });

  it('a replica whose listening connection is cut reconnects by itself and re-reads the table: a change made meanwhile is not missed', async () => {
    const reconnected = new Promise<void>((r) => {
      const sub = b.notifier.onDidConnect((c) => {
        if (c.reconnect) {
          sub.dispose();
          r();
        }
      });
    });
    const reload = b.next((c) => c.kind === 'reload' && c.keys.some((k) => k.id === 'while-away'));
    const t0 = performance.now();
    // Cut every listening connection of the serving role (as a failover or a network break would), then change a key at once.
    await cluster.pg.psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${SERVING}' AND (query LIKE 'LISTEN%' OR query = 'SELECT 1')`);
    await a.keys.create({ id: 'while-away', secret: 'ccgw-while-away-secret-000000000000' });
    await reconnected;
    await reload;
    console.log(`      listening connection cut: back and table re-read in ${(performance.now() - t0).toFixed(0)} ms`);
    assert.ok(b.notifier.listening);
  });

  it('a change heard while the table is being re-read is applied after the reload, not lost under it', async () => {
    // B reads the table (its snapshot is taken), A creates a key, B hears it, and only then does B's read return.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let hold = true;
    const query = b.pool.query.bind(b.pool) as (...args: unknown[]) => Promise<unknown>;
    (b.pool as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = async (...args: unknown[]) => {
      const r = await query(...args);
      if (hold && typeof args[0] === 'string' && args[0].startsWith('SELECT') && args[0].includes('ORDER BY id')) {
        hold = false;
        await gate;
      }
      return r;
    };
    const ring = new Map<string, string | undefined>();
    const sub = b.keys.onDidChange((c) => {
      if (c.kind === 'reload') {
        ring.clear();
        for (const k of c.keys) ring.set(k.id, k.revokedAt);
      } else if (c.kind === 'upsert') ring.set(c.key.id, c.key.revokedAt);
      else ring.delete(c.id);
    });
    try {
      const reloaded = b.keys.reload();
      while (hold) await new Promise((r) => setImmediate(r));
      const heard = new Promise<void>((resolve) => {
        const n = b.notifier.onNotice((x) => {
          if (x.payload.includes('"during-reload"')) {
            n.dispose();
            resolve();
          }
        });
      });
      await a.keys.create({ id: 'during-reload', secret: 'ccgw-during-reload-secret-0000000' });
      await heard;
      release();
      const keys = await reloaded;
      assert.ok(!keys?.some((k) => k.id === 'during-reload'), 'the read was taken before the key existed');
      assert.ok(ring.has('during-reload'), 'yet the key is known: its change was applied after the reload');
    } finally {
      sub.dispose();
      (b.pool as unknown as { query: unknown }).query = query;
    }
  });

  it('after the server itself restarts, both replicas reconnect and hear changes again', async () => {
    const back = [a, b].map(
      (r) =>
        new Promise<void>((resolve) => {
          const sub = r.notifier.onDidConnect((c) => {
            if (c.reconnect) {
              sub.dispose();
              resolve();
            }
          });
        }),
    );
    await cluster.pg.stop();
    const down = performance.now();
    await cluster.pg.start();
    await Promise.all(back);
    console.log(`      server restart: both listening again ${(performance.now() - down).toFixed(0)} ms after the stop returned`);
    const heard = b.next((c) => c.kind === 'upsert' && c.key.id === 'after-restart');
    await a.keys.create({ id: 'after-restart', secret: 'ccgw-after-restart-secret-00000000' });
    await heard;
  });
});

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}
