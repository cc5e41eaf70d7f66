import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { generateKey } from './keys';

/** The file holding the key `serve` generates when no keys are configured. */
export function localKeyPath(dataDir: string): string {
  return path.join(dataDir, 'gateway.key');
}

/** Id of the generated local key, usable in scopes as `key:local`. */
export const LOCAL_KEY_ID = 'local';

/** Reads a secret file, creating it (mode 0600, folder 0700) with `make()` when it does not exist. */
function readOrCreate(file: string, make: () => string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    const value = make();
    fs.writeSync(fd, value + '\n');
    fs.closeSync(fd);
    return value;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const value = fs.readFileSync(file, 'utf8').trim();
  if (!value) throw new Error(`${file} is empty; delete it to have a new one generated`);
  return value;
}

/** The generated gateway key in `dataDir`, created on first use. */
export function readOrCreateLocalKey(dataDir: string): string {
  return readOrCreate(localKeyPath(dataDir), generateKey);
}

/** The HMAC secret for short-lived tokens, created on first use. */
export function readOrCreateTokenSecret(dataDir: string): Buffer {
  return Buffer.from(readOrCreate(path.join(dataDir, 'token.secret'), () => randomBytes(32).toString('base64url')), 'utf8');
}
