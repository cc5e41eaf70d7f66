import * as assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { parseConfig } from '../../src/core/config/validate';
import { buildGateway } from '../../src/core/gateway/build';
import { generateKey, KeyRing } from '../../src/core/gateway/keys';
import { GatewayRuntime } from '../../src/core/runtime';
import { openPostgresStore, type PostgresStore } from '../../src/core/store/postgres-adapter';
import { verifyStoreAudit } from '../../src/core/store/postgres/audit-verify';
import { MockAnthropic } from '../helpers/mock-anthropic';
import { startStoreCluster, type StoreCluster } from '../helpers/store-pg';

interface Replica {
  url: string;
  store: PostgresStore;
  runtime: GatewayRuntime;
  app: FastifyInstance;
  dataDir: string;
}

const BODY = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'ping' }] });

describe('store wired: two gateways on one PostgreSQL', function () {
  this.timeout(120_000);
  let cluster: StoreCluster;
  let upstream: MockAnthropic;
  let pool: Pool;
  const replicas: Replica[] = [];
  const alice = generateKey();
  const bob = generateKey();
  const root = generateKey();

  async function startReplica(): Promise<Replica> {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-wired-'));
    const config = parseConfig({
      dataDir,
      listen: { host: '127.0.0.1', port: 0 },
      profiles: [{ name: 'a', provider: 'anthropic', apiKey: 'sk-ant-wired-test', baseUrl: upstream.url }],
      activeProfile: 'a',
      budgets: [
        { scope: 'key:alice', usd: 100, period: 'day' },
        // Less than one call costs: the first call is admitted (nothing spent yet), then the budget is spent everywhere.
        { scope: 'key:bob', usd: 0.0001, period: 'day' },
      ],
      store: { kind: 'postgres', url: cluster.ownerUrl, connectTimeoutMs: 1000, queryTimeoutMs: 1000 },
    });
    const instanceId = randomUUID();
    const store = await openPostgresStore(config, { instanceId, version: 'test' });
    const keys = new KeyRing();
    await keys.follow(store.pg.keys);
    const runtime = new GatewayRuntime({ config, keys, store, instanceId, version: 'test' });
    const app = buildGateway({ runtime, listenHost: '127.0.0.1' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const r = { url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, store, runtime, app, dataDir };
    replicas.push(r);
    return r;
  }

  function call(r: Replica, key: string): Promise<Response> {
    return fetch(`${r.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key, 'anthropic-version': '2023-06-01' }, body: BODY });
  }

  async function health(r: Replica): Promise<{ status: string; store: { kind: string; reachable: boolean; error?: string } }> {
    return (await (await fetch(`${r.url}/health`)).json()) as { status: string; store: { kind: string; reachable: boolean; error?: string } };
  }

  /** Waits (on /health, state not time) until the replica reports the store as wanted. */
  async function untilReachable(r: Replica, reachable: boolean): Promise<void> {
    for (;;) {
      if ((await health(r)).store.reachable === reachable) return;
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  before(async () => {
    cluster = await startStoreCluster();
    upstream = await new MockAnthropic().start();
    pool = cluster.pool(cluster.ownerUrl);
  });
  after(async () => {
    for (const r of replicas) {
      await r.app.close().catch(() => undefined);
      await r.runtime.close().catch(() => undefined);
      fs.rmSync(r.dataDir, { recursive: true, force: true });
    }
    await upstream?.stop();
    await cluster?.close();
  });

  it('keys, one audit and one budget across both (an override on A reaches B); the store away is a 503 naming it, then calls work and the queued records are written', async () => {
    const a = await startReplica();
    const b = await startReplica();
    // A key created in the store through A is known to B (by notification).
    const heard = new Promise<void>((resolve) => {
      const sub = b.store.pg.keys.onDidChange((c) => {
        if (c.kind !== 'upsert' || c.key.id !== 'bob') return;
        sub.dispose();
        resolve();
      });
    });
    await a.store.pg.keys.create({ id: 'alice', secret: alice });
    await a.store.pg.keys.create({ id: 'root', secret: root, admin: true });
    await a.store.pg.keys.create({ id: 'bob', secret: bob });
    await heard;
    assert.equal((await health(a)).store.kind, 'postgres');

    const ids: string[] = [];
    for (const r of [a, b]) {
      const res = await call(r, alice);
      assert.equal(res.status, 200, await res.clone().text());
      ids.push(res.headers.get('x-gateway-request-id')!);
      await res.arrayBuffer();
    }

    // Spend recorded on A is seen by B's next admission: bob's first call (through A) spends his budget...
    const first = await call(a, bob);
    assert.equal(first.status, 200);
    ids.push(first.headers.get('x-gateway-request-id')!);
    await first.arrayBuffer();
    await a.store.pg.budgets.refresh();
    // ...so his next one, through B, is refused as over budget.
    const second = await call(b, bob);
    assert.equal(second.status, 429, await second.clone().text());
    assert.equal(((await second.json()) as { error: { type: string } }).error.type, 'billing_error');

    // An override made through A (the admin route, through the store) reaches B by notification: bob's call passes there.
    const raised = new Promise<void>((resolve) => {
      const sub = b.runtime.onDidChangeBudgets((all) => {
        if (!all.some((x) => x.scope === 'key:bob' && x.usd === 50)) return;
        sub.dispose();
        resolve();
      });
    });
    const override = await fetch(`${a.url}/budgets/override`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': root },
      body: JSON.stringify({ scope: 'key:bob', period: 'day', usd: 50 }),
    });
    assert.equal(override.status, 200, await override.clone().text());
    await override.arrayBuffer();
    await raised;
    const third = await call(b, bob);
    assert.equal(third.status, 200, await third.clone().text());
    ids.push(third.headers.get('x-gateway-request-id')!);
    await third.arrayBuffer();

    // The database stops: A answers 503 naming the store once it knows (calls admitted before that are queued).
    await cluster.pg.stop();
    let refused: { status: number; body: { type: string; error: { type: string; message: string } }; code: string | null } | undefined;
    for (let i = 0; i < 200 && !refused; i++) {
      const res = await call(a, alice);
      if (res.status === 503) refused = { status: res.status, body: (await res.json()) as never, code: res.headers.get('x-gateway-error') };
      else {
        assert.equal(res.status, 200, await res.clone().text());
        ids.push(res.headers.get('x-gateway-request-id')!);
        await res.arrayBuffer();
      }
    }
    assert.ok(refused, 'a call is refused while the store is away');
    assert.equal(refused.body.type, 'error');
    assert.equal(refused.body.error.type, 'api_error');
    assert.match(refused.body.error.message, /store \(PostgreSQL\) cannot be reached/);
    assert.equal(refused.code, 'CCGW_STORE_UNAVAILABLE');
    assert.ok(!refused.body.error.message.includes(String(cluster.pg.port)), 'the 503 does not say where the database is');
    const away = await health(a);
    assert.equal(away.status, 'refusing');
    assert.equal(away.store.reachable, false);

    // Back: calls work again and what was queued is written.
    await cluster.pg.start();
    await untilReachable(a, true);
    const back = await call(a, alice);
    assert.equal(back.status, 200, await back.clone().text());
    ids.push(back.headers.get('x-gateway-request-id')!);
    await back.arrayBuffer();

    for (const r of replicas.splice(0)) {
      await r.app.close();
      await r.runtime.close();
      fs.rmSync(r.dataDir, { recursive: true, force: true });
    }
    const verified = await verifyStoreAudit(pool);
    assert.equal(verified.intact, true, JSON.stringify(verified));
    assert.equal(verified.chains, 2);
    const rows = await pool.query<{ record: string }>(`SELECT record FROM "ccgw".audit WHERE type = 'call'`);
    const text = rows.rows.map((r) => r.record).join('\n');
    for (const id of ids) assert.ok(text.includes(id), `call ${id} is in the store's audit`);
  });

});
