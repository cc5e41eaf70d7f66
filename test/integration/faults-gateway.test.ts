import * as assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { auditCalls, readAudit, until } from '../helpers/audit';
import { listeningUrl, startGateway, type TestGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

const CLI = path.resolve(__dirname, '../../dist/cli.js');
type Health = { status: string; accounting: { audit: { writable: boolean; error?: string; pendingRecords: number; droppedRecords: number } } };

/** Mounts a tmpfs of `size` at a new folder; undefined where mounting is not allowed. */
function smallDisk(size: string): string | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    fs.rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

/** Fills a file system until it refuses more bytes. */
function fill(dir: string): string {
  const file = path.join(dir, 'filler');
  const fd = fs.openSync(file, 'w');
  try {
    for (;;) fs.writeSync(fd, Buffer.alloc(4096, 1));
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

/** The gateway's own faults: a full disk under the audit log, and kill -9 under load with budgets. */
describe('faults: the gateway itself', function () {
  this.timeout(60_000);
  let upstream: MockAnthropic;

  before(async () => {
    upstream = await new MockAnthropic().start();
  });
  after(async () => {
    upstream.release();
    await upstream.stop();
  });

  const call = (gw: TestGateway, stream = false) =>
    fetch(`${gw.url}/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${gw.key}` }, body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 5, stream, messages: [] }) });
  const health = async (gw: TestGateway) => (await (await fetch(`${gw.url}/health`)).json()) as Health;

  for (const failOpen of [false, true]) {
    it(`disk full under the audit log (tmpfs), failOpen ${failOpen}: ${failOpen ? 'calls are served, /health says degraded' : 'model calls get a clear 503, /health says refusing'}; once there is room, the records that waited are written and the chain verifies`, async function () {
      const disk = smallDisk('512k');
      if (!disk) this.skip();
      const gw = await startGateway({ profiles: [{ name: 'a', provider: 'anthropic', apiKey: 'sk-ant-x', baseUrl: upstream.url }], audit: { dir: path.join(disk!, 'audit'), failOpen } });
      try {
        assert.equal((await call(gw)).status, 200);
        let served = 1;
        const filler = fill(disk!);
        // The audit file's last page may still hold a few lines; the call that meets the full disk was already served,
        // so its record waits in memory.
        let h = await health(gw);
        for (let i = 0; i < 40 && h.accounting.audit.writable; i++) {
          const met = await call(gw, i % 2 === 0);
          assert.equal(met.status, 200);
          await met.text();
          served++;
          await until(() => gw.runtime.callsInFlight === 0);
          h = await health(gw);
        }
        assert.equal(h.status, failOpen ? 'degraded' : 'refusing');
        assert.equal(h.accounting.audit.writable, false);
        assert.equal(h.accounting.audit.error, 'ENOSPC');
        assert.ok(h.accounting.audit.pendingRecords >= 1);
        const refused = await call(gw);
        if (failOpen) {
          assert.equal(refused.status, 200);
          await refused.text();
          served++;
        } else {
          assert.equal(refused.status, 503);
          const body = (await refused.json()) as { type: string; error: { type: string; message: string } };
          assert.equal(body.type, 'error');
          assert.equal(body.error.type, 'api_error');
          assert.match(body.error.message, /cannot write its audit log \(ENOSPC\)/);
        }
        fs.rmSync(filler);
        const after = await call(gw);
        assert.equal(after.status, 200);
        await after.text();
        served++;
        await until(() => gw.runtime.callsInFlight === 0);
        h = await health(gw);
        assert.equal(h.status, 'ok');
        assert.equal(h.accounting.audit.pendingRecords, 0);
        assert.equal(h.accounting.audit.droppedRecords, 0);
        const calls = auditCalls(gw.auditDir);
        assert.equal(calls.length, served, 'every served call is in the log, in order');
        assert.deepEqual(calls.map((c) => c.seq), [...calls.map((c) => c.seq)].sort((a, b) => (a as number) - (b as number)));
      } finally {
        await gw.close();
        const v = spawnSync(process.execPath, [CLI, 'audit', 'verify', '--dir', path.join(disk!, 'audit')], { encoding: 'utf8' });
        execFileSync('umount', [disk!]);
        fs.rmSync(disk!, { recursive: true, force: true });
        assert.equal(v.status, 0, v.stdout + v.stderr);
      }
    });
  }

  it('kill -9 under load, then restart: the chain verifies with the gap, and an exhausted budget still holds', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-kill-budget-'));
    const key = 'ccgw-kill-budget-gateway-key-0123456789';
    const config = path.join(home, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        dataDir: path.join(home, 'data'),
        profiles: [{ name: 'a', provider: 'anthropic', apiKey: 'sk-ant-x', baseUrl: upstream.url }],
        keys: [{ id: 'dev', key, admin: true }],
        budgets: [{ scope: 'global', usd: 0.01, period: 'day' }],
      }),
    );
    const start = async () => {
      const child = spawn(process.execPath, [CLI, 'serve', '-c', config, '--port', '0'], { env: { PATH: process.env.PATH ?? '', HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
      return { child, url: await listeningUrl(child) };
    };
    const send = (url: string, stream: boolean) =>
      fetch(`${url}/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 5, stream, messages: [] }) }).then(
        async (r) => ({ status: r.status, body: await r.text().catch(() => 'cut') }),
        () => ({ status: 0, body: 'cut' }),
      );
    const auditDir = path.join(home, 'data', 'audit');
    let first: Awaited<ReturnType<typeof start>> | undefined;
    try {
      const served = await start();
      first = served;
      // A stream held open by the upstream when the process dies, and the budget spent (about $0.0012 a call) under load.
      upstream.script.push({ holdAfterStart: true });
      const held = send(served.url, true);
      await upstream.waitForHold();
      const done = await Promise.all(Array.from({ length: 12 }, (_, i) => send(served.url, i % 2 === 0)));
      // The budget refuses under load: spent, or held by the reservations of the calls in flight (the held stream's own
      // stays until the kill), which is a retryable 429; after the restart the spend itself runs out (below).
      assert.ok(
        done.some((r) => r.status === 429 && /billing_error|is held by calls in flight/.test(r.body)),
        'the budget ran out under load',
      );
      served.child.kill('SIGKILL');
      await held;
      upstream.release();
      const spent = () => auditCalls(auditDir).reduce((s, c) => s + (c.costUsd as number), 0);
      const spentBefore = spent();
      const second = await start();
      try {
        const usage = (await (await fetch(`${second.url}/usage`, { headers: { authorization: `Bearer ${key}` } })).json()) as { budgets: Array<{ spentUsd: number }> };
        assert.ok(Math.abs(usage.budgets[0].spentUsd - spentBefore) < 1e-9, 'the spend is rebuilt from the log');
        let again = { status: 0, body: '' };
        for (let i = 0; i < 12 && again.status !== 429; i++) again = await send(second.url, false);
        assert.equal(again.status, 429, again.body);
        assert.match(again.body, /"type":"billing_error".*global budget of \$0\.01 per day reached/);
        assert.ok(spent() <= 0.01 + 0.0013, `spent $${spent()} across the crash: the budget held (overshoot at most one call)`);
      } finally {
        second.child.kill('SIGTERM');
        await new Promise((r) => second.child.once('exit', r));
      }
      assert.ok(readAudit(auditDir).some((r) => r.type === 'gap'), 'the crash is recorded as a gap');
      const v = spawnSync(process.execPath, [CLI, 'audit', 'verify', '--dir', auditDir], { encoding: 'utf8' });
      assert.equal(v.status, 0, v.stdout);
      assert.match(v.stdout, /^gap: /m);
    } finally {
      // A failed assertion before the kill must not leave the child serving (it would keep mocha from exiting).
      if (first && first.child.exitCode === null && first.child.signalCode === null) first.child.kill('SIGKILL');
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
