import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { parseConfig } from '../../src/core/config/validate';
import { buildGateway, REDACT_PATHS, type BuildOptions } from '../../src/core/gateway/build';
import { KeyRing, generateKey, sha256 } from '../../src/core/gateway/keys';
import { GatewayRuntime } from '../../src/core/runtime';
import { MockAnthropic } from './mock-anthropic';
import { MockBedrock } from './mock-bedrock';
import { MockVertex } from './mock-vertex';

/** Every secret an abuse gateway knows: none may ever appear in a log line, an error body or /health. */
export interface AbuseSecrets {
  /** The admin key "test", sent as the gateway key. */
  key: string;
  /** A second valid key (id "other"), for keys of another length. */
  otherKey: string;
  /** A configured but revoked key (id "gone"). */
  revokedKey: string;
  /** The provider key of the Anthropic profile. */
  providerKey: string;
  /** The provider key of the LiteLLM profile. */
  litellmKey: string;
  /** The HMAC secret for signed tokens. */
  tokenSecret: string;
  /** The Bedrock API key of the "bedrock" profile (with `cloud`). */
  bedrockToken?: string;
}

/** A second local server that plays "evil.example": it must never receive a byte from the gateway. */
export class EvilServer {
  connections = 0;
  readonly received: Buffer[] = [];
  private server?: net.Server;
  private sockets = new Set<net.Socket>();

  async start(): Promise<this> {
    this.server = net.createServer((s) => {
      this.connections++;
      this.sockets.add(s);
      s.on('data', (d) => this.received.push(d));
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return this;
  }

  get port(): number {
    return (this.server!.address() as net.AddressInfo).port;
  }

  get hostPort(): string {
    return `127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }
}

/** A captured HTTP exchange over a raw socket. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  raw: string;
}

/** Parses the first HTTP/1.1 response in `raw` (Content-Length or chunked or close-delimited). */
/** Drops interim 1xx responses (100 Continue), which come before the real one. */
function stripInterim(raw: string): string {
  while (/^HTTP\/1\.[01] 1\d\d /.test(raw) && raw.indexOf('\r\n\r\n') !== -1) raw = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  return raw;
}

export function parseRawResponse(raw: string): RawResponse {
  raw = stripInterim(raw);
  const end = raw.indexOf('\r\n\r\n');
  const head = end === -1 ? raw : raw.slice(0, end);
  const [statusLine, ...lines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const c = l.indexOf(':');
    if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
  }
  let body = end === -1 ? '' : raw.slice(end + 4);
  if (headers['content-length'] !== undefined) body = body.slice(0, Number(headers['content-length']));
  else if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
  return { status, headers, body, raw };
}

function dechunk(s: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const nl = s.indexOf('\r\n', i);
    if (nl === -1) return out;
    const size = parseInt(s.slice(i, nl), 16);
    if (!size) return out;
    out += s.slice(nl + 2, nl + 2 + size);
    i = nl + 2 + size + 2;
  }
}

/** Whether `raw` holds one complete HTTP response. */
function complete(raw: string): boolean {
  raw = stripInterim(raw);
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) return false;
  const r = parseRawResponse(raw);
  if (r.headers['content-length'] !== undefined) return Buffer.byteLength(raw.slice(end + 4), 'latin1') >= Number(r.headers['content-length']);
  if (r.headers['transfer-encoding'] === 'chunked') return raw.endsWith('0\r\n\r\n');
  return false;
}

/**
 * Sends raw bytes to host:port and returns the first response (or whatever arrived when the server closed).
 * Bounded: gives up after `timeoutMs`.
 */
export function rawRequest(port: number, data: string | Buffer, timeoutMs = 5000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let raw = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete response within ${timeoutMs} ms; got ${JSON.stringify(raw.slice(0, 200))}`));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(parseRawResponse(raw));
    };
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      raw += d;
      if (complete(raw)) finish();
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', () => undefined);
    socket.write(data);
  });
}

export interface AbuseGateway {
  url: string;
  port: number;
  app: FastifyInstance;
  runtime: GatewayRuntime;
  upstream: MockAnthropic;
  litellm: MockAnthropic;
  evil: EvilServer;
  /** With `cloud`: the Bedrock upstream of profile "bedrock" (Bedrock API key auth). */
  bedrock?: MockBedrock;
  /** With `cloud`: the Vertex upstream of profile "vertex" (client credentials: token VERTEX_CLIENT_TOKEN). */
  vertex?: MockVertex;
  secrets: AbuseSecrets;
  /** Every pino line the gateway wrote. */
  logs: string[];
  /** Response bodies and headers the tests saw, for the leak check. */
  seen: string[];
  /** Records a response for the leak check and returns it. */
  record<T extends { body: string; headers: unknown }>(r: T): T;
  /** fetch() against the gateway that records the response text and headers. */
  fetch(pathAndQuery: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: string }>;
  /** Asserts that no secret appears in any log line or any recorded response, /health and /metrics included. */
  assertNoLeaks(): Promise<void>;
  close(): Promise<void>;
}

export interface AbuseGatewayOptions {
  build?: Partial<Omit<BuildOptions, 'runtime'>>;
  /** Also a Bedrock profile "bedrock" and a Vertex profile "vertex" (project "abuse-proj"), each with a mock upstream. */
  cloud?: boolean;
}

/** The Google token a client sends to the "vertex" profile of a cloud abuse gateway (client credentials). */
export const VERTEX_CLIENT_TOKEN = 'ya29.abuse-client-token';

/**
 * Starts a real gateway on 127.0.0.1:0 with a mock Anthropic upstream, a mock LiteLLM proxy (with a path
 * prefix), an "evil" server that must never be contacted, pino output captured line by line, and a
 * known set of secrets to search for afterwards.
 */
