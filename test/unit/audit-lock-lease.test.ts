// audit.lock as a lease: stale once its lease has run out whatever host wrote it, at once when its pid is gone on
// this host; a live lease elsewhere refuses with a message naming the holder and when the lease runs out.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AuditLock, AuditLockedError, LEASE_MS, LOCK_FILE } from '../../src/core/accounting/audit-lock';

describe('audit.lock lease', () => {
  let dir: string;
  let lock: AuditLock | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-lease-unit-'));
  });
  afterEach(() => {
    lock?.release();
    lock = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const write = (holder: Record<string, unknown>) => fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify(holder));
  const now = Date.parse('2026-12-04T10:00:00.000Z');

  it("another host's lock is taken over once its lease has run out, not before", () => {
    write({ pid: 4242, host: 'elsewhere', startedAt: '2026-12-04T09:00:00.000Z', leaseUntil: new Date(now + 5_000).toISOString(), token: 't' });
    assert.throws(
      () => AuditLock.acquire(dir, undefined, now),
      (err: Error) => err instanceof AuditLockedError && /pid 4242 on elsewhere, since 2026-12-04T09:00:00\.000Z.*Its lease runs until 2026-12-04T10:00:05\.000Z/.test(err.message),
    );
    lock = AuditLock.acquire(dir, undefined, now + 5_000);
    const mine = JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8'));
    assert.equal(mine.host, os.hostname());
    assert.equal(mine.leaseUntil, new Date(now + 5_000 + LEASE_MS).toISOString());
  });

  it('a dead pid on this host is stale at once, even with a live lease', () => {
    write({ pid: 2 ** 22 + 17, host: os.hostname(), startedAt: 'x', leaseUntil: new Date(now + LEASE_MS).toISOString(), token: 't' });
    lock = AuditLock.acquire(dir, undefined, now);
  });

  it('refresh moves the lease on while the lock is ours, and says when it is no longer ours', () => {
    lock = AuditLock.acquire(dir, undefined, now);
    assert.equal(lock.refresh(now + 10_000), true);
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')).leaseUntil, new Date(now + 10_000 + LEASE_MS).toISOString());
    write({ pid: 1, host: 'taker', startedAt: 'x', leaseUntil: new Date(now + 99_000).toISOString(), token: 'theirs' });
    assert.equal(lock.refresh(now + 20_000), false);
    lock.release();
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')).host, 'taker', 'release leaves a lock that is not ours');
    lock = undefined;
  });

  it('an unreadable lock is stale once it is older than a lease', () => {
    fs.writeFileSync(path.join(dir, LOCK_FILE), 'garbage');
    assert.throws(() => AuditLock.acquire(dir, undefined, Date.now()), AuditLockedError);
    lock = AuditLock.acquire(dir, undefined, Date.now() + LEASE_MS + 1000);
  });
});
