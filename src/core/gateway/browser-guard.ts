import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { anthropicErrorBody, type AnthropicErrorType } from '../errors';

const LOOPBACK_NAMES = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function hostname(hostHeader: string): string {
  if (hostHeader.startsWith('[')) return hostHeader.slice(0, hostHeader.indexOf(']') + 1);
  const colon = hostHeader.lastIndexOf(':');
  return colon === -1 ? hostHeader : hostHeader.slice(0, colon);
}

function refuse(reply: FastifyReply, status: number, type: AnthropicErrorType, message: string): void {
  reply.code(status).type('application/json').send(anthropicErrorBody(type, message));
}

/** How many Host header lines a request carried (Node keeps only the first). */
function hostLines(rawHeaders: string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].length === 4 && rawHeaders[i].toLowerCase() === 'host') n++;
  return n;
}

/**
 * A gateway on loopback must not be reachable from web pages: a request with an `Origin` (browsers send one), or a
 * `Host` other than a loopback name (DNS rebinding), is refused before anything else happens.
 */
export function browserGuard(listenHost: string, onForbidden?: (request: FastifyRequest) => void): onRequestHookHandler {
  const loopbackOnly = isLoopbackHost(listenHost);
  return (request, reply, done) => {
    const forbid = (message: string) => {
      onForbidden?.(request);
      refuse(reply, 403, 'permission_error', message);
    };
    // The gateway is not a forward proxy: an absolute-form target (`POST http://evil/...`) names a host the gateway would
    // ignore, and the router would still match its path. Only origin-form targets are served.
    if (!request.raw.url?.startsWith('/')) {
      refuse(reply, 400, 'invalid_request_error', 'The gateway only accepts origin-form request targets ("/path"); it is not a forward proxy.');
      return;
    }
    // RFC 9112 §3.2: more than one Host line is a 400 (Node would silently use the first).
    if (hostLines(request.raw.rawHeaders) > 1) {
      refuse(reply, 400, 'invalid_request_error', 'The request has more than one Host header.');
      return;
    }
    // Claude Code, the SDKs and the CLI never send Origin; browsers always do on cross-origin requests.
    const origin = request.headers.origin;
    if (origin !== undefined) {
      forbid(`Requests from web pages (Origin ${origin}) are not accepted by the gateway.`);
      return;
    }
    // A web page's no-cors requests (<img>, <script>) carry no Origin, but browsers mark them as cross-site.
    const site = request.headers['sec-fetch-site'];
    if (site === 'cross-site' || site === 'same-site') {
      forbid('Requests from web pages are not accepted by the gateway.');
      return;
    }
    if (loopbackOnly) {
      const host = request.headers.host;
      if (!host || !isLoopbackHost(hostname(host).toLowerCase())) {
        forbid(`The gateway only answers to loopback host names (127.0.0.1, localhost), not "${host ?? ''}".`);
        return;
      }
    }
    done();
  };
}
