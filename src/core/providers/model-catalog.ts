import type { Profile } from '../config/validate';
import catalog from './models.json';

/** One Claude model and its id on each provider (models.json). */
export interface CatalogModel {
  /** Claude Code's catalog id, e.g. `claude-sonnet-4-5`. */
  id: string;
  family: string;
  displayName: string;
  /** Anthropic API id, e.g. `claude-sonnet-4-5-20250929`. */
  anthropic: string;
  /** Bedrock base model id without an inference-profile prefix, e.g. `anthropic.claude-sonnet-4-5-20250929-v1:0`. */
  bedrock: string | null;
  /** Vertex AI id, e.g. `claude-sonnet-4-5@20250929`. */
  vertex: string | null;
}

export const MODELS: readonly CatalogModel[] = catalog.models;
/** What the aliases `opus`, `sonnet`, `haiku` mean on each provider (Claude Code's own defaults). */
const DEFAULTS: Record<string, { anthropic: string; bedrock: string; vertex: string }> = catalog.defaults;

/** Bedrock cross-region inference-profile prefixes. */
const GEO_PREFIX = /^(us|eu|apac|global|us-gov|jp|au|ca)\./;

const byAnyId = new Map<string, CatalogModel>();
for (const m of MODELS) {
  for (const id of [m.id, m.anthropic, m.bedrock, m.vertex, m.vertex?.split('@')[0]]) if (id) byAnyId.set(id.toLowerCase(), m);
}

/** Finds a model by any of its ids (Anthropic, Bedrock with or without a geo prefix, Vertex, or an alias). */
export function findModel(id: string): CatalogModel | undefined {
  const clean = id.replace(/\[1m\]$/i, '').toLowerCase();
  const alias = DEFAULTS[clean];
  if (alias) return byAnyId.get(alias.anthropic);
  return byAnyId.get(clean) ?? byAnyId.get(clean.replace(GEO_PREFIX, ''));
}

/** The inference-profile prefix for a region: `us-east-1` → `us`, `eu-west-1` → `eu`, `ap-…` → `apac`. */
export function bedrockGeo(region: string): string {
  if (region.startsWith('us-gov-')) return 'us-gov';
  if (region.startsWith('us-')) return 'us';
  if (region.startsWith('eu-')) return 'eu';
  if (region.startsWith('ap-')) return 'apac';
  return 'global';
}

/** The id a Bedrock or Vertex profile sends upstream for a requested model: the profile's map first, then the catalog. */
export function upstreamModelId(profile: Profile, requested: string): string {
  const map = profile.models?.map;
  // Own keys only: a requested "constructor" is not a mapping.
  const mapped = map && Object.hasOwn(map, requested) ? map[requested] : undefined;
  if (mapped) return mapped;
  if (profile.provider === 'bedrock') {
    // Already a Bedrock id (base, inference profile or ARN): keep it.
    if (requested.startsWith('arn:') || /(^|\.)anthropic\./.test(requested)) return requested;
    const alias = DEFAULTS[requested.replace(/\[1m\]$/i, '').toLowerCase()];
    const m = findModel(alias?.bedrock ?? requested);
    return m?.bedrock ? `${bedrockGeo(profile.region ?? 'us-east-1')}.${m.bedrock}` : requested;
  }
  if (profile.provider === 'vertex') {
    if (requested.includes('@')) return requested;
    const alias = DEFAULTS[requested.replace(/\[1m\]$/i, '').toLowerCase()];
    return findModel(alias?.vertex ?? requested)?.vertex ?? requested;
  }
  return requested;
}

/** The Anthropic-style id to report back for an upstream id (so clients see familiar names). */
export function anthropicModelId(id: string): string {
  return findModel(id)?.anthropic ?? id;
}

/** Models a profile offers on `/v1/models`: its map's keys and pins first, then every catalog model the provider has. */
export function profileModels(profile: Profile): Array<{ id: string; displayName: string; upstream: string }> {
  const out = new Map<string, { id: string; displayName: string; upstream: string }>();
  const add = (id: string, displayName?: string) => {
    if (!out.has(id)) out.set(id, { id, displayName: displayName ?? findModel(id)?.displayName ?? id, upstream: upstreamModelId(profile, id) });
  };
  for (const id of Object.keys(profile.models?.map ?? {})) add(id);
  for (const m of MODELS) {
    if ((profile.provider === 'bedrock' && m.bedrock) || (profile.provider === 'vertex' && m.vertex)) add(m.anthropic, `Claude ${m.displayName}`);
  }
  return [...out.values()];
}
