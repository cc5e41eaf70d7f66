import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import type { SettledCall } from '../../src/core/gateway/call';
import { bedrockChunk, encodeEventStreamMessage } from '../../src/core/streams/eventstream';
import { PriceTable } from '../../src/core/accounting/pricing';
import { until, writtenCalls } from '../helpers/audit';
import { nextSettled, startGateway, type TestGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

const PROVIDER_KEY = 'sk-ant-metering-provider-key-0042';
const BEDROCK_TOKEN = 'bedrock-api-key-metering-0042';
const env = { MET_PROVIDER_KEY: PROVIDER_KEY, MET_BEDROCK_TOKEN: BEDROCK_TOKEN };
const prices = new PriceTable();
// Sonnet 4.5: $3 / $15 per million input / output tokens.
const SONNET = prices.price('sonnet-4');
const ANSWER = 'The answer, complete. '.repeat(150);

/**
 * An Anthropic upstream that streams a whole answer up to content_block_stop and then holds the final message_delta
 * until `release()` (or until the connection closes): the moment a client that hangs up early leaves at.
 */
class HoldingUpstream {
  readonly closedEarly: number[] = [];
  private server?: http.Server;
  private held: Array<() => void> = [];
  private waiting: Array<() => void> = [];

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'request-id': 'req_hold' });
        const send = (data: Record<string, unknown>) => res.write(`event: ${String(data.type)}\ndata: ${JSON.stringify(data)}\n\n`);
        send({ type: 'message_start', message: { id: 'msg_hold', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5-20250929', content: [], usage: { input_tokens: 40, output_tokens: 1 } } });
        send({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
        for (let i = 0; i < ANSWER.length; i += 60) send({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ANSWER.slice(i, i + 60) } });
        send({ type: 'content_block_stop', index: 0 });
        res.on('close', () => {
          if (!res.writableFinished) this.closedEarly.push(Date.now());
        });
        this.held.push(() => {
          if (res.destroyed) return;
          send({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 1111 } });
          send({ type: 'message_stop' });
          res.end();
        });
        this.waiting.splice(0).forEach((w) => w());
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return this;
  }

  /** Resolves once a stream is being held before its final usage. */
  holding(): Promise<void> {
    return this.held.length ? Promise.resolve() : new Promise((r) => this.waiting.push(r));
  }

  release(): void {
    this.held.splice(0).forEach((f) => f());
  }

  async stop(): Promise<void> {
    this.release();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }
}

/** Streams one answer with the real SDK and hangs up at content_block_stop, before message_delta. */
async function hangUpBeforeFinalUsage(client: Anthropic): Promise<'hung_up' | number> {
  try {
    const stream = await client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 2000, stream: true, messages: [{ role: 'user', content: 'answer' }] });
    for await (const event of stream) {
      if (event.type === 'content_block_stop') {
        stream.controller.abort();
        break;
      }
    }
    return 'hung_up';
  } catch (err) {
    if (err instanceof Anthropic.APIError && err.status) return err.status;
    throw err;
  }
}

