import { isUtf8 } from 'node:buffer';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Profile } from '../../config/validate';
import { Errors } from '../../errors';
import { buildAnthropicRequest, buildLiteLlmRequest, type IncomingCall } from '../../providers/anthropic';
import type { GatewayRuntime } from '../../runtime';
import type { RouteName } from '../call';
import { JsonScanError, scanJsonObject } from '../json-scan';
import type { Authenticated } from '../keys';
import { allowMatcher, classifyEndpoint, unmeteredRefusal } from '../passthrough-endpoints';
import { proxyCall } from '../proxy-call';
import { registerCloudRoutes, unifiedForProvider } from './unified-providers';

export interface ModelRouteOptions {
  /** Registered under /profiles/:profile: the path names the profile. */
  pinned?: boolean;
}

// Paths that could step outside the route's upstream prefix, or that the upstream could read differently from the gateway
// (which matches routes and accounts calls on the path as sent): dot segments, encoded slashes, backslashes, empty
// segments, fragments, and percent-escapes of unreserved or control characters (`/v1/%6dessages` is `/v1/messages` upstream).
const UNSAFE_PATH = /(^|\/)\.\.?(\/|$)|%2f|%5c|\\|\/\/|#|%(?:[01][0-9a-f]|7f|3[0-9]|[46][1-9a-f]|[57][0-9a]|2d|2e|5f|7e)/i;
const PROFILE_PIN = /^\/profiles\/[^/?#]*/;
/** The Anthropic-format calls the gateway can translate for Bedrock and Vertex profiles. */
const TRANSLATABLE = /^(POST \/v1\/messages(\/count_tokens)?|GET \/v1\/models(\/[^/]+)?)$/;

/**
 * The path after a route prefix (`marker`, e.g. "/anthropic", or "" for the unified routes), with its query, as the client
 * sent it (no decoding, no normalising). A `/profiles/<name>` pin in front is skipped by position, whatever its spelling.
 */
export function restOfPath(request: FastifyRequest, marker: string): string {
  const url = request.url;
  const pin = pathProfile(request) === undefined ? '' : (PROFILE_PIN.exec(url)?.[0] ?? '');
  const route = marker.replace(PROFILE_PIN, '');
  const afterPin = url.slice(pin.length);
  // The router decodes before matching; a prefix it matched in another spelling (/%61nthropic/) is refused.
  if (!afterPin.startsWith(route)) throw new Errors.UnsafePath(`The request path "${url.split('?')[0]}" is not allowed: spell the route prefix ${route} literally.`);
  const rest = afterPin.slice(route.length) || '/';
  const path = rest.split('?')[0];
  if (UNSAFE_PATH.test(path) || rest.includes('#')) {
    throw new Errors.UnsafePath(`The request path "${path}" is not allowed: dot segments, encoded slashes and dots, backslashes and fragments are refused.`);
  }
  return rest.startsWith('/') || rest.startsWith('?') ? rest : `/${rest}`;
}

export function authenticate(runtime: GatewayRuntime, request: FastifyRequest): Authenticated {
  const auth = runtime.keys.authenticate(request.headers);
  request.gatewayAuth = auth;
  return auth;
}

export function pathProfile(request: FastifyRequest): string | undefined {
  return (request.params as { profile?: string } | undefined)?.profile;
}

/** The base URL Claude Code should use for a profile, for error messages. */
export function suggestedBaseUrl(profile: Profile): string {
  if (profile.mode === 'unified') return 'ANTHROPIC_BASE_URL=<gateway>';
  switch (profile.provider) {
    case 'bedrock':
      return 'CLAUDE_CODE_USE_BEDROCK=1 with ANTHROPIC_BEDROCK_BASE_URL=<gateway>/bedrock';
    case 'vertex':
      return 'CLAUDE_CODE_USE_VERTEX=1 with ANTHROPIC_VERTEX_BASE_URL=<gateway>/vertex_ai/v1';
    default:
      return 'ANTHROPIC_BASE_URL=<gateway>/anthropic';
  }
}

export function wrongRoute(profile: Profile, route: string): Error {
  return new Errors.WrongRoute(
    `Profile "${profile.name}" (${profile.provider}) is active for this key and does not serve ${route}. Point Claude Code at ${suggestedBaseUrl(profile)}, or at the unified endpoint ANTHROPIC_BASE_URL=<gateway> which serves every profile (\`claude-code-gateway env\` prints the variables).`,
  );
}

/** Model routes: the Anthropic passthrough and the unified Anthropic-format endpoint (Bedrock and Vertex routes register beside them). */
export function registerModelRoutes(app: FastifyInstance, runtime: GatewayRuntime, _opts: ModelRouteOptions): void {
  app.all('/anthropic/*', async (request, reply) => {
    const auth = authenticate(runtime, request);
    const profile = runtime.resolveProfile(pathProfile(request), auth.key);
    const rest = restOfPath(request, '/anthropic');
    if (profile.provider !== 'anthropic' && profile.provider !== 'litellm') {
      // A session started on an Anthropic profile keeps working after Switch Provider moves its key to Bedrock or
      // Vertex: the Messages API calls are translated exactly as on the unified endpoint.
      if (TRANSLATABLE.test(`${request.method} ${rest.split('?')[0]}`)) return unifiedForProvider(runtime, request, reply, auth, profile, rest);
      throw wrongRoute(profile, '/anthropic');
    }
    // LiteLLM serves Anthropic's API under its own /anthropic prefix.
    await forwardAnthropicFormat(runtime, request, reply, auth, profile, 'anthropic', profile.provider === 'litellm' ? `/anthropic${rest}` : rest);
  });

  const unified = async (request: FastifyRequest, reply: FastifyReply) => {
    const auth = authenticate(runtime, request);
    const profile = runtime.resolveProfile(pathProfile(request), auth.key);
    const rest = restOfPath(request, '');
    if (profile.provider === 'anthropic' || profile.provider === 'litellm') {
      await forwardAnthropicFormat(runtime, request, reply, auth, profile, 'unified', rest);
      return;
    }
    await unifiedForProvider(runtime, request, reply, auth, profile, rest);
  };
  app.post('/v1/messages', unified);
  app.post('/v1/messages/count_tokens', unified);
  app.get('/v1/models', unified);
  app.get('/v1/models/:model', unified);
  registerCloudRoutes(app, runtime, _opts);
}

/** Checks a unified-endpoint body: it must be a JSON object; returns it parsed. */
export function parseJsonObject(body: unknown): Record<string, unknown> {
  if (!Buffer.isBuffer(body) || body.length === 0) throw new Errors.InvalidRequest('The request body is empty; send a JSON object (the Messages API request).');
  // JSON is UTF-8; decoding would silently replace bad bytes, and a re-serialised body would no longer be what was sent.
  if (!isUtf8(body)) throw new Errors.InvalidRequest('The request body is not valid UTF-8.');
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new Errors.InvalidJson((err as Error).message);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Errors.InvalidRequest('The request body must be a JSON object.');
  return parsed as Record<string, unknown>;
}

/** Validates a unified-endpoint body as one JSON object and reads its top-level model and stream flag. */
function scanBody(body: Buffer | undefined): Record<string, unknown> {
  if (!body || body.length === 0) throw new Errors.InvalidRequest('The request body is empty; send a JSON object (the Messages API request).');
  try {
    return scanJsonObject(body, ['model', 'stream', 'max_tokens']);
  } catch (err) {
    if (err instanceof JsonScanError) throw new Errors.InvalidJson(err.message);
    throw err;
  }
}

/** Serialises a parsed body again; JSON.parse accepts nesting deeper than JSON.stringify can recurse. */
export function serialise(parsed: Record<string, unknown>): Buffer {
  try {
    return Buffer.from(JSON.stringify(parsed));
  } catch (err) {
    if (err instanceof RangeError) throw new Errors.InvalidRequest('The request body is nested too deeply.');
    throw err;
  }
}

/** The passthrough's reading of a Messages body: the one scan whose answer equals JSON.parse's. */
function readMessagesBody(body: Buffer | undefined): { model?: string; stream: boolean; maxTokens?: number } {
  const top = scanBody(body);
  return {
    model: typeof top.model === 'string' ? top.model : undefined,
    stream: top.stream === true,
    maxTokens: typeof top.max_tokens === 'number' && top.max_tokens >= 0 ? top.max_tokens : undefined,
  };
}

/** Forwards an Anthropic-format request to an Anthropic or LiteLLM profile, applying the profile's model map. */
async function forwardAnthropicFormat(
  runtime: GatewayRuntime,
  request: FastifyRequest,
  reply: FastifyReply,
  auth: Authenticated,
  profile: Profile,
  route: RouteName,
  pathAndQuery: string,
): Promise<void> {
  let body = Buffer.isBuffer(request.body) ? request.body : undefined;
  const path = pathAndQuery.split('?')[0];
  // Which endpoint this is decides whether it is metered, free, or refused (it could cost money the gateway cannot see).
  const verdict = classifyEndpoint(request.method, profile.provider === 'litellm' ? path.replace(/^\/anthropic(?=\/)/, '') : path, allowedUnmetered(profile));
  if (verdict.kind === 'refused') throw unmeteredRefusal(verdict, profile.name);
  let requestedModel: string | undefined;
  let upstreamModel: string | undefined;
  let streaming = false;
  let maxTokens: number | undefined;
  if (verdict.kind === 'metered') {
    // Validated without building the document (a 100 KB Claude Code request would cost 0.6 ms in JSON.parse), by the
    // same scanner on every route: what it reads is what the upstream's JSON parser reads (last duplicate wins, escapes).
    const top = readMessagesBody(body);
    requestedModel = top.model;
    streaming = top.stream && !verdict.countTokens;
    maxTokens = top.maxTokens;
    const map = profile.models?.map;
    // Own keys only: a model named "constructor" must not map to Object's constructor.
    const mapped = route === 'unified' && requestedModel && map && Object.hasOwn(map, requestedModel) ? map[requestedModel] : undefined;
    if (mapped) {
      const parsed = parseJsonObject(body);
      parsed.model = mapped;
      body = serialise(parsed);
    }
    upstreamModel = mapped ?? requestedModel;
  }
  const call: IncomingCall = { method: request.method, pathAndQuery, headers: request.headers, body, keyHeader: auth.header };
  const build = profile.provider === 'litellm' ? () => buildLiteLlmRequest(runtime, profile, call) : () => buildAnthropicRequest(runtime, profile, call);
  await proxyCall({
    runtime,
    request,
    reply,
    profile,
    route,
    auth,
    requestedModel,
    upstreamModel,
    streaming,
    countTokens: verdict.countTokens === true,
    maxTokens,
    unmetered: verdict.unmetered,
    build,
    canRefresh: () => profile.credentials === 'gateway' && runtime.apiKeys.canRefresh(profile),
    refresh: () => runtime.apiKeys.invalidate(profile),
  });
}

const allowCache = new WeakMap<Profile, (endpoint: string) => boolean>();
/** The profile's `allowUnmetered` matcher, compiled once per profile object (a config reload makes new ones). */
function allowedUnmetered(profile: Profile): (endpoint: string) => boolean {
  let m = allowCache.get(profile);
  if (!m) allowCache.set(profile, (m = allowMatcher(profile.allowUnmetered)));
  return m;
}
