import type { Profile } from '../config/validate';
import type { GatewayRuntime } from '../runtime';
import { CLIENT_CREDENTIAL_HEADERS, forwardableHeaders, type UpstreamRequest } from '../gateway/forward';
import type { KeyHeader } from '../gateway/keys';
import { upstreamTarget } from './upstream-url';

export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';

/** A request as it arrived, reduced to what a provider needs to rebuild it upstream. */
export interface IncomingCall {
  method: string;
  /** Path and query relative to the provider's API root, e.g. `/v1/messages?beta=true`. */
  pathAndQuery: string;
  headers: Record<string, string | string[] | undefined>;
  body?: Buffer;
  /** The header that carried the gateway key: never forwarded. */
  keyHeader: KeyHeader;
}

/**
 * Anthropic upstream: the profile's base URL with the profile's key as `x-api-key`; with
 * `credentials: "client"`, the client's own Authorization / x-api-key pass through untouched.
 */
export async function buildAnthropicRequest(runtime: GatewayRuntime, profile: Profile, call: IncomingCall): Promise<UpstreamRequest> {
  const { origin, path } = upstreamTarget(profile.baseUrl ?? ANTHROPIC_DEFAULT_BASE_URL, call.pathAndQuery);
  let headers: Record<string, string>;
  if (profile.credentials === 'client') {
    const keep = new Set<string>(CLIENT_CREDENTIAL_HEADERS.filter((h) => h !== call.keyHeader && h !== 'proxy-authorization'));
    headers = forwardableHeaders(call.headers, runtime.keys, keep);
  } else {
    headers = forwardableHeaders(call.headers, runtime.keys);
    headers['x-api-key'] = await runtime.apiKeys.get(profile);
  }
  return { origin, path, method: call.method, headers, body: call.body };
}

/** LiteLLM upstream: its proxy URL, with the profile's key in `keyHeader` (Authorization: Bearer by default). */
export async function buildLiteLlmRequest(runtime: GatewayRuntime, profile: Profile, call: IncomingCall): Promise<UpstreamRequest> {
  const { origin, path } = upstreamTarget(profile.baseUrl!, call.pathAndQuery);
  const headers = forwardableHeaders(call.headers, runtime.keys);
  const key = await runtime.apiKeys.get(profile);
  const header = (profile.keyHeader ?? 'Authorization').toLowerCase();
  headers[header] = header === 'authorization' ? `Bearer ${key}` : key;
  return { origin, path, method: call.method, headers, body: call.body };
}