export async function startAbuseGateway(opts: AbuseGatewayOptions = {}): Promise<AbuseGateway> {
  const upstream = await new MockAnthropic().start();
  const litellm = await new MockAnthropic().start();
  const evil = await new EvilServer().start();
  const secrets: AbuseSecrets = {
    key: generateKey(),
    otherKey: `ccgw-other-${generateKey()}`,
    revokedKey: generateKey(),
    providerKey: `sk-ant-abuse-${generateKey()}`,
    litellmKey: `sk-litellm-abuse-${generateKey()}`,
    tokenSecret: `token-secret-${generateKey()}`,
    ...(opts.cloud ? { bedrockToken: `bedrock-api-key-${generateKey()}` } : {}),
  };
  const bedrock = opts.cloud ? await new MockBedrock(() => undefined).start() : undefined;
  if (bedrock) bedrock.bearerToken = secrets.bedrockToken;
  const vertex = opts.cloud ? await new MockVertex((t) => t === VERTEX_CLIENT_TOKEN).start() : undefined;
  const cloudProfiles =
    bedrock && vertex
      ? [
          { name: 'bedrock', provider: 'bedrock', region: 'us-east-1', bearerToken: '${env:ABUSE_BEDROCK_TOKEN}', endpoint: bedrock.url },
          { name: 'vertex', provider: 'vertex', projectId: 'abuse-proj', region: 'us-east5', credentials: 'client', endpoint: vertex.url },
        ]
      : [];
  upstream.requireApiKey = secrets.providerKey;
  litellm.requireBearer = secrets.litellmKey;
  const env = { ABUSE_PROVIDER_KEY: secrets.providerKey, ABUSE_LITELLM_KEY: secrets.litellmKey, ABUSE_OTHER_KEY: secrets.otherKey, ABUSE_BEDROCK_TOKEN: secrets.bedrockToken ?? '' };
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-abuse-'));
  const config = parseConfig(
    {
      dataDir,
      listen: { host: '127.0.0.1', port: 0 },
      activeProfile: 'anthropic',
      // Bodies and headers go into the audit log (credentials redacted), so the leak check covers the redaction.
      audit: { bodies: 'redacted' },
      profiles: [
        { name: 'anthropic', provider: 'anthropic', apiKey: '${env:ABUSE_PROVIDER_KEY}', baseUrl: upstream.url },
        { name: 'mapped', provider: 'anthropic', apiKey: '${env:ABUSE_PROVIDER_KEY}', baseUrl: upstream.url, models: { map: { 'claude-sonnet-4-5': 'claude-sonnet-4-5-20250929' } } },
        { name: 'lite', provider: 'litellm', apiKey: '${env:ABUSE_LITELLM_KEY}', baseUrl: `${litellm.url}/team/proxy` },
        ...cloudProfiles,
      ],
      keys: [
        { id: 'other', key: '${env:ABUSE_OTHER_KEY}' },
        { id: 'gone', sha256: sha256(secrets.revokedKey).toString('hex'), revoked: true },
      ],
    },
    { env },
  );
  const keys = KeyRing.fromConfig(config.keys, { env, tokenSecret: Buffer.from(secrets.tokenSecret) });
  keys.add({ id: 'test', admin: true }, secrets.key);
  const runtime = new GatewayRuntime({ config, keys, env });
  const logs: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  const app = buildGateway({
    runtime,
    listenHost: '127.0.0.1',
    logger: { level: 'trace', stream, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    ...opts.build,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as net.AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  const seen: string[] = [];
  const record = <T extends { body: string; headers: unknown }>(r: T): T => {
    const headers = r.headers instanceof Headers ? JSON.stringify([...r.headers]) : JSON.stringify(r.headers);
    seen.push(r.body, headers);
    return r;
  };
  const gw: AbuseGateway = {
    url,
    port,
    app,
    runtime,
    upstream,
    litellm,
    evil,
    bedrock,
    vertex,
    secrets,
    logs,
    seen,
    record,
    async fetch(pathAndQuery, init) {
      const res = await fetch(url + pathAndQuery, { ...init, signal: AbortSignal.timeout(10_000) });
      return record({ status: res.status, headers: res.headers, body: await res.text() });
    },
    async assertNoLeaks() {
      for (const p of ['/health', '/metrics', '/usage']) {
        await gw.fetch(p);
        await gw.fetch(p, { headers: { authorization: `Bearer ${secrets.key}` } });
      }
      const files = fs.readdirSync(dataDir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile());
      const haystacks: Array<[string, string[]]> = [
        ['gateway log', logs],
        ['file in the data directory (audit log, state)', files.map((d) => fs.readFileSync(path.join(d.parentPath ?? d.path, d.name), 'latin1'))],
        ['response seen by a client', seen],
        ['request received by the evil server', evil.received.map((b) => b.toString('latin1'))],
      ];
      for (const [name, value] of Object.entries(secrets)) {
        if (value === undefined) continue;
        const needles = [value, Buffer.from(value).toString('base64'), sha256(value).toString('hex')];
        for (const [where, lines] of haystacks) {
          for (const line of lines) {
            for (const needle of needles) assert.ok(!line.includes(needle), `secret ${name} leaked into a ${where}: ${line.slice(0, 300)}`);
          }
        }
      }
      assert.equal(evil.connections, 0, 'the evil server must never be contacted');
    },
    async close() {
      await app.close();
      runtime.dispose();
      await Promise.all([upstream.stop(), litellm.stop(), evil.stop(), bedrock?.stop(), vertex?.stop()]);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return gw;
}

/** An Anthropic Messages request body. */
export function messagesBody(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }], ...extra });
}
