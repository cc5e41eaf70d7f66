import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Name of the lock file inside an audit folder. */
export const LOCK_FILE = 'audit.lock';

/** What the lock file says about its holder. */
export interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
  instance?: string;
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
    super(
      `the audit log in ${dir} is already being written by another gateway (pid ${holder.pid}${holder.host !== os.hostname() ? ` on ${holder.host}` : ''}, since ${holder.startedAt}); ` +
        'two writers would fork its hash chain. Stop that gateway, use it instead of starting another, or give this one its own "audit.dir".',
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
    return typeof h.pid === 'number' ? h : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The single-writer lock of an audit folder: `audit.lock` holding the writer's pid, created atomically (a hard link
 * of a fully written temp file, so nobody reads a half-written lock). A lock whose pid is no longer running on this
 * host (a crash, `kill -9`) is stale and taken over. Released on `release()`.
 */
export class AuditLock {
  private constructor(
    readonly file: string,
    private readonly key: string,
  ) {}

  /** Takes the lock or throws AuditLockedError (another live writer) or the file system's error (unwritable folder). */
  static acquire(dir: string, instance?: string): AuditLock {
    const key = path.resolve(dir);
    const file = path.join(dir, LOCK_FILE);
    const me: LockHolder = { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString(), ...(instance ? { instance } : {}) };
    if (heldHere.has(key)) throw new AuditLockedError(dir, readHolder(file) ?? me);
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(me) + '\n', { mode: 0o600 });
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          fs.linkSync(tmp, file);
          heldHere.add(key);
          return new AuditLock(file, key);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const holder = readHolder(file);
        // Unreadable (being replaced) or held by a live process: not ours to take. Another host's pid cannot be checked.
        if (holder && (holder.host !== me.host || (holder.pid !== process.pid && alive(holder.pid)))) throw new AuditLockedError(dir, holder);
        if (!holder && attempt === 2) throw new AuditLockedError(dir, { pid: -1, host: me.host, startedAt: 'unknown' });
        // Stale: its writer is gone. Remove it only if it is still the one we read, then try again.
        if (holder && JSON.stringify(readHolder(file)) === JSON.stringify(holder)) fs.rmSync(file, { force: true });
      }
      throw new AuditLockedError(dir, readHolder(file) ?? { pid: -1, host: me.host, startedAt: 'unknown' });
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  /** Gives the folder up (only if the lock is still ours). */
  release(): void {
    if (!heldHere.delete(this.key)) return;
    const holder = readHolder(this.file);
    if (holder?.pid === process.pid) fs.rmSync(this.file, { force: true });
  }
}
