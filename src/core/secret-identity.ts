import type { Profile } from './config/validate';
import { ANTHROPIC_DEFAULT_BASE_URL } from './providers/anthropic';
import { bedrockBaseUrl } from './providers/bedrock';
import { vertexBaseUrl } from './providers/vertex';

/**
 * Where a profile's stored secret goes: the provider and the upstream it is sent to (URL, region,
 * project). A secret is bound to this, not to the profile's name, so a profile redefined under the same
 * name (another base URL, another endpoint) does not inherit the key.
 */
export interface SecretIdentity {
  provider: Profile['provider'];
  url: string;
  region?: string;
  projectId?: string;
}

/** `https://host:port/path` without a trailing slash; the text as written when it is not a URL. */
function normalUrl(u: string): string {
  try {
    const url = new URL(u);
    return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
  } catch {
    return u;
  }
}

export function secretIdentity(p: Profile): SecretIdentity {
  switch (p.provider) {
    case 'bedrock':
      return { provider: p.provider, url: normalUrl(bedrockBaseUrl(p, 'runtime')), region: p.region ?? 'us-east-1' };
    case 'vertex':
      return { provider: p.provider, url: normalUrl(vertexBaseUrl(p, p.region ?? '')), region: p.region, projectId: p.projectId };
    default:
      return { provider: p.provider, url: normalUrl(p.baseUrl ?? ANTHROPIC_DEFAULT_BASE_URL) };
  }
}

/** True when both name the same upstream. */
export function sameIdentity(a: SecretIdentity, b: SecretIdentity): boolean {
  return a.provider === b.provider && a.url === b.url && a.region === b.region && a.projectId === b.projectId;
}

/** `anthropic https://api.anthropic.com`, `vertex https://us-east5-aiplatform.googleapis.com (project p)`: for prompts and errors. */
export function describeIdentity(i: SecretIdentity): string {
  return `${i.provider} ${i.url}${i.projectId ? ` (project ${i.projectId})` : ''}`;
}

/** Reads an identity back from storage; undefined when it is not one. */
export function parseIdentity(value: unknown): SecretIdentity | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.provider !== 'string' || typeof v.url !== 'string') return undefined;
  const out: SecretIdentity = { provider: v.provider as SecretIdentity['provider'], url: v.url };
  if (typeof v.region === 'string') out.region = v.region;
  if (typeof v.projectId === 'string') out.projectId = v.projectId;
  return out;
}
