import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import { anthropicErrorBody, type AnthropicErrorType } from '../errors';

function answer(code: string | undefined): { status: number; type: AnthropicErrorType; message: string } {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, type: 'invalid_request_error', message: 'The request headers did not arrive in time.' };
  if (code === 'HPE_HEADER_OVERFLOW') return { status: 431, type: 'invalid_request_error', message: 'The request headers are larger than the gateway accepts.' };
  return { status: 400, type: 'invalid_request_error', message: 'The request is not valid HTTP/1.1.' };
}

/**
 * Answers requests Node's HTTP parser refused (bad framing, CR/LF in a header, oversized headers, slow headers) in the
 * Anthropic error shape. Unlike Fastify's default it never logs the error object: Node attaches the raw request bytes
 * (`rawPacket`), which hold the client's credentials.
 */
export function clientErrorHandler(this: FastifyInstance, err: Error & { code?: string; bytesParsed?: number }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const { status, type, message } = answer(err.code);
  this.log.debug({ code: err.code, bytesParsed: err.bytesParsed }, 'client error');
  if (socket.writable) {
    const body = anthropicErrorBody(type, message);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** Errors Fastify raises before routing (a malformed percent-escape in the URL), in the Anthropic error shape. */
export const frameworkErrors: NonNullable<FastifyServerOptions['frameworkErrors']> = (error: Error & { code?: string }, _request: FastifyRequest, reply: FastifyReply) => {
  reply
    .code(400)
    .type('application/json')
    .header('x-gateway-error', error.code ?? 'error')
    .send(anthropicErrorBody('invalid_request_error', error.code === 'FST_ERR_BAD_URL' ? 'The request URL has a malformed percent-escape.' : error.message));
};
