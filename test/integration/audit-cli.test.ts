import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { allText, auditCalls, auditFiles, readAudit, until } from '../helpers/audit';
import { listeningUrl, startGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

const CLI = path.resolve(__dirname, '../../dist/cli.js');
const PROVIDER_KEY = 'sk-ant-audit-cli-provider-key-7777';

function verify(dir: string): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI, 'audit', 'verify', '--dir', dir], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

function copyDir(from: string): string {
  const to = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-tamper-'));
  for (const n of fs.readdirSync(from)) fs.copyFileSync(path.join(from, n), path.join(to, n));
  return to;
}

/** Rewrites the lines of the (single) daily file in a copy of the log. */
function tampered(dir: string, edit: (lines: string[]) => string[]): string {
  const copy = copyDir(dir);
  const file = auditFiles(copy)[0];
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  fs.writeFileSync(file, edit(lines).join('\n') + '\n');
  return copy;
}

describe('audit log: verify with the bundled CLI (dist/cli.js)', function () {
  this.timeout(40_000);
  let upstream: MockAnthropic;
  let dir: string;
  let dataDir: string;

  before(async () => {
    assert.ok(fs.existsSync(CLI), 'run `npm run build` first');
    upstream = await new MockAnthropic().start();
    const gw = await startGateway({ profiles: [{ name: 'a', provider: 'anthropic', apiKey: 'sk-ant-x', baseUrl: upstream.url }] }, { keepDataDir: true });
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${gw.url}/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${gw.key}` }, body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 5, messages: [] }) });
      await res.text();
    }
    dir = gw.auditDir;
    dataDir = gw.dataDir;
    await gw.close();
  });
  after(async () => {
    await upstream.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('an intact log verifies with exit 0; usage reads it', () => {
    const r = verify(dir);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^intact: 8 record\(s\) in 1 file\(s\)/m);
    const u = spawnSync(process.execPath, [CLI, 'usage', '--dir', dir, '--by', 'model', '--json'], { encoding: 'utf8' });
    assert.equal(u.status, 0, u.stderr);
    const report = JSON.parse(u.stdout);
    assert.equal(report.totals.requests, 6);
    assert.equal(report.groups[0].group, 'claude-sonnet-4-6');
    const table = spawnSync(process.execPath, [CLI, 'usage', '--dir', dir, '--by', 'day'], { encoding: 'utf8' });
    assert.match(table.stdout, /^total\s+6\s/m);
  });

  const cases: Array<[string, (l: string[]) => string[], RegExp]> = [
    ['an edited line', (l) => l.map((x, i) => (i === 3 ? x.replace(/"output":\d+/, '"output":1') : x)), /TAMPERED \(edited\): audit-[\d-]+\.jsonl line 4 was edited/],
    ['a removed line', (l) => l.filter((_, i) => i !== 2), /TAMPERED \(removed\): record seq 3 was removed before audit-[\d-]+\.jsonl line 3/],
    ['reordered lines', (l) => [l[0], l[1], l[3], l[2], ...l.slice(4)], /TAMPERED \(reordered\): audit-[\d-]+\.jsonl line 3 \(seq 4\) is out of order/],
    ['an inserted copy', (l) => [...l.slice(0, 4), l[1], ...l.slice(4)], /TAMPERED \(inserted\): audit-[\d-]+\.jsonl line 5 was inserted: it is a copy of .* line 2/],
    [
      'an inserted forged line',
      (l) => {
        const fake = JSON.parse(l[2]);
        fake.costUsd = 0;
        fake.hash = 'f'.repeat(64);
        return [...l.slice(0, 3), JSON.stringify(fake), ...l.slice(3)];
      },
      /TAMPERED \(inserted\): audit-[\d-]+\.jsonl line 4 was inserted/,
    ],
    ['trailing lines removed', (l) => l.slice(0, -2), /TAMPERED \(removed\): records after seq 6 were removed/],
  ];
  for (const [name, edit, expected] of cases) {
    it(`${name}: named, exit 1`, () => {
      const copy = tampered(dir, edit);
      const r = verify(copy);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, expected);
      fs.rmSync(copy, { recursive: true, force: true });
    });
  }

  it('a torn last line after the head is moved aside at start; the chain continues with a gap that verify reports as a gap', async () => {
    const copyData = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-torn-'));
    const auditCopy = path.join(copyData, 'audit');
    fs.mkdirSync(auditCopy);
    for (const n of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, n), path.join(auditCopy, n));
    const file = auditFiles(auditCopy)[0];
    // A crash mid-write: half a record after the last one the head names, no newline.
    fs.appendFileSync(file, '{"seq":9,"t":"2026-01-01T00:00:00.000Z","type":"call","id":"x","usa');
    const gw = await startGateway({ profiles: [{ name: 'a', provider: 'anthropic', apiKey: 'sk-ant-x', baseUrl: upstream.url }] }, { dataDir: copyData });
    await gw.close();
    const recs = readAudit(auditCopy);
    const gap = recs.find((r) => r.type === 'gap')!;
    assert.equal(gap.reason, 'torn_line');
    assert.ok(fs.readdirSync(auditCopy).some((n) => n.includes('.torn-')));
    const r = verify(auditCopy);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^gap: .* torn_line/m);
    fs.rmSync(copyData, { recursive: true, force: true });
  });

  it('a torn last line before the head (the log cut short of it) is tampering, not a crash: verify fails', async () => {
    const copyData = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-torn-'));
    const auditCopy = path.join(copyData, 'audit');
    fs.mkdirSync(auditCopy);
    for (const n of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, n), path.join(auditCopy, n));
    const file = auditFiles(auditCopy)[0];
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    fs.writeFileSync(file, lines.slice(0, -1).join('\n') + '\n' + '{"seq":8,"t":"2026-01-01T00:00:00.000Z","type":"call","id":"x","usa');
    const gw = await startGateway({ profiles: [{ name: 'a', provider: 'anthropic', apiKey: 'sk-ant-x', baseUrl: upstream.url }] }, { dataDir: copyData });
    await gw.close();
    const recs = readAudit(auditCopy);
    assert.equal(recs.find((r) => r.type === 'gap'), undefined);
    assert.equal(recs.find((r) => r.type === 'tamper')?.reason, 'log_truncated');
    const r = verify(auditCopy);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /^TAMPERED \(recorded\): .* records tampering the gateway found when it started at .*: the log ends at seq 7, but HEAD\.json .* says it reached seq 8/m);
    fs.rmSync(copyData, { recursive: true, force: true });
  });

  it('kill -9 of `serve` under load, then restart: spend rebuilt, verify passes with a recorded gap, no secret in the log', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-kill-'));
    const gatewayKey = 'ccgw-kill-test-gateway-key-0123456789abcdef';
    upstream.requireApiKey = PROVIDER_KEY;
    const config = path.join(home, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        dataDir: path.join(home, 'data'),
        profiles: [{ name: 'a', provider: 'anthropic', apiKey: '${env:KILL_PROVIDER_KEY}', baseUrl: upstream.url }],
        keys: [{ id: 'dev', key: '${env:KILL_GATEWAY_KEY}', admin: true }],
        budgets: [{ scope: 'global', usd: 1000, period: 'month' }],
        audit: { bodies: 'full' },
      }),
    );
    const env = { PATH: process.env.PATH ?? '', KILL_PROVIDER_KEY: PROVIDER_KEY, KILL_GATEWAY_KEY: gatewayKey };
    const start = async () => {
      const child = spawn(process.execPath, [CLI, 'serve', '-c', config], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      return { child, url: await listeningUrl(child) };
    };
    const auditDir = path.join(home, 'data', 'audit');
    const call = (url: string, stream: boolean) =>
      fetch(`${url}/anthropic/v1/messages`, { method: 'POST', headers: { 'x-api-key': gatewayKey, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'claude-opus-4-8', max_tokens: 5, stream, messages: [] }) })
        .then((r) => r.text())
        .catch(() => 'cut');
    try {
      const first = await start();
      // Load: finished calls, plus streams held open by the upstream when the process dies.
      await Promise.all(Array.from({ length: 40 }, (_, i) => call(first.url, i % 2 === 0)));
      const held = Array.from({ length: 5 }, () => {
        upstream.script.push({ holdAfterStart: true });
        return call(first.url, true);
      });
      await upstream.waitForHold();
      await until(() => auditCalls(auditDir).length >= 40);
      first.child.kill('SIGKILL');
      await Promise.all(held);
      upstream.release();
      const before = auditCalls(auditDir);
      assert.equal(before.length, 40, 'every finished call was recorded; the ones in flight were lost');
      const spentBefore = before.reduce((s, c) => s + (c.costUsd as number), 0);

      const second = await start();
      try {
        const usage = (await (await fetch(`${second.url}/usage`, { headers: { authorization: `Bearer ${gatewayKey}` } })).json()) as { budgets: Array<{ spentUsd: number }>; totals: { requests: number } };
        assert.ok(Math.abs(usage.budgets[0].spentUsd - spentBefore) < 1e-9, 'budget spend rebuilt from the log');
        assert.equal(usage.totals.requests, 40);
        await call(second.url, false);
      } finally {
        second.child.kill('SIGTERM');
        await new Promise((r) => second.child.once('exit', r));
      }
      const gap = readAudit(auditDir).find((r) => r.type === 'gap');
      assert.ok(gap, 'a gap event records the crash');
      const r = verify(auditDir);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^gap: /m);
      assert.match(r.out, /^intact: /m);
      const text = allText(auditDir);
      for (const secret of [gatewayKey, PROVIDER_KEY]) assert.ok(!text.includes(secret), 'a secret reached the audit log');
      assert.ok(text.includes('"body":"{'), 'full mode stores request bodies');
    } finally {
      upstream.requireApiKey = undefined;
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
