import type { Profile } from '../config/validate';
import { Errors } from '../errors';
import { upstreamModelId } from './model-catalog';

/** Providers whose upstream URL carries a model id. */
export type ModelIdProvider = 'bedrock' | 'vertex';

/** A model id that passed its provider's grammar, and the one path segment it is sent as. */
export interface ConfinedModelId {
  id: string;
  segment: string;
}

// One label of a Bedrock id: letters, digits, '-' and '_', never empty and never led by a dot (so never '.' or '..').
const LABEL = '[A-Za-z0-9][A-Za-z0-9_-]*';
// Base model ids and inference-profile ids: `anthropic.claude-sonnet-4-5-20250929-v1:0`, `us.anthropic.claude-…`,
// `meta.llama3-70b-instruct-v1:0`, provisioned-throughput variants `anthropic.claude-v2:0:18k`.
const BEDROCK_ID_SOURCE = `${LABEL}(?:\\.${LABEL}){0,4}(?::[A-Za-z0-9][A-Za-z0-9-]*){0,2}`;
const BEDROCK_ID = new RegExp(`^${BEDROCK_ID_SOURCE}$`);
// ARNs of anything InvokeModel takes: `arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123`,
// `…::foundation-model/anthropic.claude-v2`, `…:custom-model/<base id>/<id>`, SageMaker endpoints (`arn:aws:sagemaker:…:endpoint/x`).
const BEDROCK_ARN = new RegExp(
  `^arn:aws(?:-[a-z]+){0,3}:(?:bedrock|sagemaker):[a-z0-9-]{0,32}:(?:[0-9]{12})?:[a-z][a-z-]{0,63}/${BEDROCK_ID_SOURCE}(?:/${BEDROCK_ID_SOURCE})?$`,
);
/** AWS's own limit for a modelId (InvokeModel). */
const BEDROCK_MAX = 2048;
// Vertex publisher model ids: `claude-sonnet-4-5@20250929`, `claude-sonnet-4-6`, `claude-3-5-sonnet-v2@20241022`. No ':'
// (it starts the method), no '/', never led by a dot.
const VERTEX_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*(?:@[A-Za-z0-9][A-Za-z0-9._-]*)?$/;
const VERTEX_MAX = 256;
// A path segment spelled with RFC 3986 pchars only (unreserved, ':', '@' and percent-escapes): no sub-delimiters.
const PLAIN_SEGMENT = /^(?:[A-Za-z0-9._~:@-]|%[0-9A-Fa-f]{2})+$/;

const NAMES: Record<ModelIdProvider, string> = { bedrock: 'Bedrock model id, inference-profile id or ARN', vertex: 'Vertex AI model id (name or name@version)' };

/** Whether `id` is in the provider's model id grammar. */
export function isModelId(provider: ModelIdProvider, id: string): boolean {
  if (provider === 'bedrock') return id.length <= BEDROCK_MAX && (BEDROCK_ID.test(id) || BEDROCK_ARN.test(id));
  return id.length <= VERTEX_MAX && VERTEX_ID.test(id);
}

/** A short, printable rendering of a client value for an error message (never the whole of a huge one). */
function shown(value: string): string {
  const s = JSON.stringify(value.length > 120 ? `${value.slice(0, 120)}…` : value);
  return s.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Where a model id came from, for the refusal's message: the client, or a profile's model map (`mappedFrom`). */
export interface ModelIdOrigin {
  profile: string;
  mappedFrom: string;
}

/**
 * The one confinement of a model id that goes into an upstream URL, whoever chose it (the request body, a path segment,
 * a profile's model map): it must be in the provider's grammar, and it is sent as exactly one path segment. Anything else
 * is refused with Errors.UnsafePath (an Anthropic-shaped 400, recorded as a security event) before anything is sent.
 */
export function confineModelId(provider: ModelIdProvider, id: unknown, origin?: ModelIdOrigin): ConfinedModelId {
  if (typeof id !== 'string' || !isModelId(provider, id)) {
    const what = typeof id === 'string' ? shown(id) : `a ${typeof id}`;
    const message = origin
      ? `Profile "${origin.profile}" maps ${shown(origin.mappedFrom)} to ${what}, which is not a ${NAMES[provider]}; fix its models.map. Nothing was sent upstream.`
      : `The model id ${what} is not a ${NAMES[provider]}; nothing was sent upstream.`;
    throw new Errors.UnsafePath(message);
  }
  return { id, segment: encodeSegment(provider, id) };
}

/** One path segment, as each provider's own SDK spells it: the AWS SDK escapes ':' (`%3A`); Google's keeps '@'. */
function encodeSegment(provider: ModelIdProvider, id: string): string {
  const encoded = encodeURIComponent(id);
  return provider === 'vertex' ? encoded.replace(/%40/g, '@') : encoded;
}

/**
 * Confines a model id that arrives as a path segment (the native routes): the segment is decoded and the id confined as
 * above. The client's own spelling is kept when it is plain pchars (Claude Code sends `…-v1:0` raw and ARNs encoded, and
 * SigV4 signs the path as sent), else the id is re-encoded.
 */
export function confineModelSegment(provider: ModelIdProvider, segment: string): ConfinedModelId {
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch {
    throw new Errors.UnsafePath(`The model id ${shown(segment)} in the path is not valid percent-encoding; nothing was sent upstream.`);
  }
  const confined = confineModelId(provider, id);
  return PLAIN_SEGMENT.test(segment) ? { id, segment } : confined;
}

/** The profile's own mapping of a model id (`models.map`), own keys only: `constructor` is not a mapping. */
export function mappedModel(profile: Profile, id: string): string | undefined {
  const map = profile.models?.map;
  return map && Object.hasOwn(map, id) && typeof map[id] === 'string' && map[id] ? map[id] : undefined;
}

/**
 * The upstream model id for a requested one (the profile's map first, then the catalog), confined: a map entry that
 * points outside the model segment is refused naming the profile.
 */
export function confinedUpstreamModel(profile: Profile, provider: ModelIdProvider, requested: string): ConfinedModelId {
  const mapped = mappedModel(profile, requested);
  if (mapped !== undefined) return confineModelId(provider, mapped, { profile: profile.name, mappedFrom: requested });
  return confineModelId(provider, upstreamModelId(profile, requested));
}
