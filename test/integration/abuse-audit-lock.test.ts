// audit.lock is a lease, not a pid on a hostname: a container or pod recreated after a crash (another hostname, the
// old process gone for good) starts once the old lease has run out; a live lease still refuses, naming its holder.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LEASE_MS, LOCK_FILE } from '../../src/core/accounting/audit-lock';
import { auditCalls } from '../helpers/audit';
import { postMessage, serveToExit } from '../helpers/audit-lock';
import { startGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

describe('abuse: an audit.lock from another host', function () {
  this.timeout(30_000);
  let upstream: MockAnthropic;
  let home: string;
  const profiles = () => [{ name: 'a', provider: 'anthropic', apiKey: 'sk-ant-x', baseUrl: upstream.url }];

  before(async () => {
    upstream = await new MockAnthropic().start();
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-lease-'));
  });
  after(async () => {
    await upstream.stop();
    fs.rmSync(home, { recursive: true, force: true });
  });

  /** A data folder whose audit.lock was left by a gateway on host "old-pod-7f9c" with the given lease end. */
  function foreignLock(name: string, leaseUntil: number | undefined): { dataDir: string; auditDir: string } {
    const dataDir = path.join(home, name);
    const auditDir = path.join(dataDir, 'audit');
    fs.mkdirSync(auditDir, { recursive: true });
    const holder = { pid: 1, host: 'old-pod-7f9c', startedAt: '2026-12-01T08:00:00.000Z', ...(leaseUntil !== undefined ? { leaseUntil: new Date(leaseUntil).toISOString(), token: 'x' } : {}) };
    fs.writeFileSync(path.join(auditDir, LOCK_FILE), JSON.stringify(holder) + '\n');
    return { dataDir, auditDir };
  }

  const serve = (dataDir: string) => serveToExit(path.join(dataDir, 'config.json'), { dataDir, profiles: profiles() }, home);

  it('with an expired lease: the gateway starts, takes the lock over, and serves', async () => {
    const { dataDir, auditDir } = foreignLock('expired', Date.now() - 1000);
    const gw = await startGateway({ profiles: profiles() }, { dataDir });
    try {
      const res = await postMessage(gw);
      assert.equal(res.status, 200);
      await res.text();
      const lock = JSON.parse(fs.readFileSync(path.join(auditDir, LOCK_FILE), 'utf8'));
      assert.equal(lock.host, os.hostname());
      assert.equal(lock.pid, process.pid);
      // The running gateway holds a lease of its own, renewed while it runs.
      const until = Date.parse(lock.leaseUntil);
      assert.ok(until > Date.now() && until <= Date.now() + LEASE_MS, lock.leaseUntil);
    } finally {
      await gw.close();
    }
    assert.equal(auditCalls(auditDir).length, 1);
    assert.ok(!fs.existsSync(path.join(auditDir, LOCK_FILE)), 'released on close');
  });

  it('with a live lease: the CLI exits 1 naming the holder, its host and when its lease runs out', () => {
    const until = Date.now() + 60_000;
    const { dataDir } = foreignLock('live', until);
    const r = serve(dataDir);
    assert.equal(r.status, 1, String(r.stderr));
    const iso = new Date(until).toISOString().replace(/\./g, '\\.');
    assert.match(String(r.stderr), new RegExp(`error: the audit log in .* is already being written by another gateway \\(pid 1 on old-pod-7f9c, since 2026-12-01T08:00:00\\.000Z\\).*Its lease runs until ${iso}`));
    assert.doesNotMatch(String(r.stdout), /listening/);
  });

  it('written by a version without leases: still refused (its holder cannot be checked), with what to do', () => {
    const { dataDir, auditDir } = foreignLock('legacy', undefined);
    const r = serve(dataDir);
    assert.equal(r.status, 1, String(r.stderr));
    assert.match(String(r.stderr), new RegExp(`on old-pod-7f9c.*has no lease .* remove ${path.join(auditDir, LOCK_FILE).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  });

  it('a gateway whose lease was taken over stops writing (503) instead of forking the chain', async () => {
    const dataDir = path.join(home, 'lost');
    const gw = await startGateway({ profiles: profiles() }, { dataDir });
    try {
      const lockFile = path.join(gw.auditDir, LOCK_FILE);
      // Another host took the folder over (say this process was suspended past its lease).
      fs.writeFileSync(lockFile, JSON.stringify({ pid: 1, host: 'new-pod-1', startedAt: new Date().toISOString(), leaseUntil: new Date(Date.now() + 60_000).toISOString(), token: 'theirs' }));
      const accountant = gw.runtime.accountant as unknown as { audit: { renew(): void } };
      accountant.audit.renew();
      const res = await postMessage(gw);
      assert.equal(res.status, 503);
      const body = await res.text();
      assert.match(body, /cannot write its audit log \(EAUDITLOCK/, body);
      assert.equal(JSON.parse(fs.readFileSync(lockFile, 'utf8')).host, 'new-pod-1', 'their lock is left alone');
    } finally {
      await gw.close();
    }
    assert.equal(JSON.parse(fs.readFileSync(path.join(gw.auditDir, LOCK_FILE), 'utf8')).host, 'new-pod-1', 'not removed on close either');
  });
});
