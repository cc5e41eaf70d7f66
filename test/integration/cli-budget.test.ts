import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BudgetStatus } from '../../src/core/accounting/budgets';
import { readAudit } from '../helpers/audit';
import { startServing, type ServedChild } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

const CLI = path.resolve(__dirname, '../../dist/cli.js');
const OPS_KEY = 'ccgw-ops-admin-key-for-budget-cli-0001';
const CI_KEY = 'ccgw-ci-key-for-budget-cli-tests-0002';
const PROVIDER_KEY = 'provider-key-for-budget-cli-tests-0003';
// Opus 4.8 with the mock's usage: 25*5 + 7*25 + 60*6.25 + 40*10 + 2000*0.5 per million.
const CALL_COST = 0.002075;

/** A port nobody listens on now (so a config can name it before the gateway starts). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

type Served = ServedChild;

async function stopServing(s: Served): Promise<void> {
  s.child.kill('SIGTERM');
  assert.equal(await s.exited, 0);
}

describe('claude-code-gateway budget (bundled dist/cli.js) against a running gateway', function () {
  this.timeout(60_000);
  let upstream: MockAnthropic;
  let home: string;
  let configFile: string;
  let auditDir: string;
  let port: number;
  let gateway: Served;
  /** Everything the command printed, for the leak check at the end. */
  const printed: string[] = [];

  /** Runs the CLI with nothing but PATH and HOME: it needs no key in its environment. */
  function cli(args: string[], configPath = configFile) {
    const r = spawnSync(process.execPath, [CLI, 'budget', ...args, '--config', configPath], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: home }, timeout: 20_000 });
    printed.push(r.stdout, r.stderr);
    return r;
  }

  function listed(args: string[] = []): BudgetStatus[] {
    const r = cli(['--json', ...args]);
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { budgets: BudgetStatus[] }).budgets;
  }

  const find = (budgets: BudgetStatus[], scope: string, period: string) => budgets.find((b) => b.scope === scope && b.period === period)!;

  /** One model call as the CI key. */
  async function callAsCi(): Promise<{ status: number; body: { type?: string; error?: { type: string; message: string } } }> {
    const res = await fetch(`http://127.0.0.1:${port}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CI_KEY}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'claude-opus-4-8', max_tokens: 16, messages: [{ role: 'user', content: 'say pong' }] }),
    });
    return { status: res.status, body: (await res.json()) as { error?: { type: string; message: string } } };
  }

  const overrides = () => readAudit(auditDir).filter((r) => r.type === 'budget_override');

  before(async () => {
    assert.ok(fs.existsSync(CLI), 'run `npm run build` first');
    upstream = await new MockAnthropic().start();
    upstream.requireApiKey = PROVIDER_KEY;
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-budget-cli-'));
    port = await freePort();
    configFile = path.join(home, 'config.json');
    fs.writeFileSync(
      configFile,
      JSON.stringify({
        listen: { port },
        dataDir: path.join(home, 'data'),
        profiles: [{ name: 'anthropic', provider: 'anthropic', apiKey: '${env:BUDGET_PROVIDER_KEY}', baseUrl: upstream.url }],
        keys: [
          { id: 'ops', key: '${env:OPS_KEY}', admin: true },
          { id: 'ci', key: '${env:CI_KEY}', team: 'build' },
        ],
        budgets: [
          { scope: 'global', usd: 100, period: 'month' },
          { scope: 'key:ci', usd: 0.002, period: 'day' },
          { scope: 'key:ci', usd: 50, period: 'month' },
          { scope: 'team:other', usd: 5, period: 'week' },
        ],
      }),
    );
    auditDir = path.join(home, 'data/audit');
    gateway = await startServing(process.execPath, [CLI, 'serve', '--config', configFile], { HOME: home, OPS_KEY, CI_KEY, BUDGET_PROVIDER_KEY: PROVIDER_KEY });
  });

  after(async () => {
    if (gateway) await stopServing(gateway);
    await upstream.stop();
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('lists every budget with limit, spend, reservations, reset time and override state, as a table and as --json', () => {
    const budgets = listed();
    assert.deepEqual(
      budgets.map((b) => [b.scope, b.period, b.usd, b.spentUsd, b.reservedUsd, b.remainingUsd, b.overridden ?? false]),
      [
        ['global', 'month', 100, 0, 0, 100, false],
        ['key:ci', 'day', 0.002, 0, 0, 0.002, false],
        ['key:ci', 'month', 50, 0, 0, 50, false],
        ['team:other', 'week', 5, 0, 0, 5, false],
      ],
    );
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    assert.equal(find(budgets, 'key:ci', 'day').resetsAt, `${tomorrow}T00:00:00.000Z`);

    const table = cli([]);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`^Budgets of the gateway at http://127\\.0\\.0\\.1:${port} \\(as key "ops"`));
    assert.match(table.stdout, /^scope\s+period\s+limit USD\s+spent USD\s+reserved USD\s+remaining USD\s+resets \(UTC\)\s+override$/m);
    assert.match(table.stdout, new RegExp(`^key:ci\\s+day\\s+0\\.002\\s+0\\.00\\s+0\\.00\\s+0\\.002\\s+${tomorrow} 00:00 \\(in [\\dhm ]+\\)\\s+no$`, 'm'));
    assert.match(table.stdout, /^global\s+month\s+100\.00\s+0\.00\s+0\.00\s+100\.00\s+\S+ 00:00 \(in [\dhdm ]+\)\s+no$/m);

    // --url reaches the same gateway without relying on the config's "listen".
    const viaUrl = cli(['--json', '--url', `http://127.0.0.1:${port}`]);
    assert.equal(viaUrl.status, 0, viaUrl.stderr);
    assert.deepEqual(JSON.parse(viaUrl.stdout).budgets.length, 4);
  });

  it('shows what a call spent; the next call in the used-up key:ci day budget is refused with 429 billing_error', async () => {
    assert.equal((await callAsCi()).status, 200);
    const budgets = listed();
    assert.ok(Math.abs(find(budgets, 'key:ci', 'day').spentUsd - CALL_COST) < 1e-9, JSON.stringify(budgets));
    assert.equal(find(budgets, 'key:ci', 'day').remainingUsd, 0);
    assert.ok(Math.abs(find(budgets, 'global', 'month').spentUsd - CALL_COST) < 1e-9);
    assert.equal(find(budgets, 'team:other', 'week').spentUsd, 0);
    const table = cli([]);
    assert.match(table.stdout, /^key:ci per day: used up; calls in this scope get 429 billing_error until \S+T00:00:00\.000Z$/m);
    assert.doesNotMatch(table.stdout, /^global per month: used up/m);

    const refused = await callAsCi();
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error?.type, 'billing_error');
    assert.match(refused.body.error!.message, /key:ci budget of \$0\.002 per day reached/);
  });

  it('override raises the budget so the refused call passes; the audit log records the override and the admin key that made it', async () => {
    const r = cli(['override', 'key:ci', '1', '--period', 'day']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^key:ci per day: limit \$0\.002 → \$1\.00 \(spent \$0\.0021, remaining \$1\.00, resets \S+\)\. Override by key "ops" recorded in the audit log/);
    assert.equal((await callAsCi()).status, 200);
    const b = find(listed(), 'key:ci', 'day');
    assert.equal(b.usd, 1);
    assert.equal(b.overridden, true);
    assert.match(cli([]).stdout, /^key:ci\s+day\s+1\.00\s+.*\s+yes$/m);

    const records = overrides();
    assert.equal(records.length, 1);
    assert.deepEqual([records[0].scope, records[0].period, records[0].usd, records[0].by], ['key:ci', 'day', 1, 'ops']);
    const verify = spawnSync(process.execPath, [CLI, 'audit', 'verify', '--dir', auditDir], { encoding: 'utf8' });
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  });

  it('override --clear brings back the configured limit: the call is refused again, and the clearing is audited too', async () => {
    const r = cli(['override', 'key:ci', '--clear', '--period', 'day']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^key:ci per day: override cleared, limit \$1\.00 → \$0\.002 from the config/);
    const refused = await callAsCi();
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error?.type, 'billing_error');
    const b = find(listed(), 'key:ci', 'day');
    assert.equal(b.usd, 0.002);
    assert.equal(b.overridden, undefined);
    const records = overrides();
    assert.equal(records.length, 2);
    assert.deepEqual([records[1].scope, records[1].period, records[1].usd, records[1].by], ['key:ci', 'day', null, 'ops']);

    // Clearing again changes nothing and records nothing.
    const again = cli(['override', 'key:ci', '--clear', '--period', 'day']);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /^key:ci per day has no override; its limit stays \$0\.002/);
    assert.equal(overrides().length, 2);
  });

  it('a wrong command line exits 2 with a message naming what is wrong, and nothing is recorded', () => {
    const cases: Array<[string[], RegExp]> = [
      [['override', 'teams:build', '5'], /^error: scope: must be "global" or one of key:<id>, team:<name>, project:<name>, profile:<name>, got "teams:build"$/m],
      [['override', 'team:nope', '5'], /^error: No budget for scope "team:nope" \(budgets: global per month, key:ci per day, key:ci per month, team:other per week\)\.$/m],
      [['override', 'key:ci', '5'], /^error: Scope "key:ci" has a budget per day and per month; say which with "period" \(`budget override --period` on the command line\)\.$/m],
      [['override', 'key:ci', '5', '--period', 'week'], /^error: Scope "key:ci" has no budget per week \(it has one per day and per month\)\.$/m],
      [['override', 'global', 'abc'], /^error: amount: must be a positive number of USD like 80 or 12\.5, got "abc"$/m],
      [['override', 'global', '0'], /^error: amount: must be a positive number of USD like 80 or 12\.5, got "0"$/m],
      [['override', 'global', '5', '--clear'], /^error: give either a new limit or --clear, not both/m],
      [['override', 'global'], /^error: give the new limit in USD/m],
      [['override', 'global', '5', '--period', 'year'], /^error: --period: must be day, week or month, got "year"$/m],
      [['override', 'global', '5', '--key', 'nobody'], /^error: --key: no key with id "nobody" \(keys: ops, ci\)$/m],
      [['override', 'global', '5', '--bogus'], /^error: unknown option '--bogus'$/m],
    ];
    for (const [args, message] of cases) {
      const r = cli(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.equal(r.stdout, '', args.join(' '));
    }
    assert.equal(overrides().length, 2);
    assert.equal(find(listed(), 'global', 'month').usd, 100);
  });

  it('a key without admin rights lists only the budgets it falls under and is refused an override (exit 1)', () => {
    assert.deepEqual(
      listed(['--key', 'ci']).map((b) => `${b.scope}/${b.period}`),
      ['global/month', 'key:ci/day', 'key:ci/month'],
    );
    const r = cli(['override', 'global', '500', '--key', 'ci']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^error: the gateway at http:\/\/127\.0\.0\.1:\d+ refused: Key "ci" is not an admin key; only keys with "admin": true may override budgets\. Use an admin key: --key ops\.$/m);
    assert.equal(find(listed(), 'global', 'month').usd, 100);
    assert.equal(overrides().length, 2);
  });

  it('with no gateway running it exits 1 saying how to start one; that command starts a gateway the budget command then reaches with the generated key', async () => {
    const dir = fs.mkdtempSync(path.join(home, 'local-'));
    const localPort = await freePort();
    const localConfig = path.join(dir, 'config.json');
    fs.writeFileSync(
      localConfig,
      JSON.stringify({
        listen: { port: localPort },
        dataDir: path.join(dir, 'data'),
        profiles: [{ name: 'anthropic', provider: 'anthropic', apiKey: '${env:BUDGET_PROVIDER_KEY}', baseUrl: upstream.url }],
        budgets: [{ scope: 'global', usd: 3, period: 'day' }],
      }),
    );
    const down = cli([], localConfig);
    assert.equal(down.status, 1);
    const m = new RegExp(`^error: no gateway is running at http://127\\.0\\.0\\.1:${localPort} \\("listen" in ${escapeRegExp(localConfig)}; ECONNREFUSED\\): start it with \`([^\`]+)\``, 'm').exec(down.stderr);
    assert.ok(m, down.stderr);
    assert.match(m[1], / serve --config /);

    const started = await startServing('sh', ['-c', `exec ${m[1]}`], { HOME: home, BUDGET_PROVIDER_KEY: PROVIDER_KEY });
    try {
      const r = cli(['--json'], localConfig);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(
        (JSON.parse(r.stdout) as { budgets: BudgetStatus[] }).budgets.map((b) => [b.scope, b.period, b.usd]),
        [['global', 'day', 3]],
      );
      const o = cli(['override', 'global', '4'], localConfig);
      assert.equal(o.status, 0, o.stderr);
      assert.match(o.stdout, /^global per day: limit \$3\.00 → \$4\.00 .*Override by key "local"/);
      const record = readAudit(path.join(dir, 'data/audit')).find((x) => x.type === 'budget_override');
      assert.deepEqual([record?.scope, record?.usd, record?.by], ['global', 4, 'local']);
    } finally {
      await stopServing(started);
    }
  });

  it('the budget routes refuse requests without a key, with a wrong key and from web pages; nothing changes', async () => {
    const send = (route: string, headers: Record<string, string>, body?: unknown) =>
      fetch(`http://127.0.0.1:${port}${route}`, { method: body === undefined ? 'GET' : 'POST', headers: { 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
    const raise = { scope: 'global', usd: 1000 };
    for (const [route, body] of [
      ['/budgets', undefined],
      ['/budgets/override', raise],
    ] as const) {
      assert.equal((await send(route, {}, body)).status, 401, route);
      assert.equal((await send(route, { authorization: 'Bearer ccgw-not-a-key-of-this-gateway' }, body)).status, 403, route);
      assert.equal((await send(route, { authorization: `Bearer ${OPS_KEY}`, origin: 'https://evil.example' }, body)).status, 403, route);
    }
    // The admin key itself, from a program, is accepted (so the refusals above are about the request, not the route).
    const ok = await send('/budgets/override', { authorization: `Bearer ${OPS_KEY}` }, { scope: 'global', usd: null });
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { changed: boolean }).changed, false);
    assert.equal(find(listed(), 'global', 'month').usd, 100);
    assert.equal(overrides().length, 2);
  });

  it('never prints a gateway key, a provider key, a signed token or the token secret', () => {
    const text = printed.join('\n');
    assert.ok(printed.length > 40, 'the earlier tests ran the command');
    const secret = fs.readFileSync(path.join(home, 'data/token.secret'), 'utf8').trim();
    for (const [what, value] of [
      ['the ops key', OPS_KEY],
      ['the ci key', CI_KEY],
      ['the provider key', PROVIDER_KEY],
      ['the token secret', secret],
      ['a signed token', 'ccgwt1.'],
    ]) {
      assert.ok(!text.includes(value), `${what} was printed`);
    }
  });
});
