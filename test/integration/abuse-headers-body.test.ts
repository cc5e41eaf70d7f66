import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { BODY_LIMIT } from '../../src/core/gateway/build';
import { messagesBody, rawRequest, startAbuseGateway, type AbuseGateway } from '../helpers/abuse';

/** Header and body abuse: every refusal is an Anthropic-shaped error, nothing malformed reaches the upstream. */
describe('abuse: headers and bodies', () => {
  let gw: AbuseGateway;

  before(async () => {
    gw = await startAbuseGateway({ build: { headersTimeoutMs: 400 } });
  });
  after(async () => {
    await gw.assertNoLeaks();
    await gw.close();
  });

  const auth = () => `Authorization: Bearer ${gw.secrets.key}`;
  function anthropicError(body: string): { type: string; message: string } {
    const json = JSON.parse(body) as { type: string; error: { type: string; message: string } };
    assert.equal(json.type, 'error');
    return json.error;
  }

  it('CR or LF inside a header value is a 400 in the Anthropic shape; nothing reaches the upstream', async () => {
    const before = gw.upstream.requests.length;
    for (const bad of ['X-A: a\rInjected: 1', 'X-A: a\nInjected: 1', 'X-A: a\r\n Injected: folded', `X-A: a\u0000b`]) {
      const res = gw.record(
        await rawRequest(gw.port, `POST /anthropic/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth()}\r\n${bad}\r\nContent-Length: 2\r\n\r\n{}`),
      );
      assert.equal(res.status, 400, `${JSON.stringify(bad)}: ${res.raw.slice(0, 200)}`);
      assert.equal(anthropicError(res.body).type, 'invalid_request_error');
    }
    assert.equal(gw.upstream.requests.length, before);
  });

  it('request smuggling shapes (Content-Length with Transfer-Encoding, two Content-Lengths) are refused', async () => {
    const before = gw.upstream.requests.length;
    for (const framing of ['Content-Length: 2\r\nTransfer-Encoding: chunked', 'Content-Length: 2\r\nContent-Length: 40', 'Transfer-Encoding: chunked, identity']) {
      const res = gw.record(await rawRequest(gw.port, `POST /anthropic/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth()}\r\n${framing}\r\n\r\n0\r\n\r\n`));
      assert.equal(res.status, 400, framing);
      anthropicError(res.body);
    }
    assert.equal(gw.upstream.requests.length, before);
  });

  it('oversized headers get a 431 in the Anthropic shape', async () => {
    const res = gw.record(await rawRequest(gw.port, `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth()}\r\nX-Big: ${'a'.repeat(80 * 1024)}\r\n\r\n`));
    assert.equal(res.status, 431);
    anthropicError(res.body);
  });

  it(`a body of 32 MiB + 1 byte gets a 413 request_too_large, with Content-Length and chunked, and never reaches upstream`, async () => {
    const before = gw.upstream.requests.length;
    // Declared length: refused before a byte of body is read.
    const declared = gw.record(
      await rawRequest(gw.port, `POST /anthropic/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth()}\r\nContent-Type: application/json\r\nContent-Length: ${BODY_LIMIT + 1}\r\n\r\n{`),
    );
    assert.equal(declared.status, 413);
    assert.equal(anthropicError(declared.body).type, 'request_too_large');
    // Chunked: counted as it arrives.
    const big = Buffer.alloc(BODY_LIMIT + 1, 0x20);
    const res = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.secrets.key}`, 'content-type': 'application/json' },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < big.length; i += 1 << 20) c.enqueue(big.subarray(i, i + (1 << 20)));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    const text = await res.text();
    gw.record({ body: text, headers: res.headers });
    assert.equal(res.status, 413);
    assert.equal(anthropicError(text).type, 'request_too_large');
    assert.equal(gw.upstream.requests.length, before);
  });

  it('exactly 32 MiB is accepted on the passthrough route', async () => {
    // A gateway of its own with the default header timeout: this file's 400 ms one (for the slow-loris case) can expire
    // while a loaded machine's single test process is still writing the 32 MiB that follow the headers.
    const big = await startAbuseGateway();
    try {
      const prefix = '{"model":"claude-sonnet-4-5","max_tokens":1,"messages":[],"pad":"';
      const body = prefix + 'x'.repeat(BODY_LIMIT - prefix.length - 2) + '"}';
      assert.equal(body.length, BODY_LIMIT);
      const res = await big.fetch('/anthropic/v1/messages', { method: 'POST', headers: { 'x-api-key': big.secrets.key, 'content-type': 'application/json' }, body });
      assert.equal(res.status, 200, res.body.slice(0, 200));
      assert.equal(big.upstream.last!.body.length, BODY_LIMIT);
      await big.assertNoLeaks();
    } finally {
      await big.close();
    }
  });

  it('deeply nested JSON on the unified endpoint is a 400, not a 500, when the body must be re-serialised (model map)', async () => {
    const depth = 100_000;
    const body = `{"model":"claude-sonnet-4-5","max_tokens":1,"messages":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    const res = await gw.fetch('/profiles/mapped/v1/messages', { method: 'POST', headers: { authorization: `Bearer ${gw.secrets.key}` }, body });
    assert.equal(res.status, 400, res.body.slice(0, 300));
    assert.match(anthropicError(res.body).message, /nested too deeply/);
    // Without a map the bytes pass unchanged (the upstream judges them), and the gateway stays healthy.
    const plain = await gw.fetch('/v1/messages', { method: 'POST', headers: { authorization: `Bearer ${gw.secrets.key}` }, body });
    assert.equal(plain.status, 200);
    assert.equal(gw.upstream.last!.body.toString('latin1'), body);
    assert.equal((await gw.fetch('/health')).status, 200);
  });

  it('invalid UTF-8 is a 400 on every route: the gateway cannot price a body it cannot read as the upstream would', async () => {
    const bad = Buffer.concat([Buffer.from('{"model":"claude-sonnet-4-5","max_tokens":1,"messages":[{"role":"user","content":"'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('"}]}')]);
    for (const path of ['/v1/messages', '/profiles/mapped/v1/messages']) {
      const res = await gw.fetch(path, { method: 'POST', headers: { authorization: `Bearer ${gw.secrets.key}` }, body: bad });
      assert.equal(res.status, 400, `${path}: ${res.body}`);
      assert.match(anthropicError(res.body).message, /UTF-8/);
    }
    const before = gw.upstream.requests.length;
    const res = await gw.fetch('/anthropic/v1/messages', { method: 'POST', headers: { authorization: `Bearer ${gw.secrets.key}` }, body: bad });
    assert.equal(res.status, 400, res.body);
    assert.match(anthropicError(res.body).message, /UTF-8/);
    assert.equal(gw.upstream.requests.length, before, 'nothing forwarded');
  });

  it('non-object JSON and empty bodies on the unified endpoint are 400s', async () => {
    for (const body of ['', '[]', '"x"', 'null', '1', '{', '{"model":']) {
      const res = await gw.fetch('/v1/messages', { method: 'POST', headers: { authorization: `Bearer ${gw.secrets.key}` }, body });
      assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.body}`);
      anthropicError(res.body);
    }
  });

  it('slow-loris: a header block that does not finish in time gets a 408 and the socket is closed', async () => {
    const socket = net.connect(gw.port, '127.0.0.1');
    let raw = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (raw += d));
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.write(`POST /anthropic/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
    // Trickle a header byte every 100 ms: the whole block must still arrive within the timeout.
    const trickle = setInterval(() => socket.writable && socket.write('X-Slow: a\r\n'), 100);
    const timer = setTimeout(() => socket.destroy(), 5000);
    await closed;
    clearInterval(trickle);
    clearTimeout(timer);
    assert.match(raw, /^HTTP\/1\.1 408 /, 'closed by the gateway with a 408, not by the test timer');
    anthropicError(raw.slice(raw.indexOf('\r\n\r\n') + 4));
  });

  it('2,000 idle keep-alive sockets do not stop the gateway from serving a normal request', async function () {
    this.timeout(30_000);
    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < 2000; i += 200) {
        await Promise.all(
          Array.from({ length: 200 }, () => {
            const s = net.connect(gw.port, '127.0.0.1');
            s.on('error', () => undefined);
            sockets.push(s);
            return new Promise<void>((r) => s.once('connect', () => r()));
          }),
        );
      }
      // Half of them have made one request and now sit in keep-alive.
      await Promise.all(
        sockets.slice(0, 1000).map(
          (s) =>
            new Promise<void>((r) => {
              s.once('data', () => r());
              s.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
            }),
        ),
      );
      const res = await gw.fetch('/anthropic/v1/messages', { method: 'POST', headers: { 'x-api-key': gw.secrets.key }, body: messagesBody() });
      assert.equal(res.status, 200);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});
