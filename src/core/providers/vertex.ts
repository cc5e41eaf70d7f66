import type { Profile } from '../config/validate';
import { googleTokensFor } from '../credentials/google';
import { CLIENT_CREDENTIAL_HEADERS, forwardableHeaders, type UpstreamRequest } from '../gateway/forward';
import type { KeyHeader } from '../gateway/keys';
import type { GatewayRuntime } from '../runtime';
import { upstreamTarget } from './upstream-url';

/** `anthropic_version` Vertex AI expects in an Anthropic Messages body. */
export const VERTEX_ANTHROPIC_VERSION = 'vertex-2023-10-16';

/** A Vertex region as it may appear in a path and a host name. */
export const VERTEX_REGION = /^[a-z][a-z0-9-]{0,40}$/;

/** The Vertex AI base URL for a region: `global` and the `us`/`eu` multi-regions have their own hosts. */
export function vertexBaseUrl(profile: Profile, region: string): string {
  if (profile.endpoint) return profile.endpoint;
  if (region === 'global') return 'https://aiplatform.googleapis.com';
  if (region === 'us' || region === 'eu') return `https://aiplatform.${region}.rep.googleapis.com`;
  return `https://${region}-aiplatform.googleapis.com`;
}

/** The model path of a Vertex call: `/v1/projects/{p}/locations/{r}/publishers/anthropic/models/{model}:{method}`. */
export function vertexModelPath(projectId: string, region: string, model: string, method: 'rawPredict' | 'streamRawPredict'): string {
  return `/v1/projects/${encodeURIComponent(projectId)}/locations/${region}/publishers/anthropic/models/${model}:${method}`;
}

/**
 * Builds a Vertex request. With `credentials: "gateway"` the client's credentials are dropped and the
 * gateway's Google token goes in `Authorization`; with `"client"` the client's own `Authorization` passes
 * through untouched (its gateway key came in another header and is dropped).
 */
export async function buildVertexRequest(
  runtime: GatewayRuntime,
  profile: Profile,
  call: { method: string; path: string; region: string; headers: Record<string, string | string[] | undefined>; body?: Buffer; keyHeader: KeyHeader },
): Promise<UpstreamRequest> {
  const { origin, path } = upstreamTarget(vertexBaseUrl(profile, call.region), call.path);
  let headers: Record<string, string>;
  if (profile.credentials === 'client') {
    headers = forwardableHeaders(call.headers, runtime.keys, new Set(CLIENT_CREDENTIAL_HEADERS.filter((h) => h === 'authorization' && h !== call.keyHeader)));
  } else {
    headers = forwardableHeaders(call.headers, runtime.keys);
    headers.authorization = `Bearer ${await googleTokensFor(runtime).get(profile)}`;
  }
  return { origin, path, method: call.method, headers, body: call.body };
}