describe('abuse: money spent upstream that the budget never saw', function () {
  this.timeout(60_000);

  describe('a client that hangs up before the final usage', () => {
    let upstream: HoldingUpstream;
    let gw: TestGateway;
    let client: Anthropic;

    beforeEach(async () => {
      upstream = await new HoldingUpstream().start();
      gw = await startGateway(
        { profiles: [{ name: 'anthropic', provider: 'anthropic', apiKey: '${env:MET_PROVIDER_KEY}', baseUrl: upstream.url }], budgets: [{ scope: 'global', usd: 0.01, period: 'day' }] },
        { env },
      );
      client = new Anthropic({ apiKey: gw.key, baseURL: `${gw.url}/anthropic`, maxRetries: 0 });
    });
    afterEach(async () => {
      // The SDK's fetch leaves a spare connection that never sends a request; the server would wait out its headers timeout.
      gw.app.server.closeAllConnections();
      await gw.close();
      await upstream.stop();
    });

    it('45 answers closed after content_block_stop vs a $0.01/day budget: refused after the first, charged what it streamed, recorded as estimated', async () => {
      const outcomes: Array<'hung_up' | number> = [];
      const settled: SettledCall[] = [];
      gw.runtime.onDidSettleCall((c) => settled.push(c));
      for (let i = 0; i < 45; i++) {
        const done = nextSettled(gw);
        outcomes.push(await hangUpBeforeFinalUsage(client));
        // Each call settles before the next starts, so no reservation is what refuses the next one: its recorded cost is.
        await done;
      }
      const answered = outcomes.filter((o) => o === 'hung_up').length;
      assert.equal(answered, 1, `answers streamed: ${answered}`);
      assert.deepEqual(new Set(outcomes.slice(1)), new Set([429]));
      const first = settled[0];
      assert.equal(first.status, 'client_aborted');
      assert.equal(first.estimated, true);
      // Output no less than what was streamed, at 3 bytes per token; the input from message_start.
      const streamedTokens = Math.ceil(Buffer.byteLength(ANSWER) / 3);
      assert.equal(first.usage.input, 40);
      assert.equal(first.usage.output, streamedTokens);
      assert.ok(Math.abs(first.costUsd - (40 * SONNET.input + streamedTokens * SONNET.output) / 1e6) < 1e-12);
      assert.ok(gw.runtime.budgets()[0].spentUsd >= 0.01, 'the budget saw the answer');
      const records = await writtenCalls(gw.auditDir);
      const estimated = records.filter((r) => (r as { estimated?: boolean }).estimated === true);
      assert.equal(estimated.length, 1);
      assert.equal(records.filter((r) => r.status === 'rejected').length, 44);
      // The upstream was read on for its final usage, then aborted at the bound (it never sent it).
      await until(() => upstream.closedEarly.length === 1);
    });

    it('an upstream that sends its final usage after the client has gone: read on, charged exactly, not estimated', async () => {
      const done = nextSettled(gw);
      // The gateway's side of the connection that carried the request closes: the gateway has seen the client go.
      const clientGone = new Promise<void>((resolve) => {
        gw.app.server.on('connection', (socket) => socket.once('data', () => socket.once('close', () => resolve())));
      });
      const stream = await client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 2000, stream: true, messages: [{ role: 'user', content: 'answer' }] });
      await upstream.holding();
      for await (const event of stream) {
        if (event.type === 'content_block_stop') {
          stream.controller.abort();
          break;
        }
      }
      await clientGone;
      upstream.release();
      const call = await done;
      assert.equal(call.status, 'client_aborted');
      assert.equal(call.usage.output, 1111);
      assert.equal(call.estimated, undefined);
      assert.equal(upstream.closedEarly.length, 0, 'the upstream finished its answer');
    });
  });

  describe('Bedrock streams that end before their final usage', () => {
    // Bedrock that streams an answer up to the end of its content block, then holds the final usage forever: Claude's
    // InvokeModelWithResponseStream (base64 Anthropic chunks) and ConverseStream.
    let bedrock: http.Server;
    let gw: TestGateway;
    const converseFrame = (type: string, body: unknown) => encodeEventStreamMessage({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify(body));
    const chunks: string[] = [];
    for (let i = 0; i < ANSWER.length; i += 60) chunks.push(ANSWER.slice(i, i + 60));
    const invokeFrames = Buffer.concat([
      bedrockChunk({ type: 'message_start', message: { id: 'msg_b', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5-20250929', content: [], usage: { input_tokens: 40, output_tokens: 1 } } }),
      bedrockChunk({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
      ...chunks.map((t) => bedrockChunk({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } })),
      bedrockChunk({ type: 'content_block_stop', index: 0 }),
    ]);
    const converseFrames = Buffer.concat([
      converseFrame('messageStart', { role: 'assistant' }),
      ...chunks.map((t) => converseFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: t } })),
      converseFrame('contentBlockStop', { contentBlockIndex: 0 }),
    ]);

    before(async () => {
      bedrock = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': 'req-hold' });
          res.write(req.url?.endsWith('/converse-stream') ? converseFrames : invokeFrames);
        });
      });
      await new Promise<void>((r) => bedrock.listen(0, '127.0.0.1', r));
      const endpoint = `http://127.0.0.1:${(bedrock.address() as AddressInfo).port}`;
      gw = await startGateway({ activeProfile: 'bedrock', profiles: [{ name: 'bedrock', provider: 'bedrock', region: 'us-east-1', bearerToken: '${env:MET_BEDROCK_TOKEN}', endpoint }] }, { env });
    });
    after(async () => {
      gw.app.server.closeAllConnections();
      await gw.close();
      bedrock.closeAllConnections();
      await new Promise<void>((r) => bedrock.close(() => r()));
    });

    const streamedTokens = Math.ceil(Buffer.byteLength(ANSWER) / 3);

    it('unified /v1/messages on Bedrock (event stream re-emitted as SSE), the SDK hangs up at content_block_stop: estimated', async () => {
      const done = nextSettled(gw);
      const client = new Anthropic({ apiKey: gw.key, baseURL: gw.url, maxRetries: 0 });
      assert.equal(await hangUpBeforeFinalUsage(client), 'hung_up');
      const call = await done;
      assert.equal(call.route, 'unified');
      assert.equal(call.status, 'client_aborted');
      assert.equal(call.estimated, true);
      assert.equal(call.usage.input, 40);
      assert.equal(call.usage.output, streamedTokens);
      assert.ok(Math.abs(call.costUsd - (40 * SONNET.input + streamedTokens * SONNET.output) / 1e6) < 1e-12);
    });

    const converseBody = JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'answer' }] }], inferenceConfig: { maxTokens: 2000 } });
    for (const [action, frames, body, input] of [
      ['invoke-with-response-stream', invokeFrames, JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 2000, messages: [{ role: 'user', content: 'answer' }] }), 40],
      // ConverseStream reports no usage before its metadata event: the input is the request body at 3 bytes per token.
      ['converse-stream', converseFrames, converseBody, Math.ceil(Buffer.byteLength(converseBody) / 3)],
    ] as const) {
      it(`native /bedrock ${action}, the client leaves after the content: estimated from the frames it was sent`, async () => {
        const done = nextSettled(gw);
        const ac = new AbortController();
        const res = await fetch(`${gw.url}/bedrock/model/anthropic.claude-sonnet-4-5-20250929-v1:0/${action}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json' },
          body,
          signal: ac.signal,
        });
        assert.equal(res.status, 200);
        const reader = res.body!.getReader();
        for (let got = 0; got < frames.length; ) got += (await reader.read()).value?.length ?? 0;
        ac.abort();
        const call = await done;
        assert.equal(call.status, 'client_aborted');
        assert.equal(call.estimated, true);
        assert.equal(call.usage.input, input);
        assert.equal(call.usage.output, streamedTokens);
        assert.ok(call.costUsd > 0);
      });
    }
  });

  describe('Bedrock models other than Claude', () => {
    let bedrock: http.Server;
    let gw: TestGateway;
    const seen: string[] = [];

    before(async () => {
      // Bedrock InvokeModel for Llama: a body in Llama's own shape, the token counts in headers; the stream carries
      // them in the last chunk's amazon-bedrock-invocationMetrics.
      bedrock = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          seen.push(req.url ?? '');
          if (req.url?.endsWith('/invoke-with-response-stream')) {
            res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': 'req-llama-stream' });
            res.write(bedrockChunk({ generation: 'Hello', prompt_token_count: 900, generation_token_count: 1, stop_reason: null }));
            res.end(
              bedrockChunk({ generation: ' there', prompt_token_count: null, generation_token_count: 2, stop_reason: 'stop', 'amazon-bedrock-invocationMetrics': { inputTokenCount: 900, outputTokenCount: 700 } }),
            );
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json', 'x-amzn-requestid': 'req-llama', 'x-amzn-bedrock-input-token-count': '1200', 'x-amzn-bedrock-output-token-count': '800' });
          res.end(JSON.stringify({ generation: 'Hello there', prompt_token_count: 1200, generation_token_count: 800, stop_reason: 'stop' }));
        });
      });
      await new Promise<void>((r) => bedrock.listen(0, '127.0.0.1', r));
      const endpoint = `http://127.0.0.1:${(bedrock.address() as AddressInfo).port}`;
      gw = await startGateway({ activeProfile: 'bedrock', profiles: [{ name: 'bedrock', provider: 'bedrock', region: 'us-east-1', bearerToken: '${env:MET_BEDROCK_TOKEN}', endpoint }] }, { env });
    });
    after(async () => {
      await gw.close();
      bedrock.closeAllConnections();
      await new Promise<void>((r) => bedrock.close(() => r()));
    });

    const invoke = (action: string) =>
      fetch(`${gw.url}/bedrock/model/meta.llama3-1-70b-instruct-v1:0/${action}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'Say hello', max_gen_len: 512 }),
      });
    const top = prices.price(prices.fallbackFamily);

    it('InvokeModel (Llama): the token-count headers are read and the unknown model is priced at the top price', async () => {
      const done = nextSettled(gw);
      const res = await invoke('invoke');
      assert.equal(res.status, 200);
      assert.match(await res.text(), /Hello there/);
      const call = await done;
      assert.deepEqual(call.usage, { input: 1200, output: 800, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0 });
      assert.equal(call.priceKnown, false);
      assert.ok(call.costUsd > 0);
      assert.ok(Math.abs(call.costUsd - (1200 * top.input + 800 * top.output) / 1e6) < 1e-12);
    });

    it('InvokeModelWithResponseStream (Llama): the invocation metrics of the last chunk are read', async () => {
      const done = nextSettled(gw);
      const res = await invoke('invoke-with-response-stream');
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      const call = await done;
      assert.equal(call.status, 'ok');
      assert.deepEqual(call.usage, { input: 900, output: 700, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0 });
      assert.ok(Math.abs(call.costUsd - (900 * top.input + 700 * top.output) / 1e6) < 1e-12);
      assert.equal(call.estimated, undefined);
    });
  });

  describe('reservations', () => {
    let upstream: MockAnthropic;
    let gw: TestGateway;

    before(async () => {
      upstream = await new MockAnthropic().start();
      upstream.requireApiKey = PROVIDER_KEY;
      gw = await startGateway(
        { profiles: [{ name: 'anthropic', provider: 'anthropic', apiKey: '${env:MET_PROVIDER_KEY}', baseUrl: upstream.url }], budgets: [{ scope: 'global', usd: 0.01, period: 'day' }] },
        { env },
      );
    });
    after(async () => {
      await gw.close();
      await upstream.stop();
    });

    const post = (maxTokens: number) =>
      fetch(`${gw.url}/anthropic/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
        body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: maxTokens, messages: [{ role: 'user', content: 'write at length' }] }),
      });

    it('after one cheap call, 100 concurrent calls of 4,000 output tokens at a $0.01 budget: at most about one call over', async () => {
      // Haiku 4.5: $1 / $5 per million. The cheap call costs a few hundredths of a cent.
      const haiku = prices.price('haiku-4.5');
      upstream.usage = { input_tokens: 20, output_tokens: 5 };
      assert.equal((await post(16)).status, 200);
      upstream.usage = { input_tokens: 20, output_tokens: 4000 };
      const oneCall = (20 * haiku.input + 4000 * haiku.output) / 1e6;
      const admitted: SettledCall[] = [];
      gw.runtime.onDidSettleCall((c) => c.status === 'ok' && admitted.push(c));
      const statuses = await Promise.all(
        Array.from({ length: 100 }, async () => {
          const res = await post(4000);
          await res.arrayBuffer();
          return res.status;
        }),
      );
      const ok = statuses.filter((s) => s === 200).length;
      assert.equal(admitted[0]?.maxTokens, 4000, 'the route read max_tokens for the reservation');
      assert.equal(ok + statuses.filter((s) => s === 429).length, 100);
      const spent = gw.runtime.budgets()[0].spentUsd;
      assert.ok(ok >= 1 && ok <= 2, `admitted ${ok}`);
      assert.ok(spent - 0.01 <= oneCall + 1e-12, `spent $${spent} of $0.01: over by more than one call ($${oneCall})`);
      assert.equal(gw.runtime.budgets()[0].reservedUsd, 0, 'every reservation released');
    });
  });
});
