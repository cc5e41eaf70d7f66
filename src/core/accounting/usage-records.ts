import type { Usage } from '../streams/usage';

/** What usage counts of one call record of the audit log (see CallRecord in records.ts). */
export interface UsageRecord extends Usage {
  /** The record's place in the chain (read from the files; a record not yet written has none). */
  seq?: number;
  /** The call's request id (to tell a record read from the files from the same call seen as it settled). */
  id?: string;
  /** The record's time (ISO, UTC): when the call settled. Days, windows and `since`/`until` are read from it. */
  t: string;
  key?: string;
  team?: string;
  project?: string;
  profile?: string;
  /** The response's model, else the upstream's, else the requested one. */
  model?: string;
  status?: string;
  costUsd: number;
  priceKnown: boolean;
}

/** The members of a call record usage reads (a CallRecord, or any object of that shape). */
export interface CallRecordFields {
  seq?: unknown;
  id?: unknown;
  key?: unknown;
  team?: unknown;
  project?: unknown;
  profile?: unknown;
  requestedModel?: unknown;
  upstreamModel?: unknown;
  responseModel?: unknown;
  status?: unknown;
  usage?: unknown;
  costUsd?: unknown;
  priceKnown?: unknown;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** The usage of a call record written (or about to be written) at time `t`. */
export function usageRecordOf(r: CallRecordFields, t: string): UsageRecord {
  const u = (typeof r.usage === 'object' && r.usage !== null ? r.usage : {}) as Record<string, unknown>;
  return {
    seq: typeof r.seq === 'number' ? r.seq : undefined,
    id: str(r.id),
    t,
    key: str(r.key),
    team: str(r.team),
    project: str(r.project),
    profile: str(r.profile),
    model: str(r.responseModel) ?? str(r.upstreamModel) ?? str(r.requestedModel),
    status: str(r.status),
    input: num(u.input),
    output: num(u.output),
    cacheWrite5m: num(u.cacheWrite5m),
    cacheWrite1h: num(u.cacheWrite1h),
    cacheRead: num(u.cacheRead),
    costUsd: num(r.costUsd),
    priceKnown: r.priceKnown !== false,
  };
}

/** Lines longer than this (a stored request body) are parsed only up to `priceKnown`. */
const LONG_LINE = 4096;

/**
 * Reads the usage of one audit line; undefined for a line that is not a call record (or not JSON). A line the gateway
 * wrote is parsed only up to `priceKnown`: every member usage reads comes before `"usage"`, and `costUsd` and
 * `priceKnown` right after it, so that prefix closed with `}` is a JSON object holding all of them, and a stored
 * request body after it (often most of the line) is never parsed. Any other line is parsed whole, with the same result.
 */
export function readUsageRecord(text: string): UsageRecord | undefined {
  // The third member says what the line is: {"seq":N,"t":"…","type":"…"
  const typeAt = text.indexOf('"type":"');
  if (typeAt === -1 || !text.startsWith('call"', typeAt + 8)) return undefined;
  // Cutting costs more than parsing a short tail (a few hundred bytes of path, family, stop reason).
  const end = text.length > LONG_LINE ? prefixEnd(text) : text.length;
  return parse(end < text.length ? `${text.slice(0, end)}}` : text);
}

/** Where the members usage reads end in a line the gateway wrote (the end of the line for any other). */
function prefixEnd(text: string): number {
  // A quote inside a string is escaped, so `,"usage":{` (quotes unescaped) is the member itself.
  const usageAt = text.indexOf(',"usage":{');
  if (usageAt === -1) return text.length;
  // The usage object holds numbers only: its first "}" closes it.
  const costAt = text.indexOf('}', usageAt) + 1;
  if (costAt === 0 || !text.startsWith(',"costUsd":', costAt)) return text.length;
  const priceAt = text.indexOf(',', costAt + 11);
  if (priceAt === -1) return text.length;
  if (text.startsWith(',"priceKnown":true', priceAt)) return priceAt + 18;
  if (text.startsWith(',"priceKnown":false', priceAt)) return priceAt + 19;
  return text.length;
}

function parse(json: string): UsageRecord | undefined {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof r !== 'object' || r === null || r.type !== 'call' || typeof r.t !== 'string') return undefined;
  return usageRecordOf(r, r.t);
}
