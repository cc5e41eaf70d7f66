import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AuditLockedError, LOCK_FILE } from '../../src/core/accounting/audit-lock';
import { auditCalls } from '../helpers/audit';
import { postMessage, serveToExit } from '../helpers/audit-lock';
import { startGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

/** One writer per audit folder: a second gateway on the same folder would fork the hash chain. */
describe('audit log: single writer (audit.lock)', function () {
  this.timeout(30_000);
  let upstream: MockAnthropic;
  let home: string;
  const profiles = () => [{ name: 'a', provider: 'anthropic', apiKey: 'sk-ant-x', baseUrl: upstream.url }];

  before(async () => {
    upstream = await new MockAnthropic().start();
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-lock-'));
  });
  after(async () => {
    await upstream.stop();
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('a second gateway on the same folder is refused with a clear error; once the first closes, it starts', async () => {
    const dataDir = path.join(home, 'inproc');
    const first = await startGateway({ profiles: profiles() }, { dataDir });
    const lock = JSON.parse(fs.readFileSync(path.join(first.auditDir, LOCK_FILE), 'utf8'));
    assert.equal(lock.pid, process.pid);
    await assert.rejects(startGateway({ profiles: profiles() }, { dataDir }), (err: Error) => {
      assert.ok(err instanceof AuditLockedError);
      assert.match(err.message, /already being written by another gateway \(pid \d+.*fork its hash chain/);
      return true;
    });
    await first.close();
    assert.ok(!fs.existsSync(path.join(first.auditDir, LOCK_FILE)), 'released on close');
    const second = await startGateway({ profiles: profiles() }, { dataDir });
    await second.close();
  });

  it('the CLI exits 1 naming the holder while another gateway writes the folder', async () => {
    const dataDir = path.join(home, 'cli');
    const held = await startGateway({ profiles: profiles() }, { dataDir });
    try {
      const r = serveToExit(path.join(home, 'cli.json'), { dataDir, profiles: profiles() }, home);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`error: the audit log in .* is already being written by another gateway \\(pid ${process.pid}`));
      assert.doesNotMatch(r.stdout, /listening/);
    } finally {
      await held.close();
    }
  });

  it('a stale lock (its process is gone, e.g. after kill -9) is taken over; the log continues', async () => {
    const dataDir = path.join(home, 'stale');
    const auditDir = path.join(dataDir, 'audit');
    fs.mkdirSync(auditDir, { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    fs.writeFileSync(path.join(auditDir, LOCK_FILE), JSON.stringify({ pid: Number(dead.stdout), host: os.hostname(), startedAt: new Date().toISOString() }));
    const gw = await startGateway({ profiles: profiles() }, { dataDir });
    try {
      const res = await postMessage(gw);
      assert.equal(res.status, 200);
      await res.text();
      assert.equal(JSON.parse(fs.readFileSync(path.join(auditDir, LOCK_FILE), 'utf8')).pid, process.pid);
    } finally {
      await gw.close();
    }
    assert.equal(auditCalls(auditDir).length, 1);
  });
});
