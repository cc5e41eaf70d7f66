import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Name of the lock file inside an audit folder. */
export const LOCK_FILE = 'audit.lock';

/** How long a lock's lease lasts after its last refresh; a lock whose lease has run out is stale, whoever wrote it. */
export const LEASE_MS = 30_000;

/** How often a running gateway renews its lease (a third of the lease, so two missed renewals still hold it). */
export const LEASE_REFRESH_MS = 10_000;

/** What the lock file says about its holder. */
export interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
  instance?: string;
  /** ISO time the lease runs out unless renewed (absent in locks written before leases). */
  leaseUntil?: string;
  /** Random per acquisition: tells this holder's lock from a later one with the same pid and host (containers). */
  token?: string;
}

/**
 * Another live gateway writes this audit folder. Two writers would fork the hash chain (both continue from the same
 * head), so the second one must not open it.
 */
export class AuditLockedError extends Error {
  override name = 'AuditLockedError';
  readonly code = 'EAUDITLOCKED';
  constructor(
    readonly dir: string,
    readonly holder: LockHolder,
  ) {
    const where = holder.host !== os.hostname() ? ` on ${holder.host}` : '';
    const lease = holder.leaseUntil
      ? ` Its lease runs until ${holder.leaseUntil} and is renewed every ${LEASE_REFRESH_MS / 1000} s while it runs; if that gateway is gone, this one can start once the lease has run out.`
      : holder.pid === -1
        ? ''
        : ` Its lock has no lease (written by an older version); if that gateway is gone, remove ${path.join(dir, LOCK_FILE)}.`;
    super(
      `the audit log in ${dir} is already being written by another gateway (pid ${holder.pid}${where}, since ${holder.startedAt}); ` +
        `two writers would fork its hash chain. Stop that gateway, use it instead of starting another, or give this one its own "audit.dir".${lease}`,
    );
  }
}

/** Folders locked by this process (a second gateway in the same process is a second writer too). */
const heldHere = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const h = JSON.parse(fs.readFileSync(file, 'utf8')) as LockHolder;
    return typeof h.pid === 'number' && typeof h.host === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

function mtimeOf(file: string): number | undefined {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * Whether a lock can be taken over: its lease has run out (whatever host wrote it), or it was written on this host
 * by a process that no longer runs (a crash, `kill -9`: no need to wait for the lease), or by this very pid in an
 * earlier life (a container's pid 1 after a restart). A lock from another host with a live lease, or without a lease
 * at all (an older version: its holder cannot be checked), is not.
 */
function isStale(holder: LockHolder, me: LockHolder, now: number): boolean {
  if (holder.leaseUntil !== undefined) {
    const until = Date.parse(holder.leaseUntil);
    if (Number.isNaN(until) || until <= now) return true;
  }
  if (holder.host !== me.host) return false;
  return holder.pid === process.pid || !alive(holder.pid);
}

/**
 * The single-writer lock of an audit folder: `audit.lock` holding the writer's pid, host and a lease, created
 * atomically (a hard link of a fully written temp file, so nobody reads a half-written lock). The running gateway
 * renews the lease every LEASE_REFRESH_MS (`refresh()`, by renaming a new file over the lock); a lock whose lease has
 * run out is stale whichever host wrote it, so a container recreated on another host after a crash starts once the
 * lease is over. Released on `release()`.
 */
export class AuditLock {
  private constructor(
    readonly file: string,
    private readonly key: string,
    private readonly me: LockHolder,
  ) {}

  /** Takes the lock or throws AuditLockedError (another live writer) or the file system's error (unwritable folder). */
  static acquire(dir: string, instance?: string, now = Date.now()): AuditLock {
    const key = path.resolve(dir);
    const file = path.join(dir, LOCK_FILE);
    const me: LockHolder = {
      pid: process.pid,
      host: os.hostname(),
      startedAt: new Date(now).toISOString(),
      ...(instance ? { instance } : {}),
      leaseUntil: new Date(now + LEASE_MS).toISOString(),
      token: randomUUID(),
    };
    if (heldHere.has(key)) throw new AuditLockedError(dir, readHolder(file) ?? me);
    const tmp = `${file}.${process.pid}.${me.token}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(me) + '\n', { mode: 0o600 });
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          fs.linkSync(tmp, file);
          heldHere.add(key);
          return new AuditLock(file, key, me);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const holder = readHolder(file);
        if (holder) {
          if (!isStale(holder, me, now)) throw new AuditLockedError(dir, holder);
          // Stale: its writer is gone. Remove it only if it is still the one we read, then try again.
          if (JSON.stringify(readHolder(file)) === JSON.stringify(holder)) fs.rmSync(file, { force: true });
          continue;
        }
        // Unreadable: being replaced right now, or garbage. Garbage older than a lease is stale too.
        const mtime = mtimeOf(file);
        if (mtime !== undefined && mtime + LEASE_MS <= now) fs.rmSync(file, { force: true });
        else if (attempt === 2) throw new AuditLockedError(dir, { pid: -1, host: me.host, startedAt: 'unknown' });
      }
      throw new AuditLockedError(dir, readHolder(file) ?? { pid: -1, host: me.host, startedAt: 'unknown' });
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  /** When the lease runs out unless renewed. */
  get leaseUntil(): string {
    return this.me.leaseUntil!;
  }

  /**
   * Renews the lease. False when the lock is no longer ours (another gateway took it over after our lease ran out,
   * e.g. while this process was suspended): this one must stop writing.
   */
  refresh(now = Date.now()): boolean {
    const holder = readHolder(this.file);
    if (!holder || holder.token !== this.me.token) return false;
    this.me.leaseUntil = new Date(now + LEASE_MS).toISOString();
    const tmp = `${this.file}.${process.pid}.${this.me.token}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.me) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, this.file);
    return true;
  }

  /** Gives the folder up (only if the lock is still ours). */
  release(): void {
    if (!heldHere.delete(this.key)) return;
    const holder = readHolder(this.file);
    if (holder?.token === this.me.token) fs.rmSync(this.file, { force: true });
  }
}
