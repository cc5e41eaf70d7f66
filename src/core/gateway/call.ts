import type { ProviderName } from '../config/schema';
import type { BudgetStatus } from '../accounting/budgets';
import type { SecurityRefusal } from '../accounting/security-events';
import type { UsageQuery, UsageReport } from '../accounting/usage-report';
import type { Period } from '../accounting/windows';
import type { Event } from '../events';
import type { Usage } from '../streams/usage';
import type { GatewayKey } from './keys';

/** The route family a model call came in on. */
export type RouteName = 'anthropic' | 'unified' | 'bedrock' | 'vertex';

/** What the gateway knows about a model call when it is admitted. */
export interface CallInfo {
  requestId: string;
  startedAt: number;
  key: GatewayKey;
  /** The key's project, else the `x-claude-code-gateway-project` header. */
  project?: string;
  sessionId?: string;
  agentId?: string;
  profile: string;
  provider: ProviderName;
  route: RouteName;
  method: string;
  /** Path without the query string (queries can carry secrets in other APIs). */
  path: string;
  requestedModel?: string;
  upstreamModel?: string;
  streaming: boolean;
  /** `count_tokens` calls: recorded, never priced, never blocked. */
  countTokens: boolean;
  /** The request body (only kept when the audit log stores bodies). */
  requestBody?: Buffer;
  /** The request headers (only kept when the audit log stores bodies; credentials are removed before storing). */
  requestHeaders?: Record<string, string>;
  /** Size of the request body, for the budget reservation estimate. */
  requestBytes?: number;
  /** The request's `max_tokens` (the most output it can cost), for the budget reservation. */
  maxTokens?: number;
  /** Forwarded without metering (a passthrough endpoint the profile opted into); recorded as such. */
  unmetered?: boolean;
}

/** How a call ended. */
export type CallStatus = 'ok' | 'upstream_error' | 'client_aborted' | 'upstream_cut' | 'gateway_error' | 'rejected';

/** What the gateway knows once a call has settled. */
export interface CallOutcome {
  status: CallStatus;
  /** Status code sent to the client. */
  httpStatus: number;
  upstreamStatus?: number;
  latencyMs: number;
  /** Time to the first response byte at the client, from the start of the call. */
  ttfbMs?: number;
  usage: Usage;
  /** Upstream model from the response, when it said. */
  responseModel?: string;
  stopReason?: string;
  errorType?: string;
  errorMessage?: string;
  /** The usage was estimated from what the client received (the call ended before the upstream's final usage). */
  estimated?: boolean;
}

/** A settled call, as events and the audit log see it. */
export interface SettledCall extends CallInfo, CallOutcome {
  costUsd: number;
  priceKnown: boolean;
}

/**
 * The settled call from what was known at admission and at the end, written out member by member (the type
 * makes a member added to CallInfo or CallOutcome a compile error here until it is copied). On Node 20,
 * `{ ...call, ...outcome }` takes ~15 µs (a slow path in V8 for a second spread into a wide literal) and
 * Object.assign ~1.5 µs; this literal, a tenth of that.
 */
export function settledCall(call: CallInfo, outcome: CallOutcome, costUsd: number, priceKnown: boolean): SettledCall {
  const settled = {
    requestId: call.requestId,
    startedAt: call.startedAt,
    key: call.key,
    project: call.project,
    sessionId: call.sessionId,
    agentId: call.agentId,
    profile: call.profile,
    provider: call.provider,
    route: call.route,
    method: call.method,
    path: call.path,
    requestedModel: call.requestedModel,
    upstreamModel: call.upstreamModel,
    streaming: call.streaming,
    countTokens: call.countTokens,
    requestBody: call.requestBody,
    requestHeaders: call.requestHeaders,
    requestBytes: call.requestBytes,
    maxTokens: call.maxTokens,
    unmetered: call.unmetered,
    status: outcome.status,
    httpStatus: outcome.httpStatus,
    upstreamStatus: outcome.upstreamStatus,
    latencyMs: outcome.latencyMs,
    ttfbMs: outcome.ttfbMs,
    usage: outcome.usage,
    responseModel: outcome.responseModel,
    stopReason: outcome.stopReason,
    errorType: outcome.errorType,
    errorMessage: outcome.errorMessage,
    estimated: outcome.estimated,
    costUsd,
    priceKnown,
  } satisfies Record<keyof SettledCall, unknown>;
  return settled;
}

/** Admission answer: extra response headers (rate-limit headroom) and a handle to settle the call with. */
export interface Admission {
  headers?: Record<string, string>;
  settle(outcome: CallOutcome): void;
}

/** The accounting seam: admits calls (budgets, rate limits) and settles them (usage, cost, audit, events). */
export interface Accountant {
  /**
   * Throws (or rejects with) an Anthropic-shaped 429/503 error when the call must not go ahead. A Promise only when
   * the store must ask its database first: callers await only a real Promise, so a synchronous store costs no turn.
   */
  admit(call: CallInfo): Admission | Promise<Admission>;
  /** Accounting state for /health (audit log writable, records dropped). */
  health?(): Record<string, unknown>;
  /** Every budget's state now. */
  budgets?(): BudgetStatus[];
  /** Overrides one budget's limit (`usd` undefined clears it), recorded in the audit log as done by `by`; false when no such budget exists. */
  overrideBudget?(scope: string, period: Period, usd: number | undefined, by?: string): boolean | Promise<boolean>;
  /** Prometheus text for /metrics. */
  metrics?(): Promise<string>;
  /** GET /usage without reading the whole log (accountants without it: the files, read in bounded chunks). */
  usage?(q: UsageQuery): Promise<UsageReport>;
  /** Writes the audit records still queued (call records are written once per event-loop turn), before the log is read. */
  flush?(): void;
  /** Records the stop event and closes the audit log. */
  dispose?(): void;
  /** As dispose, and resolves once the store has written what is queued (a database store needs the wait). */
  close?(): Promise<void>;
  /** Settled calls, for accountants that fire their own (the runtime re-exposes them as onDidSettleCall). */
  readonly onDidSettleCall?: Event<SettledCall>;
  /** Budget states after a change, likewise re-exposed by the runtime. */
  readonly onDidChangeBudgets?: Event<BudgetStatus[]>;
  /** Records a refusal by authentication (401/403) or path confinement in the audit log, rate-limited, without secrets. */
  recordSecurity?(refusal: SecurityRefusal): void;
}
