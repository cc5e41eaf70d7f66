import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Pool } from 'pg';
import { startServing, type ServedChild } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';
import { SERVING, startStoreCluster, type StoreCluster } from '../helpers/store-pg';

const CLI = path.resolve(__dirname, '../../dist/cli.js');
const PROVIDER_KEY = 'provider-key-for-store-cli-tests-0001';
/** The contract: a key created or revoked with the CLI takes effect on every running replica within this long. */
const NOTICE_MS = 2000;

/** Calls `probe` until it returns true; the time it took, or a failure naming `what` once `limitMs` passed. */
async function within(limitMs: number, what: string, probe: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await probe()) return Date.now() - start;
    assert.ok(Date.now() - start < limitMs, `${what} within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Every file under `dir` that holds `needle` (binary files too: the server's tables and WAL). */
function filesHolding(dir: string, needle: string): string[] {
  const bytes = Buffer.from(needle);
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .filter((f) => fs.readFileSync(f).includes(bytes));
}

describe('claude-code-gateway keys, store, usage and audit verify (bundled dist/cli.js) on a PostgreSQL store', function () {
  this.timeout(120_000);
  let cluster: StoreCluster;
  let owner: Pool;
  let upstream: MockAnthropic;
  let home: string;
  let configFile: string;
  /** The serving role's URL, given to the CLI and the gateway through the environment as an operator would. */
  let env: Record<string, string>;
  const replicas: ServedChild[] = [];
  const printed: string[] = [];
  const created: string[] = [];

  function cli(args: string[]) {
    const r = spawnSync(process.execPath, [CLI, ...args, '--config', configFile], { encoding: 'utf8', env, timeout: 30_000 });
    printed.push(r.stdout, r.stderr);
    return r;
  }

  function create(args: string[]): string {
    const r = cli(['keys', 'create', ...args]);
    assert.equal(r.status, 0, r.stderr);
    const key = r.stdout.trim();
    assert.match(key, /^ccgw-[A-Za-z0-9_-]{32}$/, 'stdout is the key alone');
    created.push(key);
    return key;
  }

  async function call(replica: ServedChild, key: string): Promise<{ status: number; code: string | null }> {
    const res = await fetch(`${replica.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'claude-opus-4-8', max_tokens: 16, messages: [{ role: 'user', content: 'say pong' }] }),
    });
    await res.arrayBuffer();
    return { status: res.status, code: res.headers.get('x-gateway-error') };
  }

  before(async () => {
    assert.ok(fs.existsSync(CLI), 'run `npm run build` first');
    cluster = await startStoreCluster();
    owner = cluster.pool(cluster.ownerUrl);
    upstream = await new MockAnthropic().start();
    upstream.requireApiKey = PROVIDER_KEY;
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-store-cli-'));
    configFile = path.join(home, 'config.json');
    fs.writeFileSync(
      configFile,
      JSON.stringify({
        listen: { port: 0 },
        dataDir: path.join(home, 'data'),
        profiles: [{ name: 'anthropic', provider: 'anthropic', apiKey: '${env:STORE_PROVIDER_KEY}', baseUrl: upstream.url }],
        store: { kind: 'postgres', url: '${env:CLAUDE_CODE_GATEWAY_DATABASE_URL}' },
      }),
    );
    env = { PATH: process.env.PATH ?? '', HOME: home, CLAUDE_CODE_GATEWAY_DATABASE_URL: cluster.servingUrl, STORE_PROVIDER_KEY: PROVIDER_KEY };
  });

  after(async () => {
    for (const r of replicas) {
      r.child.kill('SIGTERM');
      await r.exited;
    }
    await upstream?.stop();
    await cluster?.close();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  it('store migrate creates the schema with the owner URL (once); the serving role cannot, and says what to run', () => {
    const refused = cli(['keys', 'list']);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /schema "ccgw" does not exist .* role "ccgw_gateway" may not create it: run the migrations once as the owner role .*`claude-code-gateway store migrate`/);
    const first = cli(['store', 'migrate', '--url', cluster.ownerUrl]);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /schema "ccgw"\): migrated to version 2 \(applied 1, 2\)\. Grant the serving role its rights with `store grants --role ROLE`/);
    const again = cli(['store', 'migrate', '--url', cluster.ownerUrl]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /already at version 2, nothing to do/);
  });

  it('store grants prints the least-privilege SQL; once the owner runs it, the serving role can read the store and cannot change its audit', async () => {
    const withoutGrants = cli(['keys', 'list']);
    assert.equal(withoutGrants.status, 1);
    assert.match(withoutGrants.stderr, /Role "ccgw_gateway" may not read "ccgw"\.schema_version: the grants for the serving role are missing/);
    const grants = spawnSync(process.execPath, [CLI, 'store', 'grants', '--role', SERVING], { encoding: 'utf8', env });
    assert.equal(grants.status, 0, grants.stderr);
    assert.match(grants.stdout, /^GRANT SELECT, INSERT ON "ccgw"\.audit, "ccgw"\.audit_chains TO "ccgw_gateway";$/m);
    assert.doesNotMatch(grants.stdout, /UPDATE[^;]*audit|DELETE|TRUNCATE/);
    await owner.query(grants.stdout);
    const other = spawnSync(process.execPath, [CLI, 'store', 'grants', '--role', 'gw', '--schema', 'team_gw'], { encoding: 'utf8', env });
    assert.match(other.stdout, /^GRANT USAGE ON SCHEMA "team_gw" TO "gw";$/m);
    const bad = spawnSync(process.execPath, [CLI, 'store', 'grants', '--role', 'a$b'], { encoding: 'utf8', env });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--role "a\$b" is not usable/);
    const listed = cli(['keys', 'list', '--json']);
    assert.equal(listed.status, 0, listed.stderr);
    assert.deepEqual(JSON.parse(listed.stdout), { keys: [] });
  });

  it('keys create stores only the SHA-256; two running replicas accept the key within 2 s, and refuse it within 2 s of keys revoke', async () => {
    for (let i = 0; i < 2; i++) replicas.push(await startServing(process.execPath, [CLI, 'serve', '--config', configFile], env));
    const key = create(['--id', 'alice', '--team', 'platform', '--admin']);
    const row = await owner.query<{ id: string; sha256: string; team: string; admin: boolean; revoked_at: Date | null }>('SELECT id, sha256, team, admin, revoked_at FROM ccgw.keys');
    assert.deepEqual(row.rows, [{ id: 'alice', sha256: createHash('sha256').update(key).digest('hex'), team: 'platform', admin: true, revoked_at: null }]);
    for (const [i, replica] of replicas.entries()) {
      const took = await within(NOTICE_MS, `replica ${i} accepts the created key`, async () => (await call(replica, key)).status === 200);
      process.stdout.write(`      (replica ${i}: accepted ${took} ms after keys create returned)\n`);
    }

    const table = cli(['keys', 'list']);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /^Keys of the PostgreSQL store at postgres:\/\/ccgw_gateway@127\.0\.0\.1:\d+\/ccgw \(schema "ccgw"\)/);
    assert.match(table.stdout, /^alice\s+store\s+platform\s+yes\s+\d{4}-\d\d-\d\d \d\d:\d\d$/m);
    assert.doesNotMatch(table.stdout, /[0-9a-f]{64}/);

    const revoked = cli(['keys', 'revoke', 'alice']);
    assert.equal(revoked.status, 0, revoked.stderr);
    for (const [i, replica] of replicas.entries()) {
      const took = await within(NOTICE_MS, `replica ${i} refuses the revoked key`, async () => (await call(replica, key)).code === 'CCGW_REVOKED_KEY');
      process.stdout.write(`      (replica ${i}: refused ${took} ms after keys revoke returned)\n`);
    }
    const json = JSON.parse(cli(['keys', 'list', '--json']).stdout) as { keys: Array<Record<string, unknown>> };
    assert.deepEqual(
      json.keys.map((k) => [k.id, k.source, k.revoked, typeof k.createdAt, typeof k.revokedAt]),
      [['alice', 'store', true, 'string', 'string']],
    );
    assert.deepEqual(Object.keys(json.keys[0]).filter((f) => /sha|hash|^key$/i.test(f)), []);
    const dup = cli(['keys', 'create', '--id', 'alice']);
    assert.equal(dup.status, 2);
    assert.match(dup.stderr, /a key with id "alice" already exists/);
    assert.equal(dup.stdout, '');
  });

  it('usage and audit verify read the store: every replica\'s calls, and a record changed by the owner is named', async () => {
    const key = create(['--id', 'bob', '--project', 'web']);
    for (const replica of replicas) await within(NOTICE_MS, 'the key is accepted', async () => (await call(replica, key)).status === 200);
    // Four calls answered 200 (alice's and bob's first on each replica); the replicas write their records in batches.
    const written = async () => Number((await owner.query<{ n: string }>(`SELECT count(*) AS n FROM ccgw.audit WHERE type = 'call'`)).rows[0].n);
    while ((await written()) < 4) await new Promise((r) => setTimeout(r, 25));
    const usage = cli(['usage', '--by', 'key']);
    assert.equal(usage.status, 0, usage.stderr);
    assert.match(usage.stdout, /^Usage from \S+ to \S+ \(UTC\)$/m);
    assert.match(usage.stdout, /^key\s+requests\s+input\s+output/m);
    assert.match(usage.stdout, /^alice\s+2\s/m);
    assert.match(usage.stdout, /^bob\s+2\s/m);
    assert.match(usage.stdout, /^total\s+4\s/m);
    const json = JSON.parse(cli(['usage', '--json']).stdout) as { totals: { requests: number } };
    assert.equal(json.totals.requests, 4);

    const verify = cli(['audit', 'verify']);
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /^intact: \d+ record\(s\) in 2 chain\(s\) of postgres:\/\/ccgw_gateway@.* \(schema "ccgw"\)/m);
    // The serving role cannot change a record; the owner can, and verify names the record.
    await assert.rejects(cluster.pool(cluster.servingUrl).query(`UPDATE ccgw.audit SET record = record WHERE type = 'call'`), /permission denied/);
    const target = (await owner.query<{ chain: string; seq: string }>(`SELECT chain, seq FROM ccgw.audit WHERE type = 'call' AND record LIKE '%"key":"bob"%' ORDER BY t LIMIT 1`)).rows[0];
    await owner.query(`UPDATE ccgw.audit SET record = replace(record, '"bob"', '"mallory"') WHERE chain = $1 AND seq = $2`, [target.chain, target.seq]);
    const tampered = cli(['audit', 'verify']);
    assert.equal(tampered.status, 1, tampered.stdout);
    assert.match(tampered.stdout, new RegExp(`^TAMPERED \\(edited\\): chain ${target.chain} seq ${target.seq} was edited`, 'm'));
    const tamperedJson = JSON.parse(cli(['audit', 'verify', '--json']).stdout) as { intact: boolean; tamper: Array<{ kind: string; chain: string; seq: number }> };
    assert.equal(tamperedJson.intact, false);
    assert.deepEqual(tamperedJson.tamper.map((t) => [t.kind, t.chain, t.seq]), [['edited', target.chain, Number(target.seq)]]);
  });

  it('no created key appears in the database, on its disk, in the data directory or in any output but its own create', async () => {
    assert.equal(created.length, 2);
    await cluster.pg.psql('CHECKPOINT');
    const dataDirectory = (await cluster.pg.psql('SHOW data_directory')).trim();
    for (const key of created) {
      const rows = await owner.query<{ n: string }>(
        `SELECT (SELECT count(*) FROM ccgw.keys WHERE row_to_json(keys)::text LIKE '%' || $1 || '%') + (SELECT count(*) FROM ccgw.audit WHERE record LIKE '%' || $1 || '%') AS n`,
        [key],
      );
      assert.equal(rows.rows[0].n, '0', 'not in the keys table or the audit');
      assert.deepEqual(filesHolding(dataDirectory, key), [], "not in the server's files (tables, WAL)");
      assert.deepEqual(filesHolding(home, key), [], 'not in the config folder or the data directory');
      for (const r of replicas) assert.ok(!r.stdout().includes(key) && !r.stderr().includes(key), 'no replica prints it');
      assert.equal(printed.filter((p) => p.includes(key)).length, 1, 'printed once, by its create');
    }
  });
});
