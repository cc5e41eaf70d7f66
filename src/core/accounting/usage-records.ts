/** What usage counts of one call record of the audit log (see CallRecord in records.ts). */
export interface UsageRecord {
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
  input: number;
  output: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
  costUsd: number;
  priceKnown: boolean;
}

/** The members of a call record usage reads (a CallRecord, or any object of that shape). */
export interface CallRecordFields {
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

/**
 * Reads the usage of one audit line; undefined for a line that is not a call record (or not JSON). Lines the gateway
 * wrote are read without parsing the whole line (a stored request body can be most of it): every member usage reads
 * comes before `"usage"`, and `costUsd` and `priceKnown` right after it, so nothing later in the line can be taken
 * for them. Anything else (an escaped string, members in another order) is read with JSON.parse, with the same result.
 */
export function readUsageRecord(text: string): UsageRecord | undefined {
  // The third member says what the line is: {"seq":N,"t":"…","type":"…"
  const typeAt = text.indexOf('"type":"');
  if (typeAt === -1 || !text.startsWith('call"', typeAt + 8)) return undefined;
  return readFast(text) ?? readParsed(text);
}

function readParsed(text: string): UsageRecord | undefined {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof r !== 'object' || r === null || r.type !== 'call' || typeof r.t !== 'string') return undefined;
  return usageRecordOf(r, r.t);
}

function readFast(text: string): UsageRecord | undefined {
  const usageAt = text.indexOf(',"usage":{');
  if (usageAt === -1) return undefined;
  let escaped = false;
  const member = (name: string): string | undefined => {
    const marker = `,"${name}":"`;
    const i = text.indexOf(marker);
    if (i === -1 || i > usageAt) return undefined;
    const start = i + marker.length;
    const v = text.slice(start, text.indexOf('"', start));
    if (v.includes('\\')) escaped = true;
    return v;
  };
  const t = member('t');
  const id = member('id');
  const key = member('key');
  const team = member('team');
  const project = member('project');
  const profile = member('profile');
  const model = member('responseModel') ?? member('upstreamModel') ?? member('requestedModel');
  const status = member('status');
  if (escaped || !t) return undefined;
  const usageEnd = text.indexOf('}', usageAt);
  const costAt = usageEnd + 1;
  if (usageEnd === -1 || !text.startsWith(',"costUsd":', costAt)) return undefined;
  let usage: Record<string, unknown>;
  try {
    usage = JSON.parse(text.slice(usageAt + 9, usageEnd + 1));
  } catch {
    return undefined;
  }
  const costEnd = text.indexOf(',', costAt + 11);
  const cost = Number(text.slice(costAt + 11, costEnd));
  if (costEnd === -1 || !Number.isFinite(cost)) return undefined;
  let priceKnown: boolean;
  if (text.startsWith(',"priceKnown":true', costEnd)) priceKnown = true;
  else if (text.startsWith(',"priceKnown":false', costEnd)) priceKnown = false;
  else return undefined;
  // A literal, not a spread: V8 keeps it on the fast path (a spread of a record costs tens of microseconds here).
  return {
    id,
    t,
    key,
    team,
    project,
    profile,
    model,
    status,
    input: num(usage.input),
    output: num(usage.output),
    cacheWrite5m: num(usage.cacheWrite5m),
    cacheWrite1h: num(usage.cacheWrite1h),
    cacheRead: num(usage.cacheRead),
    costUsd: cost,
    priceKnown,
  };
}
