import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Disposable } from '../../src/core/events';
import { followFileKeys } from '../../src/core/store/file-keys';
import { startGateway, startServing, type TestGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

const CLI = path.resolve(__dirname, '../../dist/cli.js');
const OPS_KEY = 'ccgw-ops-admin-key-for-keys-cli-00001';
const PROVIDER_KEY = 'provider-key-for-keys-cli-tests-0002';
/** The contract: a key created or revoked with the CLI takes effect on a running gateway within this long. */
const NOTICE_MS = 2000;
/** `serve` itself, and a gateway in this process following the data directory with followFileKeys. */
const MODES = ['serve', 'in-process'] as const;

/** Every file under `dir`, for the check that a printed key was written nowhere. */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/** Calls `probe` until it returns true; the time it took, or a failure naming `what` once `limitMs` passed. */
async function within(limitMs: number, what: string, probe: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await probe()) return Date.now() - start;
    assert.ok(Date.now() - start < limitMs, `${what} within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The running gateway the keys commands act on: what it printed (nothing for one in this process), and how to stop it. */
interface Running {
  url: string;
  output(): string;
  stop(): Promise<void>;
}

/** `serve` as a child process, on the config (its key ring follows `<dataDir>/keys.json` by itself). */
async function serveChild(configFile: string, env: Record<string, string>): Promise<Running> {
  const s = await startServing(process.execPath, [CLI, 'serve', '--config', configFile], env);
  return {
    url: s.url,
    output: () => s.stdout() + s.stderr(),
    async stop() {
      s.child.kill('SIGTERM');
      await s.exited;
    },
  };
}

/** A gateway in this process whose key ring follows the data directory with followFileKeys (the module serve uses). */
async function inProcess(raw: Record<string, unknown>, env: Record<string, string>): Promise<Running> {
  const gw: TestGateway = await startGateway(raw, { env, dataDir: raw.dataDir as string });
  const following: Disposable = await followFileKeys(gw.runtime.keys, gw.dataDir);
  return {
    url: gw.url,
    output: () => '',
    async stop() {
      following.dispose();
      await gw.close();
    },
  };
}

for (const mode of MODES) describe(`claude-code-gateway keys (bundled dist/cli.js) on the file store, against a running gateway (${mode})`, function () {
  this.timeout(60_000);
  let upstream: MockAnthropic;
  let home: string;
  let configFile: string;
  let dataDir: string;
  let gateway: Running;
  /** Everything the commands printed, and the keys they created. */
  const printed: string[] = [];
  const created: string[] = [];

  function cli(args: string[]) {
    const r = spawnSync(process.execPath, [CLI, 'keys', ...args, '--config', configFile], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: home }, timeout: 20_000 });
    printed.push(r.stdout, r.stderr);
    return r;
  }

  function create(args: string[]): string {
    const r = cli(['create', ...args]);
    assert.equal(r.status, 0, r.stderr);
    const key = r.stdout.trim();
    assert.match(key, /^ccgw-[A-Za-z0-9_-]{32}$/, 'stdout is the key alone');
    created.push(key);
    return key;
  }

  async function call(key: string): Promise<{ status: number; code: string | null }> {
    const res = await fetch(`${gateway.url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'claude-opus-4-8', max_tokens: 16, messages: [{ role: 'user', content: 'say pong' }] }),
    });
    await res.arrayBuffer();
    return { status: res.status, code: res.headers.get('x-gateway-error') };
  }

  before(async () => {
    assert.ok(fs.existsSync(CLI), 'run `npm run build` first');
    upstream = await new MockAnthropic().start();
    upstream.requireApiKey = PROVIDER_KEY;
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-keys-cli-'));
    configFile = path.join(home, 'config.json');
    dataDir = path.join(home, 'data');
    const raw = {
      listen: { port: 0 },
      dataDir,
      profiles: [{ name: 'anthropic', provider: 'anthropic', apiKey: '${env:KEYS_PROVIDER_KEY}', baseUrl: upstream.url }],
      keys: [{ id: 'ops', key: '${env:OPS_KEY}', admin: true }],
    };
    fs.writeFileSync(configFile, JSON.stringify(raw));
    const env = { PATH: process.env.PATH ?? '', HOME: home, OPS_KEY, KEYS_PROVIDER_KEY: PROVIDER_KEY };
    gateway = mode === 'serve' ? await serveChild(configFile, env) : await inProcess(raw, env);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.stop();
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('create prints the key once on stdout; the running gateway accepts it within 2 s, without a restart', async () => {
    const key = create(['--id', 'alice', '--team', 'platform', '--project', 'web']);
    assert.match(printed[printed.length - 1], /^Created key "alice" \(team platform, project web\) in .*only its SHA-256 is stored/);
    const took = await within(NOTICE_MS, 'the created key authenticates', async () => (await call(key)).status === 200);
    process.stdout.write(`      (accepted ${took} ms after keys create returned)\n`);
    const file = path.join(dataDir, 'keys.json');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as { keys: Array<{ id: string; sha256: string; team?: string }> };
    assert.deepEqual(
      stored.keys.map((k) => [k.id, k.sha256, k.team]),
      [['alice', createHash('sha256').update(key).digest('hex'), 'platform']],
    );
    // The call is charged to the created key, its team and project.
    // The call's record is written once the call settles (group commit), which can be just after its answer arrives.
    const firstCall = () => {
      const audit = filesUnder(path.join(dataDir, 'audit')).filter((f) => f.endsWith('.jsonl')).map((f) => fs.readFileSync(f, 'utf8')).join('');
      return audit.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; key?: string; team?: string; project?: string }).find((r) => r.type === 'call');
    };
    for (let i = 0; i < 100 && !firstCall(); i++) await new Promise((r) => setTimeout(r, 20));
    const record = firstCall();
    assert.deepEqual([record?.key, record?.team, record?.project], ['alice', 'platform', 'web']);
  });

  it('list shows the store\'s keys and the config\'s, never a key or its hash; --json adds the times', () => {
    create(['--id', 'bob', '--admin']);
    const table = cli(['list']);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /^id\s+source\s+team\s+project\s+admin\s+created \(UTC\)\s+revoked \(UTC\)$/m);
    assert.match(table.stdout, /^ops\s+config\s+yes$/m);
    assert.match(table.stdout, /^alice\s+store\s+platform\s+web\s+\d{4}-\d\d-\d\d \d\d:\d\d$/m);
    assert.match(table.stdout, /^bob\s+store\s+yes\s+\d{4}-\d\d-\d\d \d\d:\d\d$/m);
    const json = cli(['list', '--json']);
    assert.equal(json.status, 0, json.stderr);
    const keys = (JSON.parse(json.stdout) as { keys: Array<Record<string, unknown>> }).keys;
    assert.deepEqual(
      keys.map((k) => [k.id, k.source, k.admin, k.revoked, typeof k.createdAt]),
      [
        ['ops', 'config', true, false, 'undefined'],
        ['alice', 'store', false, false, 'string'],
        ['bob', 'store', true, false, 'string'],
      ],
    );
    for (const k of keys) assert.deepEqual(Object.keys(k).filter((f) => /key$|sha|hash/i.test(f)), []);
    for (const out of [table.stdout, json.stdout]) assert.doesNotMatch(out, /[0-9a-f]{64}/, 'no hash is listed');
  });

  it('revoke: the running gateway refuses the key as revoked within 2 s; the others keep working', async () => {
    const key = create(['--id', 'carol']);
    await within(NOTICE_MS, 'the created key authenticates', async () => (await call(key)).status === 200);
    const r = cli(['revoke', 'carol']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Revoked key "carol" at \d{4}-/);
    const took = await within(NOTICE_MS, 'the revoked key is refused', async () => {
      const res = await call(key);
      return res.status !== 200 && res.code === 'CCGW_REVOKED_KEY';
    });
    process.stdout.write(`      (refused ${took} ms after keys revoke returned)\n`);
    assert.equal((await call(OPS_KEY)).status, 200);
    assert.equal((await call(created[0])).status, 200);
    const again = cli(['revoke', 'carol']);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /already revoked at/);
  });

  it("revoke refuses the config's keys (saying how to revoke them) and unknown ids; create refuses taken ids", async () => {
    const r = cli(['revoke', 'ops']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /key "ops" is in the config's keys\[\] \(.*config\.json\), which `keys revoke` does not change: set "revoked": true on it there and restart the gateway/);
    assert.equal((await call(OPS_KEY)).status, 200, 'the config key still works');
    const unknown = cli(['revoke', 'nobody']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /no key "nobody" in .*keys\.json/);
    for (const [id, why] of [
      ['ops', /the config's keys\[\] .* already has a key "ops"/],
      ['alice', /a key with id "alice" already exists/],
      ['local', /"local" is the id of the key `serve` generates/],
      ['no spaces', /key id "no spaces" must be 1-64 letters/],
    ] as const) {
      const c = cli(['create', '--id', id]);
      assert.equal(c.status, 2, `${id}: ${c.stderr}`);
      assert.match(c.stderr, why);
      assert.equal(c.stdout, '', 'no key is printed when none was stored');
    }
  });

  it('no created key appears on disk, in the gateway\'s output or in any listing: only its SHA-256 is stored', () => {
    assert.ok(created.length >= 3);
    const texts = filesUnder(home).map((f) => [f, fs.readFileSync(f, 'utf8')] as const);
    for (const key of created) {
      for (const [f, text] of texts) assert.ok(!text.includes(key), `the key is not in ${f}`);
      assert.ok(!gateway.output().includes(key), 'the gateway never prints it');
      // The only output holding it is the stdout of the one create that made it.
      assert.equal(printed.filter((p) => p.includes(key)).length, 1);
    }
  });
});

