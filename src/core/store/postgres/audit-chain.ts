import { createHmac, hash } from 'node:crypto';

/** The `prev` of a chain's first record. */
export const GENESIS = '0'.repeat(64);

/**
 * How a chain's records are hashed: HMAC-SHA256 with a secret the gateways hold and the database does not (so that
 * whoever can edit the table cannot recompute the chain after an edit), or plain SHA-256 without one.
 */
export type ChainKey = Buffer | undefined;

/** The hex hash of one record's text under `key`. */
export function recordHash(text: string, key: ChainKey): string {
  return key ? createHmac('sha256', key).update(text).digest('hex') : hash('sha256', text, 'hex');
}

/** One record as stored: its columns and its text (the JSON the hash covers). */
export interface SealedRow {
  chain: string;
  seq: number;
  t: string;
  type: string;
  record: string;
  hash: string;
}

/**
 * Seals a record: the JSON text is `{"chain","seq","t","type",...fields,"prev"}` in that order (as the file log's
 * lines, with the chain id first), and the hash covers that exact text, which is stored as it is.
 */
export function sealRecord(chain: string, seq: number, t: string, type: string, fields: Record<string, unknown>, prev: string, key: ChainKey): SealedRow {
  const record = JSON.stringify({ chain, seq, t, type, ...fields, prev });
  return { chain, seq, t, type, record, hash: recordHash(record, key) };
}
