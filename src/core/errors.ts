import createError, { type FastifyErrorConstructor } from '@fastify/error';

/** Anthropic's error `type` values, which Claude Code and the SDKs understand. */
export type AnthropicErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'billing_error'
  | 'api_error'
  | 'overloaded_error';

const TYPE_BY_CODE = new Map<string, AnthropicErrorType>();
/** Codes whose retry cannot help (configuration problems): answered with `x-should-retry: false`. */
const NO_RETRY = new Set<string>();

function define(code: string, type: AnthropicErrorType, status: number, message: string, opts: { retry?: boolean } = {}): FastifyErrorConstructor {
  TYPE_BY_CODE.set(code, type);
  if (opts.retry === false) NO_RETRY.add(code);
  return createError(code, message, status);
}

/** Every error the gateway itself produces: a stable code, an HTTP status and an Anthropic-shaped body. */
export const Errors = {
  NoCredential: define(
    'CCGW_NO_CREDENTIAL',
    'authentication_error',
    401,
    'No gateway key in the request. Send it as "Authorization: Bearer <key>", "x-api-key: <key>" or "Proxy-Authorization: Bearer <key>" (for Claude Code: ANTHROPIC_AUTH_TOKEN; run `claude-code-gateway env`).',
  ),
  ExpiredToken: define('CCGW_EXPIRED_TOKEN', 'authentication_error', 401, 'The gateway token expired at %s; get a new one with `claude-code-gateway token`.'),
  UnknownKey: define(
    'CCGW_UNKNOWN_KEY',
    'permission_error',
    403,
    'The gateway key is not recognised by this gateway. Use the key the gateway printed (`claude-code-gateway env`) or one from its config.',
    { retry: false },
  ),
  RevokedKey: define('CCGW_REVOKED_KEY', 'permission_error', 403, 'The gateway key "%s" has been revoked.', { retry: false }),
  Forbidden: define('CCGW_FORBIDDEN', 'permission_error', 403, '%s', { retry: false }),
  ForbiddenOrigin: define('CCGW_FORBIDDEN_ORIGIN', 'permission_error', 403, '%s', { retry: false }),
  UnknownProfile: define('CCGW_UNKNOWN_PROFILE', 'not_found_error', 404, 'No profile named "%s" (profiles: %s).', { retry: false }),
  WrongRoute: define('CCGW_WRONG_ROUTE', 'invalid_request_error', 400, '%s', { retry: false }),
  InvalidJson: define('CCGW_INVALID_JSON', 'invalid_request_error', 400, 'The request body is not valid JSON: %s.'),
  InvalidRequest: define('CCGW_INVALID_REQUEST', 'invalid_request_error', 400, '%s'),
  /** A path or model id from the client that could step outside the profile's upstream (a security event). */
  UnsafePath: define('CCGW_UNSAFE_PATH', 'invalid_request_error', 400, '%s', { retry: false }),
  /** A passthrough endpoint the gateway cannot meter and the profile does not allow. */
  UnmeteredEndpoint: define('CCGW_UNMETERED_ENDPOINT', 'permission_error', 403, '%s', { retry: false }),
  BodyTooLarge: define('CCGW_BODY_TOO_LARGE', 'request_too_large', 413, 'The request body is larger than the gateway accepts (%s bytes).'),
  KeyConflict: define('CCGW_KEY_CONFLICT', 'invalid_request_error', 409, '%s', { retry: false }),
  NotFound: define('CCGW_NOT_FOUND', 'not_found_error', 404, '%s'),
  ProfileConfig: define('CCGW_PROFILE_CONFIG', 'api_error', 500, 'Gateway configuration problem: %s', { retry: false }),
  HelperFailed: define('CCGW_HELPER_FAILED', 'api_error', 502, 'The apiKeyHelper of profile "%s" failed: %s', { retry: false }),
  CredentialsFailed: define('CCGW_CREDENTIALS_FAILED', 'api_error', 502, '%s'),
  UpstreamUnreachable: define('CCGW_UPSTREAM_UNREACHABLE', 'api_error', 502, 'Could not reach the upstream of profile "%s" (%s): %s.'),
  /** The upstream's answer ended before the gateway could read what it needed (an error body, a count). */
  UpstreamCut: define('CCGW_UPSTREAM_CUT', 'api_error', 502, 'The upstream of profile "%s" (%s) cut its answer short: %s.'),
  /** The upstream answered with something the gateway cannot translate for the client. */
  UpstreamBadAnswer: define('CCGW_UPSTREAM_BAD_ANSWER', 'api_error', 502, 'The upstream of profile "%s" (%s) sent an answer the gateway cannot read: %s.'),
  UpstreamTimeout: define('CCGW_UPSTREAM_TIMEOUT', 'api_error', 504, 'The upstream of profile "%s" (%s) did not answer in time: %s.'),
  Unavailable: define('CCGW_UNAVAILABLE', 'api_error', 503, '%s', { retry: false }),
  UnknownBudget: define('CCGW_UNKNOWN_BUDGET', 'not_found_error', 404, '%s', { retry: false }),
  BudgetExceeded: define('CCGW_BUDGET_EXCEEDED', 'billing_error', 429, '%s', { retry: false }),
  RateLimited: define('CCGW_RATE_LIMITED', 'rate_limit_error', 429, '%s'),
  AuditUnavailable: define('CCGW_AUDIT_UNAVAILABLE', 'api_error', 503, '%s'),
  StoreUnavailable: define('CCGW_STORE_UNAVAILABLE', 'api_error', 503, '%s'),
} as const;

/** The Anthropic error type for a code, falling back on the HTTP status. */
export function anthropicTypeFor(code: string | undefined, status: number): AnthropicErrorType {
  const byCode = code ? TYPE_BY_CODE.get(code) : undefined;
  if (byCode) return byCode;
  if (status === 400) return 'invalid_request_error';
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 413) return 'request_too_large';
  if (status === 429) return 'rate_limit_error';
  if (status === 529) return 'overloaded_error';
  return status < 500 ? 'invalid_request_error' : 'api_error';
}

export function shouldNotRetry(code: string | undefined): boolean {
  return code !== undefined && NO_RETRY.has(code);
}

/** The JSON body Anthropic's API uses for errors. */
export function anthropicErrorBody(type: AnthropicErrorType, message: string): string {
  return JSON.stringify({ type: 'error', error: { type, message } });
}

/**
 * The gateway's own errors on /bedrock, for AWS SDK clients as well as Anthropic's Bedrock SDK: the Anthropic shape
 * with the message repeated at the top level, where the AWS SDKs read it (they name the error by `x-amzn-errortype`).
 */
export function bedrockErrorBody(type: AnthropicErrorType, message: string): string {
  return JSON.stringify({ type: 'error', error: { type, message }, message });
}

/** The AWS error name for a gateway error's HTTP status, for the `x-amzn-errortype` header on /bedrock. */
export function awsErrorType(status: number): string {
  if (status === 429) return 'ThrottlingException';
  if (status === 401 || status === 403) return 'AccessDeniedException';
  if (status === 404) return 'ResourceNotFoundException';
  if (status === 503) return 'ServiceUnavailableException';
  if (status === 504) return 'ModelTimeoutException';
  if (status >= 500) return 'InternalServerException';
  return 'ValidationException';
}