describe('claude-code-gateway keys create (bundled dist/cli.js): commands at the same moment on the file store', function () {
  this.timeout(60_000);

  it('eight creates at once store eight keys (none lost to another\'s write), each under its own SHA-256', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-keys-race-'));
    try {
      const configFile = path.join(home, 'config.json');
      fs.writeFileSync(configFile, JSON.stringify({ dataDir: path.join(home, 'data'), profiles: [{ name: 'a', provider: 'anthropic' }] }));
      const runs = Array.from({ length: 8 }, (_, i) => {
        const child = spawn(process.execPath, [CLI, 'keys', 'create', '--id', `dev${i}`, '--config', configFile], { env: { PATH: process.env.PATH ?? '', HOME: home } });
        let out = '';
        child.stdout.on('data', (c) => (out += c));
        return new Promise<{ code: number | null; key: string }>((r) => child.on('close', (code) => r({ code, key: out.trim() })));
      });
      const results = await Promise.all(runs);
      assert.deepEqual(results.map((r) => r.code), Array(8).fill(0));
      const stored = (JSON.parse(fs.readFileSync(path.join(home, 'data/keys.json'), 'utf8')) as { keys: Array<{ id: string; sha256: string }> }).keys;
      assert.deepEqual(stored.map((k) => k.id).sort(), results.map((_, i) => `dev${i}`).sort());
      for (const [i, r] of results.entries()) assert.equal(stored.find((k) => k.id === `dev${i}`)?.sha256, createHash('sha256').update(r.key).digest('hex'));
      assert.deepEqual(fs.readdirSync(path.join(home, 'data')).filter((f) => f !== 'keys.json'), [], 'no lock or temp file is left behind');
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
