import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Errors } from '../../errors';
import type { GatewayRuntime } from '../../runtime';
import { toCallView } from '../../usage-summary';

/** How often an idle event stream carries a comment line, so a dead peer is noticed. */
const HEARTBEAT_MS = 10_000;

/** A key registered by another editor window that attached to this gateway. */
interface KeyRegistration {
  key: string;
  project?: string;
  profile?: string;
}

/** Only admin keys (the serving window's control key) may read the stream or register keys; returns the caller's key id. */
function requireAdmin(runtime: GatewayRuntime, request: FastifyRequest): string {
  const auth = runtime.keys.authenticate(request.headers);
  if (!auth.key.admin) throw new Errors.UnknownKey();
  return auth.key.id;
}

/**
 * A key id the caller may (re)register or remove: a new one, or one it registered itself through `/control/keys`.
 * Configured keys, the serving window's own keys and the admin keys are never replaced this way (a replaced admin
 * key would silently lose its admin flag; a replaced configured key would change who a request is attributed to).
 */
function requireOwned(runtime: GatewayRuntime, id: string, caller: string): void {
  const existing = runtime.keys.get(id);
  if (existing && existing.registeredBy !== caller) {
    throw new Errors.KeyConflict(`The key id "${id}" is already in use by a key this caller did not register; pick another id.`);
  }
}

/** The request's JSON body (bodies arrive as bytes: see the content-type parser in build.ts). */
export function jsonBody<T>(request: FastifyRequest): T {
  const raw = request.body;
  try {
    return JSON.parse(Buffer.isBuffer(raw) ? raw.toString('utf8') : String(raw ?? '{}')) as T;
  } catch (err) {
    throw new Errors.InvalidJson((err as Error).message);
  }
}

/**
 * The routes that let other editor windows share this gateway: `GET /events` (server-sent events: every
 * call start and settlement and every profile change, as they happen), and `/control/keys/:id` to register
 * a window's key pinned to its profile. All need an admin key.
 */
export function registerEventRoutes(app: FastifyInstance, runtime: GatewayRuntime): void {
  const open = new Set<(closing?: boolean) => void>();
  // Closing the gateway ends open streams first (preClose: before the server waits for connections), so
  // its clients notice at once and one of them takes over.
  app.addHook('preClose', async () => {
    for (const end of [...open]) end(true);
  });

  app.get('/events', (request, reply) => {
    requireAdmin(runtime, request);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    send('hello', { instanceId: runtime.instanceId, version: runtime.version, callsInFlight: runtime.callsInFlight });
    const subs = [
      runtime.onDidStartCall((c) => send('start', { id: c.requestId, profile: c.profile, keyId: c.key.id })),
      runtime.onDidSettleCall((c) => send('settle', toCallView(c))),
      runtime.onDidChangeProfile((e) => send('profile', e)),
    ];
    const beat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
    const end = (closing = false) => {
      if (!open.delete(end)) return;
      clearInterval(beat);
      subs.forEach((s) => s.dispose());
      res.end();
      // An event stream's connection is never reused: when the gateway closes, drop it so close() need not wait for the peer.
      if (closing) res.socket?.destroySoon();
    };
    open.add(end);
    res.once('close', () => end());
  });

  app.put<{ Params: { id: string } }>('/control/keys/:id', async (request, reply) => {
    const caller = requireAdmin(runtime, request);
    const body = jsonBody<KeyRegistration>(request);
    if (typeof body.key !== 'string' || body.key.length < 16) throw new Errors.InvalidRequest('"key" must be the window key (16 characters or more)');
    requireOwned(runtime, request.params.id, caller);
    const profile = body.profile && runtime.profile(body.profile) ? body.profile : undefined;
    runtime.keys.add({ id: request.params.id, project: body.project, profile, registeredBy: caller }, body.key);
    reply.code(204).send();
  });

  app.put<{ Params: { id: string } }>('/control/keys/:id/profile', async (request, reply) => {
    requireAdmin(runtime, request);
    const { profile } = jsonBody<{ profile: string }>(request);
    runtime.pinKey(request.params.id, profile);
    reply.code(204).send();
  });

  app.delete<{ Params: { id: string } }>('/control/keys/:id', async (request, reply) => {
    const caller = requireAdmin(runtime, request);
    requireOwned(runtime, request.params.id, caller);
    runtime.keys.remove(request.params.id);
    reply.code(204).send();
  });

  app.post('/control/tokens', async (request) => {
    requireAdmin(runtime, request);
    const { keyId, ttlMs } = jsonBody<{ keyId: string; ttlMs?: number }>(request);
    if (!runtime.keys.get(keyId)) throw new Errors.InvalidRequest(`no key with id "${keyId}"`);
    const ttl = Math.min(Math.max(Number(ttlMs) || 3_600_000, 60_000), 24 * 3_600_000);
    try {
      return { token: runtime.keys.issueToken(keyId, ttl), expiresAt: new Date(Date.now() + ttl).toISOString() };
    } catch (err) {
      throw new Errors.InvalidRequest((err as Error).message);
    }
  });
}
