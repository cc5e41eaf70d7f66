import type { GatewayConfig } from '../config/validate';
import { ESTIMATE_BYTES_PER_TOKEN, type Usage } from '../streams/usage';
import table from './prices.json';

/** Prices of one model family in USD per million tokens. */
export interface FamilyPrice {
  input: number;
  output: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
}

/** The cost of one call and how it was priced. */
export interface Priced {
  usd: number;
  /** The family the model resolved to; the fallback family when the model is unknown. */
  family: string;
  /** False when the model is not in the table and was priced at the most expensive family. */
  priceKnown: boolean;
}

const BEDROCK_REGION = /^(us|eu|apac|global|jp|au|ca|us-gov)\./;

/** Every spelling a model id may take on some provider, reduced to candidate keys for the table, most specific first. */
export function modelCandidates(model: string): string[] {
  let id = model.trim().toLowerCase();
  // Bedrock ARNs (foundation models and system inference profiles) end in the model id.
  const arn = /^arn:aws[a-z-]*:bedrock:[^:]*:[^:]*:(?:foundation-model|inference-profile)\/(.+)$/.exec(id);
  if (arn) id = arn[1];
  // Vertex resource paths and actions: …/publishers/anthropic/models/<id>:streamRawPredict
  const vertex = /(?:^|\/)models\/([^/]+)$/.exec(id);
  if (vertex) id = vertex[1];
  id = id.replace(/:(streamrawpredict|rawpredict|counttokens)$/, '');
  // Claude Code's context-window suffix ("claude-opus-4-6[1m]") does not change the list price.
  id = id.replace(/\[[^\]]*\]$/, '');
  const out: string[] = [];
  const add = (s: string) => {
    if (s && !out.includes(s)) out.push(s);
  };
  add(id);
  const noRegion = id.replace(BEDROCK_REGION, '');
  add(noRegion);
  const noVendor = noRegion.replace(/^anthropic\./, '');
  add(noVendor);
  const noVersion = noVendor.replace(/-v\d+(:\d+)?$/, '');
  add(noVersion);
  const atToDash = noVersion.replace('@', '-');
  add(atToDash);
  add(atToDash.replace(/-\d{8}$/, ''));
  add(atToDash.replace(/-latest$/, ''));
  return out;
}

/**
 * The price table: the bundled list prices, then `prices` from config (override a family by its name,
 * add one with `models`, or price one model id directly).
 */
export class PriceTable {
  private readonly families = new Map<string, FamilyPrice>();
  private readonly models = new Map<string, string>();
  private readonly patterns: Array<[RegExp, string]>;
  private readonly cache = new Map<string, { family: string; known: boolean }>();
  /** The family unknown models are priced at: the most expensive one. */
  readonly fallbackFamily: string;

  constructor(overrides: GatewayConfig['prices'] = {}) {
    for (const [name, p] of Object.entries(table.families)) this.families.set(name, p);
    for (const [id, family] of Object.entries(table.models as Record<string, string>)) this.models.set(id, family);
    this.patterns = (table.patterns as Array<[string, string]>).map(([re, family]) => [new RegExp(re), family]);
    for (const [name, p] of Object.entries(overrides)) {
      const price: FamilyPrice = {
        input: p.input,
        output: p.output,
        cacheWrite5m: p.cacheWrite5m ?? p.input * 1.25,
        cacheWrite1h: p.cacheWrite1h ?? p.input * 2,
        cacheRead: p.cacheRead ?? p.input * 0.1,
      };
      this.families.set(name, price);
      // An entry named after no family and listing no models prices the model id it is named after.
      if (!p.models && !(name in table.families)) this.models.set(name.toLowerCase(), name);
      for (const id of p.models ?? []) this.models.set(id.toLowerCase(), name);
    }
    let max = '';
    let maxScore = -1;
    for (const [name, p] of this.families) {
      const score = p.input + p.output;
      if (score > maxScore) [max, maxScore] = [name, score];
    }
    this.fallbackFamily = max;
  }

