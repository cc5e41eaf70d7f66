import { hash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Emitter, type Disposable, type Event } from '../events';
import type { KeyChange, NewKey, StoredKey } from './postgres/keys';

/** The file, in the data directory, that holds the keys made with `keys create` on the file store. */
export function fileKeysPath(dataDir: string): string {
  return path.join(dataDir, 'keys.json');
}

/** The same rule as the PostgreSQL store's keys table, so a key id works in either store. */
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
/** How long `create` and `revoke` wait for another command holding the file's lock. */
const LOCK_WAIT_MS = 5000;
/** Changes seen within this long are read once (an atomic replace is a create and a rename). */
const SETTLE_MS = 20;

/** A problem with the keys file or a key in it, with a message that says what to do. */
export class FileKeyError extends Error {
  override name = 'FileKeyError';
}

interface KeysFile {
  keys: StoredKey[];
}

/**
 * The file store's keys: `<dataDir>/keys.json` (mode 0600), holding each key's SHA-256 and never the key, replaced
 * atomically (a temp file, synced, renamed over it) under a lock file, so two commands never lose each other's key and
 * a reader never sees half a file. `watch()` follows the file for a running gateway: it fires the same `KeyChange`
 * events as the PostgreSQL store (`reload` with every key), so a key ring follows both stores the same way.
 */
export class FileKeyStore implements Disposable {
  readonly file: string;
  private readonly changes = new Emitter<KeyChange>();
  /** Fires `reload` with every key when the file changes (after `watch()`). */
  readonly onDidChange: Event<KeyChange> = this.changes.event;
  /** Set when the file could not be read or parsed at the last change (the keys known before stay in force). */
  readError?: Error;
  private watcher?: fs.FSWatcher;
  private timer?: NodeJS.Timeout;
  private lastText?: string;
  private disposed = false;

  constructor(readonly dataDir: string) {
    this.file = fileKeysPath(dataDir);
  }

  /** Every key in the file (none when there is no file yet). */
  list(): StoredKey[] {
    const text = this.readText();
    return text === undefined ? [] : parse(text, this.file).keys;
  }

  get(id: string): StoredKey | undefined {
    return this.list().find((k) => k.id === id);
  }

  /** Stores a new key by its SHA-256 (the caller generated it and shows it once); refuses an id or a key already stored. */
  create(k: NewKey): StoredKey {
    if (!KEY_ID.test(k.id)) throw new FileKeyError(`key id "${k.id}" must be 1-64 letters, digits, ".", "_", "@" or "-", starting with a letter or digit`);
    const digest = k.sha256?.toLowerCase() ?? (k.secret !== undefined ? hash('sha256', k.secret, 'hex') : undefined);
    if (!digest || !/^[0-9a-f]{64}$/.test(digest)) throw new FileKeyError(`key "${k.id}": give its secret or the 64-character hex SHA-256 of it`);
    return this.update((keys) => {
      if (keys.some((e) => e.id === k.id)) throw new FileKeyError(`a key with id "${k.id}" already exists in ${this.file} (revoke it, or choose another id)`);
      if (keys.some((e) => e.sha256 === digest)) throw new FileKeyError(`that key is already stored under another id in ${this.file}`);
      const stored: StoredKey = {
        id: k.id,
        sha256: digest,
        ...(k.team !== undefined ? { team: k.team } : {}),
        ...(k.project !== undefined ? { project: k.project } : {}),
        ...(k.profile !== undefined ? { profile: k.profile } : {}),
        admin: k.admin === true,
        createdAt: new Date().toISOString(),
      };
      keys.push(stored);
      return stored;
    });
  }

  /** Revokes a key; undefined when the file has no such key. Revoking twice keeps the first time. */
  revoke(id: string): StoredKey | undefined {
    return this.update((keys) => {
      const k = keys.find((e) => e.id === id);
      if (k && !k.revokedAt) k.revokedAt = new Date().toISOString();
      return k;
    });
  }

