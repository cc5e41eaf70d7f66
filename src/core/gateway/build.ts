import type { ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { isSecurityRefusal } from '../accounting/security-events';
import type { GatewayRuntime } from '../runtime';
import { anthropicErrorBody, anthropicTypeFor, awsErrorType, bedrockErrorBody, Errors, shouldNotRetry } from '../errors';
import type { Authenticated } from './keys';
import { browserGuard } from './browser-guard';
import { clientErrorHandler, frameworkErrors } from './client-errors';
import { newRequestId } from './proxy-call';
import { registerPublicRoutes } from './routes/public';
import { registerEventRoutes } from './routes/events';
import { registerModelRoutes } from './routes/model-routes';
import { registerAccountingRoutes } from './routes/accounting-routes';

/** Largest request body accepted (Claude Code sends long conversations and images). */
export const BODY_LIMIT = 32 * 1024 * 1024;

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth step of model routes. */
    gatewayAuth?: Authenticated;
  }
}

export interface BuildOptions {
  runtime: GatewayRuntime;
  logger?: FastifyServerOptions['logger'];
  /** The address the server will listen on, for the Host/Origin checks. */
  listenHost?: string;
  /** Slow-loris protection: the whole header block must arrive within this many milliseconds (default 30 s). */
  headersTimeoutMs?: number;
}

/** The Bedrock passthrough, pinned to a profile or not: its errors also speak to AWS SDK clients. */
const BEDROCK_ROUTE = /^(?:\/profiles\/[^/?#]*)?\/bedrock(?:[/?]|$)/;

/** Pino redaction: credentials never reach a log line. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers["proxy-authorization"]',
];

/** Builds the gateway's Fastify app without listening; the CLI and the extension call `listen`. */
export function buildGateway(opts: BuildOptions): FastifyInstance {
  const { runtime } = opts;
  const headersTimeout = opts.headersTimeoutMs ?? 30_000;
  const app = Fastify({
    logger: opts.logger ?? false,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    genReqId: newRequestId,
    // No child logger per request (pino's child() serialises its bindings, ~1 % of the CPU of a call); the
    // gateway's own log lines name the request id themselves.
    childLoggerFactory: (logger) => logger,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    keepAliveTimeout: 65_000,
    // Slow-loris protection: the whole header block must arrive in time; Node checks at connectionsCheckingInterval.
    http: { headersTimeout, connectionsCheckingInterval: Math.min(30_000, Math.max(50, Math.floor(headersTimeout / 4))) } as never,
    clientErrorHandler,
    frameworkErrors,
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 2048 },
  });

  // Bodies stay bytes: passthrough routes forward them unchanged; the unified route parses JSON itself.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_req, body, done) => done(null, body));

  // Node answers an Expect other than 100-continue itself, with an empty 417.
  app.server.on('checkExpectation', (_req, res: ServerResponse) => {
    res.writeHead(417, { 'content-type': 'application/json', connection: 'close' }).end(anthropicErrorBody('invalid_request_error', 'Only "Expect: 100-continue" is supported.'));
  });

  const securityRefusal = (request: FastifyRequest, status: number, code: string, keyId?: string) =>
    runtime.accountant.recordSecurity?.({
      code,
      status,
      method: request.method,
      url: request.url,
      remote: request.ip,
      key: request.gatewayAuth?.key.id ?? keyId,
      headers: request.headers,
    });
  app.addHook(
    'onRequest',
    browserGuard(opts.listenHost ?? runtime.config.listen.host, (request) => securityRefusal(request, 403, 'CCGW_FORBIDDEN_ORIGIN')),
  );

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string; headers?: Record<string, string>; keyId?: string }, request, reply) => {
    let status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
    let message = error.message;
    let code = error.code;
    if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const e = new Errors.BodyTooLarge(String(BODY_LIMIT));
      status = e.statusCode ?? 413;
      message = e.message;
      code = e.code;
    } else if (status >= 500 && !code?.startsWith('CCGW_')) {
      request.log.error({ err: error, reqId: request.id }, 'unexpected gateway error');
      message = `Internal gateway error (request id ${request.id}); the gateway log has the details.`;
    }
    // Refusals by authentication and confinement are security events (recorded rate-limited, without secrets).
    if (isSecurityRefusal(status, code)) securityRefusal(request, status, code ?? `HTTP_${status}`, error.keyId);
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    const type = anthropicTypeFor(code, status);
    if (shouldNotRetry(code)) reply.header('x-should-retry', 'false');
    if (error.headers) reply.headers(error.headers);
    if (BEDROCK_ROUTE.test(request.url)) {
      reply.code(status).type('application/json').header('x-gateway-error', code ?? 'error').header('x-amzn-errortype', awsErrorType(status)).send(bedrockErrorBody(type, message));
      return;
    }
    reply.code(status).type('application/json').header('x-gateway-error', code ?? 'error').send(anthropicErrorBody(type, message));
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0];
    const e = new Errors.NotFound(
      `No gateway route for ${request.method} ${path}. Model routes: /v1/messages (ANTHROPIC_BASE_URL=<gateway>), /anthropic/*, /bedrock/*, /vertex_ai/v1/*, each also under /profiles/<name>/.`,
    );
    reply.code(404).type('application/json').send(anthropicErrorBody('not_found_error', e.message));
  });

  registerPublicRoutes(app, runtime);
  registerAccountingRoutes(app, runtime);
  registerEventRoutes(app, runtime);
  registerModelRoutes(app, runtime, {});
  void app.register(
    async (scoped) => {
      registerModelRoutes(scoped, runtime, { pinned: true });
    },
    { prefix: '/profiles/:profile' },
  );

  return app;
}
