import type { onRequestHookHandler } from 'fastify';
import { anthropicErrorBody } from '../errors';

const LOOPBACK_NAMES = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function hostname(hostHeader: string): string {
  if (hostHeader.startsWith('[')) return hostHeader.slice(0, hostHeader.indexOf(']') + 1);
  const colon = hostHeader.lastIndexOf(':');
  return colon === -1 ? hostHeader : hostHeader.slice(0, colon);
}

/**
 * A gateway on loopback must not be reachable from web pages: a request with an `Origin` (browsers send one), or a
 * `Host` other than a loopback name (DNS rebinding), is refused before anything else happens.
 */
export function browserGuard(listenHost: string): onRequestHookHandler {
  const loopbackOnly = isLoopbackHost(listenHost);
  return (request, reply, done) => {
    // Claude Code, the SDKs and the CLI never send Origin; browsers always do on cross-origin requests.
    const origin = request.headers.origin;
    if (origin !== undefined) {
      reply
        .code(403)
        .type('application/json')
        .send(anthropicErrorBody('permission_error', `Requests from web pages (Origin ${origin}) are not accepted by the gateway.`));
      return;
    }
    if (loopbackOnly) {
      const host = request.headers.host;
      if (!host || !isLoopbackHost(hostname(host))) {
        reply
          .code(403)
          .type('application/json')
          .send(anthropicErrorBody('permission_error', `The gateway only answers to loopback host names (127.0.0.1, localhost), not "${host ?? ''}".`));
        return;
      }
    }
    done();
  };
}
