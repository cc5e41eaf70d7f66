import * as fs from 'node:fs';
import { LineCutter, type RawLine } from './audit-files';

/**
 * Bytes read per step: about 100 call records, a fraction of a millisecond of parsing. Reads that complete together
 * (several queries, the seed) are handled in one turn of the event loop, so a step must stay small.
 */
const CHUNK_BYTES = 64 << 10;

/** Resolves in the next turn of the event loop, after timers and sockets had theirs. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The asynchronous twin of `readLines` (audit-files.ts), for readers that run inside a serving gateway: reads files
 * in bounded chunks with non-blocking reads and hands each line to `onLine`, so the event loop runs between two
 * chunks (a stream in flight keeps flowing while a month of records is read). Stops early when `onLine` returns false.
 * A last line without its newline comes with `complete: false` (a write still in progress, or cut short).
 */
export async function readLinesAsync(files: readonly string[], onLine: (l: RawLine) => boolean | void, chunkSize = CHUNK_BYTES): Promise<void> {
  const buf = Buffer.allocUnsafe(chunkSize);
  for (const file of files) {
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    try {
      const cut = new LineCutter(file, onLine);
      for (;;) {
        const { bytesRead: n } = await fh.read(buf, 0, chunkSize, null);
        if (n === 0) break;
        if (!cut.push(buf, n)) return;
        // Reads served from the page cache complete at once: without this, one turn of the loop could handle the
        // chunks of every scan in progress, one after another, before any timer or socket got its turn.
        await nextTurn();
      }
      if (!cut.end()) return;
    } finally {
      await fh.close();
    }
  }
}
