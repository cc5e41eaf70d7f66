import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { parseConfig } from '../../src/core/config/validate';
import { buildGateway } from '../../src/core/gateway/build';
import type { SettledCall } from '../../src/core/gateway/call';
import { generateKey, KeyRing } from '../../src/core/gateway/keys';
import { proxyCall, type ProxyCallParams } from '../../src/core/gateway/proxy-call';
import { authenticate } from '../../src/core/gateway/routes/model-routes';
import { GatewayRuntime } from '../../src/core/runtime';
import { writtenCalls } from '../helpers/audit';

/**
 * The contract of proxyCall itself: whatever a responder throws or rejects with after the response was taken over
 * (reply.hijack()), the client gets an answer (a 502 in the Anthropic shape) or a closed connection, and the call
 * settles exactly once: one audit line, nothing in flight, no reservation held. Routes that exist only in this test
 * call proxyCall with responders that fail on purpose, before and after writing the response head.
 */
describe('abuse: a responder that throws after the hijack', () => {
  let upstream: http.Server;
  let app: FastifyInstance;
  let runtime: GatewayRuntime;
  let url: string;
  let key: string;
  let dataDir: string;
  let settledCount = 0;

  before(async () => {
    upstream = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"type":"message","usage":{"input_tokens":1,"output_tokens":1}}'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-settle-'));
    const config = parseConfig({
      dataDir,
      listen: { host: '127.0.0.1', port: 0 },
      budgets: [{ scope: 'global', usd: 1000, period: 'day' }],
      profiles: [{ name: 'anthropic', provider: 'anthropic', apiKey: 'sk-ant-unused', baseUrl: origin }],
    });
    const keys = KeyRing.fromConfig(config.keys, { tokenSecret: Buffer.from('settle-token-secret-0123456789ab') });
    key = generateKey();
    keys.add({ id: 'test', admin: true }, key);
    runtime = new GatewayRuntime({ config, keys });
    runtime.onDidSettleCall(() => settledCount++);
    app = buildGateway({ runtime, listenHost: '127.0.0.1' });
    const responders: Record<string, NonNullable<ProxyCallParams['respond']>> = {
      'throw-before-head': async () => {
        throw new TypeError('a responder bug');
      },
      'reject-before-head': () => Promise.reject(new Error('rejected')),
      'throw-after-head': async (up, _abort, headers) => {
        await up.body.dump();
        const res = current!;
        res.writeHead(200, { 'content-type': 'text/event-stream', ...headers });
        res.write('event: message_start\ndata: {}\n\n');
        throw new Error('a responder bug mid-stream');
      },
    };
    let current: http.ServerResponse | undefined;
    app.post('/test/:kind', async (request, reply) => {
      const auth = authenticate(runtime, request);
      const profile = runtime.resolveProfile(undefined, auth.key);
      current = reply.raw;
      await proxyCall({
        runtime, request, reply, profile, route: 'anthropic', auth,
        requestedModel: 'claude-opus-4-1', upstreamModel: 'claude-opus-4-1', streaming: false, countTokens: false, maxTokens: 4000,
        build: async () => ({ origin, path: '/v1/messages', method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') }),
        respond: responders[(request.params as { kind: string }).kind],
      });
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await app.close();
    runtime.dispose();
    await new Promise((r) => upstream.close(r));
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  function settled(): Promise<SettledCall> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the call did not settle within 15 s')), 15_000);
      const sub = runtime.onDidSettleCall((c) => {
        clearTimeout(timer);
        sub.dispose();
        resolve(c);
      });
    });
  }

  async function send(kind: string): Promise<{ status?: number; text?: string; closed?: boolean }> {
    try {
      const res = await fetch(`${url}/test/${kind}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{}', signal: AbortSignal.timeout(15_000) });
      return { status: res.status, text: await res.text() };
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') throw new Error('the client was left waiting: no answer and no closed connection within 15 s');
      return { closed: true };
    }
  }

  async function assertSettledOnce(before: { audit: number; settled: number }): Promise<void> {
    assert.equal((await writtenCalls(runtime.config.audit.dir)).length - before.audit, 1, 'exactly one audit line');
    assert.equal(settledCount - before.settled, 1, 'settled exactly once');
    const health = (await (await fetch(`${url}/health`)).json()) as { callsInFlight: number };
    assert.equal(health.callsInFlight, 0);
    const budgets = (await (await fetch(`${url}/budgets`, { headers: { authorization: `Bearer ${key}` } })).json()) as { budgets: Array<{ scope: string; reservedUsd: number }> };
    assert.equal(budgets.budgets.find((b) => b.scope === 'global')?.reservedUsd, 0);
  }

  for (const kind of ['throw-before-head', 'reject-before-head']) {
    it(`${kind}: an Anthropic-shaped 502 that names only the request id; the call settles as gateway_error`, async () => {
      const before = { audit: (await writtenCalls(runtime.config.audit.dir)).length, settled: settledCount };
      const done = settled();
      const res = await send(kind);
      const call = await done;
      assert.equal(res.status, 502, JSON.stringify(res));
      const body = JSON.parse(res.text!) as { type: string; error: { type: string; message: string } };
      assert.equal(body.type, 'error');
      assert.equal(body.error.type, 'api_error');
      assert.match(body.error.message, /^Internal gateway error \(request id [0-9a-f-]+\)/);
      assert.doesNotMatch(body.error.message, /responder bug|rejected/);
      assert.equal(call.status, 'gateway_error');
      assert.equal(call.httpStatus, 502);
      await assertSettledOnce(before);
    });
  }

  it('throw-after-head: the connection is closed (the client sees a cut), and the call settles once', async () => {
    const before = { audit: (await writtenCalls(runtime.config.audit.dir)).length, settled: settledCount };
    const done = settled();
    const res = await send('throw-after-head');
    const call = await done;
    // Either the body read fails, or the client saw the head and a body that stops.
    assert.ok(res.closed || (res.status === 200 && !/message_stop/.test(res.text ?? '')), JSON.stringify(res));
    assert.equal(call.status, 'gateway_error');
    await assertSettledOnce(before);
  });
});