  /**
   * Follows the file: reads it now (firing `reload`), then again whenever something in the data directory changes
   * (fs.watch on the folder, since an atomic replace gives the file a new inode), firing `reload` when its text changed.
   */
  watch(): void {
    if (this.watcher || this.disposed) return;
    fs.mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    this.watcher = fs.watch(this.dataDir, { persistent: false }, (_event, name) => {
      if (name === null || name === path.basename(this.file)) this.soon();
    });
    this.watcher.on('error', (err) => {
      this.readError = err;
    });
    this.readNow();
  }

  /** Reads the file again (see readNow), for a key ring's first load. */
  reload(): Promise<StoredKey[] | undefined> {
    return Promise.resolve(this.readNow());
  }

  /** Reads the file and fires `reload` when its text changed since the last read; returns the keys read (undefined when unreadable). */
  readNow(): StoredKey[] | undefined {
    let text: string | undefined;
    let keys: StoredKey[];
    try {
      text = this.readText();
      keys = text === undefined ? [] : parse(text, this.file).keys;
    } catch (err) {
      this.readError = err as Error;
      return undefined;
    }
    this.readError = undefined;
    if (text === this.lastText && this.lastText !== undefined) return keys;
    this.lastText = text ?? '';
    this.changes.fire({ kind: 'reload', keys });
    return keys;
  }

  private soon(): void {
    if (this.timer || this.disposed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.disposed) this.readNow();
    }, SETTLE_MS);
    this.timer.unref();
  }

  private readText(): string | undefined {
    try {
      return fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new FileKeyError(`cannot read ${this.file}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Read, change and replace the file under its lock. */
  private update<T>(change: (keys: StoredKey[]) => T): T {
    fs.mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    const release = lock(`${this.file}.lock`);
    try {
      const text = this.readText();
      const data = text === undefined ? { keys: [] } : parse(text, this.file);
      const result = change(data.keys);
      writeAtomically(this.file, JSON.stringify(data, null, 2) + '\n');
      return result;
    } finally {
      release();
    }
  }

  dispose(): void {
    this.disposed = true;
    if (this.timer) clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
    this.changes.dispose();
  }
}

function parse(text: string, file: string): KeysFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new FileKeyError(`${file} is not valid JSON (${(err as Error).message}); restore it or remove it to start with no created keys`, { cause: err });
  }
  const keys = (data as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || !keys.every((k) => typeof k?.id === 'string' && typeof k?.sha256 === 'string' && /^[0-9a-f]{64}$/.test(k.sha256))) {
    throw new FileKeyError(`${file} is not a keys file (expected {"keys": [{"id", "sha256", ...}]})`);
  }
  return { keys: keys as StoredKey[] };
}

/** Writes a temp file (mode 0600), syncs it and renames it over `file`, so readers see the old or the new text only. */
function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  try {
    const dir = fs.openSync(path.dirname(file), 'r');
    fs.fsyncSync(dir);
    fs.closeSync(dir);
  } catch {
    // Not every platform can sync a folder; the rename itself is atomic.
  }
}

/** An exclusive lock file holding its owner's pid; one left by a process that died is taken over. */
function lock(file: string): () => void {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      return () => fs.rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number(readOr(file, ''));
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
      fs.rmSync(file, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new FileKeyError(`${file} is held by process ${owner || '?'} (another keys command); try again, or remove the file if no such process runs`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return fallback;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A key ring that follows a store's keys (KeyRing.follow: loads them with `reload()`, then follows `onDidChange`). */
export interface FollowingKeyRing {
  follow(feed: { reload(): Promise<readonly StoredKey[] | undefined>; onDidChange: Event<KeyChange> }): Promise<Disposable>;
}

/**
 * Makes a running gateway's key ring follow the keys that `keys create` and `keys revoke` write to the data directory
 * (file store): loaded now, then again within SETTLE_MS of each change. Dispose the result to stop following.
 */
export async function followFileKeys(ring: FollowingKeyRing, dataDir: string): Promise<Disposable> {
  const store = new FileKeyStore(dataDir);
  store.watch();
  try {
    const subscription = await ring.follow(store);
    return {
      dispose() {
        subscription.dispose();
        store.dispose();
      },
    };
  } catch (err) {
    store.dispose();
    throw err;
  }
}