  price(family: string): FamilyPrice {
    return this.families.get(family) ?? this.families.get(this.fallbackFamily)!;
  }

  /** The family a model id belongs to, or the fallback family with `known: false`. */
  familyOf(model: string | undefined): { family: string; known: boolean } {
    if (!model) return { family: this.fallbackFamily, known: false };
    const hit = this.cache.get(model);
    if (hit) return hit;
    let found: { family: string; known: boolean } | undefined;
    const candidates = modelCandidates(model);
    for (const c of candidates) {
      const family = this.models.get(c);
      if (family && this.families.has(family)) {
        found = { family, known: true };
        break;
      }
    }
    if (!found) {
      const last = candidates[candidates.length - 1];
      const match = this.patterns.find(([re]) => re.test(last) || candidates.some((c) => re.test(c)));
      found = match ? { family: match[1], known: true } : { family: this.fallbackFamily, known: false };
    }
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(model, found);
    return found;
  }

  /** Picks the first of the given ids (response model, upstream model, requested model) that the table knows. */
  resolve(...models: Array<string | undefined>): { family: string; known: boolean; model?: string } {
    let first: string | undefined;
    for (const m of models) {
      if (!m) continue;
      first ??= m;
      const f = this.familyOf(m);
      if (f.known) return { family: f.family, known: true, model: m };
    }
    return { family: this.fallbackFamily, known: false, model: first };
  }

  /** Cost in USD of the usage of one call. */
  cost(usage: Usage, ...models: Array<string | undefined>): Priced {
    const { family, known } = this.resolve(...models);
    return { usd: costOf(this.price(family), usage), family, priceKnown: known };
  }
}

/** Tokens × price per million, summed over the five kinds. */
export function costOf(p: FamilyPrice, u: Usage): number {
  return (u.input * p.input + u.output * p.output + u.cacheWrite5m * p.cacheWrite5m + u.cacheWrite1h * p.cacheWrite1h + u.cacheRead * p.cacheRead) / 1e6;
}

/** Request-body bytes per input token in a reservation: the estimate's 3 (an upper bound for text and JSON; images count as their base64). */
export const RESERVE_BYTES_PER_TOKEN = ESTIMATE_BYTES_PER_TOKEN;
/**
 * The least input a reservation counts, 1,000 tokens (the floor of the gateway's earlier estimate): a body this
 * small is rare (Claude Code's system prompt alone is larger), and an upstream that reports more than the body holds
 * (a proxy that adds its own prompt) is still bounded.
 */
export const MIN_RESERVED_INPUT = 1000;
/** Output reserved for a request with a body but no `max_tokens` (an API other than Messages): 4,096 tokens. */
export const DEFAULT_RESERVED_OUTPUT = 4096;
/** The most output one call can produce (128k, with the output-128k beta): a larger `max_tokens` is reserved at this. */
export const MAX_RESERVED_OUTPUT = 128_000;

/**
 * The most a call can cost, for its budget reservation: `max_tokens` of output at the output price, and the request
 * body's size in input tokens (at least MIN_RESERVED_INPUT) at the input price (cache writes cost more and cache reads
 * less; both are left out).
 */
export function reservationUsd(p: FamilyPrice, maxTokens: number | undefined, requestBytes: number | undefined): number {
  const bytes = requestBytes ?? 0;
  const input = Math.max(MIN_RESERVED_INPUT, bytes / RESERVE_BYTES_PER_TOKEN);
  const output = maxTokens !== undefined && Number.isFinite(maxTokens) && maxTokens > 0 ? Math.min(maxTokens, MAX_RESERVED_OUTPUT) : bytes > 0 ? DEFAULT_RESERVED_OUTPUT : 0;
  return (input * p.input + output * p.output) / 1e6;
}
