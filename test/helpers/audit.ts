import * as fs from 'node:fs';
import * as path from 'node:path';

/** Every record in an audit folder, oldest first. */
export function readAudit(dir: string): Array<Record<string, unknown>> {
  return auditFiles(dir).flatMap((f) =>
    fs
      .readFileSync(f, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>),
  );
}

/** The call records (one per model interaction). */
export function auditCalls(dir: string): Array<Record<string, unknown>> {
  return readAudit(dir).filter((r) => r.type === 'call');
}

/**
 * The call records once a gateway in this process has written its last ones: records are written at `setImmediate`
 * after a call settles (group commit), and a test can read the file before that when it runs in the same loop turn.
 */
export async function writtenCalls(dir: string): Promise<Array<Record<string, unknown>>> {
  await new Promise((r) => setImmediate(r));
  return auditCalls(dir);
}

export function auditFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => /^audit-\d{4}-\d{2}-\d{2}\.jsonl$/.test(n))
    .sort()
    .map((n) => path.join(dir, n));
}

/** Every file under a folder (audit files, moved-aside torn lines, HEAD) as one string, for leak greps. */
export function allText(dir: string): string {
  return fs
    .readdirSync(dir)
    .map((n) => fs.readFileSync(path.join(dir, n), 'utf8'))
    .join('\n');
}

/** Resolves once `check()` is true, polling on a short interval (for effects of another process). */
export async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 20));
  }
}
