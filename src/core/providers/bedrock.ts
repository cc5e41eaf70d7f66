import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity } from '@smithy/types';
import type { Profile } from '../config/validate';
import { expandEnv, MissingEnvError } from '../config/expand';
import { awsCredentialsFor } from '../credentials/aws';
import { Errors } from '../errors';
import { forwardableHeaders, type UpstreamRequest } from '../gateway/forward';
import type { GatewayRuntime } from '../runtime';
import { upstreamTarget } from './upstream-url';

/** `anthropic_version` Bedrock expects in an Anthropic Messages body. */
export const BEDROCK_ANTHROPIC_VERSION = 'bedrock-2023-05-31';

/** Runtime actions under /model/{id}/ (bedrock-runtime); everything else Bedrock serves is control plane. */
export const BEDROCK_RUNTIME_ACTIONS = new Set(['invoke', 'invoke-with-response-stream', 'count-tokens', 'converse', 'converse-stream']);

/** SHA-256 from node:crypto, as the AWS SDK uses in Node (the pure-JS one costs ~1.5 ms per 100 KB body). */
const NodeSha256 = Hash.bind(null, 'sha256');

/**
 * One signer per credentials object and region (a refresh brings a new credentials object, so a new signer):
 * building a SignatureV4 per call cost ~8 µs of the ~40 µs a 1 KB call's signature takes.
 */
const signers = new WeakMap<AwsCredentialIdentity, Map<string, SignatureV4>>();

function signerFor(credentials: AwsCredentialIdentity, region: string): SignatureV4 {
  let byRegion = signers.get(credentials);
  if (!byRegion) signers.set(credentials, (byRegion = new Map()));
  let signer = byRegion.get(region);
  if (!signer) byRegion.set(region, (signer = new SignatureV4({ service: 'bedrock', region, credentials, sha256: NodeSha256, uriEscapePath: true, applyChecksum: true })));
  return signer;
}

/** Headers a signing client may have sent; they are replaced by the gateway's own signature. */
const CLIENT_SIGNING_HEADERS = ['x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256', 'x-amz-user-agent', 'amz-sdk-invocation-id', 'amz-sdk-request'];

/** The upstream base URL of a Bedrock call: `endpoint` when set, else the regional runtime or control-plane host. */
export function bedrockBaseUrl(profile: Profile, plane: 'runtime' | 'control'): string {
  if (profile.endpoint) return profile.endpoint;
  const region = profile.region ?? 'us-east-1';
  return plane === 'runtime' ? `https://bedrock-runtime.${region}.amazonaws.com` : `https://bedrock.${region}.amazonaws.com`;
}

/**
 * Signs a request with SigV4 (service `bedrock`) using the AWS SDK's signer. The path is signed exactly as
 * it goes on the wire: the signer URI-encodes it once more, which is the double encoding AWS expects for
 * non-S3 services (a raw `:` in a model id is signed as `%3A`, an encoded ARN's `%3A` as `%253A`).
 */
export async function signBedrockRequest(req: UpstreamRequest, credentials: AwsCredentialIdentity, region: string): Promise<UpstreamRequest> {
  const url = new URL(req.origin);
  const q = req.path.indexOf('?');
  const path = q === -1 ? req.path : req.path.slice(0, q);
  const query: Record<string, string | string[]> = {};
  if (q !== -1) {
    for (const [k, v] of new URLSearchParams(req.path.slice(q + 1))) {
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
  }
  const signed = await signerFor(credentials, region).sign({
    method: req.method,
    protocol: url.protocol,
    hostname: url.hostname,
    port: url.port ? Number(url.port) : undefined,
    path,
    query,
    headers: { ...req.headers, host: url.host },
    body: req.body ?? '',
  });
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers)) if (k !== 'host') headers[k] = String(v);
  return { ...req, headers };
}

/**
 * The profile's Bedrock API key: the one stored in the editor's secret storage, else `bearerToken` (expanded at
 * use so it never sits expanded in the config); undefined means SigV4 with the AWS chain.
 */
function bearerToken(runtime: GatewayRuntime, profile: Profile): string | undefined {
  const stored = runtime.apiKeys.stored(profile);
  if (stored) return stored;
  if (profile.bearerToken === undefined) return undefined;
  try {
    return expandEnv(profile.bearerToken, `${profile.jsonPath}.bearerToken`, `profile "${profile.name}"`, runtime.env);
  } catch (err) {
    if (err instanceof MissingEnvError) throw new Errors.ProfileConfig(`${err.message}. Set it where the gateway runs.`);
    throw err;
  }
}

/**
 * Builds a signed Bedrock request: the client's credentials and signing headers removed, then either the
 * profile's Bedrock API key as a Bearer token or a fresh SigV4 signature over the final bytes.
 */
export async function buildBedrockRequest(
  runtime: GatewayRuntime,
  profile: Profile,
  call: { method: string; pathAndQuery: string; headers: Record<string, string | string[] | undefined>; body?: Buffer },
  plane: 'runtime' | 'control',
): Promise<UpstreamRequest> {
  const { origin, path } = upstreamTarget(bedrockBaseUrl(profile, plane), call.pathAndQuery);
  const headers = forwardableHeaders(call.headers, runtime.keys);
  for (const h of CLIENT_SIGNING_HEADERS) delete headers[h];
  const req: UpstreamRequest = { origin, path, method: call.method, headers, body: call.body };
  const token = bearerToken(runtime, profile);
  if (token) {
    headers.authorization = `Bearer ${token}`;
    return req;
  }
  const credentials = await awsCredentialsFor(runtime).get(profile);
  return signBedrockRequest(req, credentials, profile.region ?? 'us-east-1');
}
