import { hash } from 'node:crypto';

/** The schema the store uses unless the config names another. */
export const DEFAULT_SCHEMA = 'ccgw';

/** A problem with the store's database: unreachable, a schema it cannot use, or a role without the rights it needs. */
export class StoreError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/**
 * Checks a schema (or role) name: 1-63 bytes, no NUL and no `$` (the names are written into dollar-quoted function
 * bodies). Anything else is allowed and always quoted, so `team "gw"` works as well as `ccgw`.
 */
export function checkName(name: string, what: string): string {
  if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > 63 || /[\0$]/.test(name)) {
    throw new StoreError(`${what} ${JSON.stringify(name)} is not usable: it must be 1-63 bytes without "$" or NUL`, 'CCGW_STORE_NAME');
  }
  return name;
}

/** A quoted SQL identifier: `my"schema` becomes `"my""schema"`. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A quoted SQL string literal (standard_conforming_strings is on in every supported server). */
export function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * The NOTIFY channel of one topic in one schema. Channel names are identifiers (at most 63 bytes), so the schema is
 * represented by a short digest: two schemas in one database never hear each other.
 */
export function channelName(schema: string, topic: 'keys' | 'budgets'): string {
  return `ccgw_${hash('sha256', schema, 'hex').slice(0, 12)}_${topic}`;
}

/** A 64-bit advisory lock key for migrating one schema (the same in every process). */
export function migrationLockKey(schema: string): string {
  return BigInt.asIntN(64, BigInt(`0x${hash('sha256', `ccgw-migrate:${schema}`, 'hex').slice(0, 16)}`)).toString();
}

/** The SQLSTATE of a pg error, if it has one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** True for errors that mean the server could not be reached or the connection broke (worth retrying). */
export function isConnectionError(err: unknown): boolean {
  const state = sqlState(err);
  if (state) return state.startsWith('08') || state === '57P01' || state === '57P02' || state === '57P03';
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return true;
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable/i.test((err as Error)?.message ?? '');
}

/** Exponential backoff with jitter: 100 ms, 200 ms, ... up to `max`. */
export function backoff(attempt: number, max = 5000): number {
  const base = Math.min(max, 100 * 2 ** Math.min(attempt, 10));
  return Math.round(base / 2 + Math.random() * (base / 2));
}
