import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { AnthropicVertex } from '@anthropic-ai/vertex-sdk';
import { OAuth2Client } from 'google-auth-library';
import { listeningUrl } from '../helpers/gateway';
import { auditCalls, until } from '../helpers/audit';
import { MockMetadataServer } from '../helpers/mock-metadata';
import { MockVertex } from '../helpers/mock-vertex';

const ROOT = path.resolve(__dirname, '../..');
const KEY = 'ccgw-metadata-test-key-000000000001';
const CREDENTIALS_TIMEOUT_MS = 3000;
const MODEL = 'claude-haiku-4-5@20251001';
type ErrorBody = { type: string; error: { type: string; message: string } };

/**
 * How google-auth-library decides it runs on Google Cloud compute, and so asks the metadata server for tokens.
 * GCE_METADATA_HOST points gcp-metadata at the stand-in in both.
 */
const ENVIRONMENTS: Array<{ name: string; env: Record<string, string>; firstFailure: RegExp }> = [
  // K_SERVICE is how Cloud Run (and newer Cloud Functions) announce themselves: residency is known without a ping,
  // and gcp-metadata then puts no timeout of its own on metadata requests (only the gateway's bounds a hang).
  { name: 'Cloud Run (K_SERVICE set: residency known, no ping)', env: { K_SERVICE: 'ccgw-gateway' }, firstFailure: /HTTP 500/ },
  // A VM whose BIOS the library cannot read (containers without /sys, sandboxed pods): it pings the metadata server
  // first, and a ping answered with 500 reads to it as "not on Google Cloud", so no ADC source is found at all.
  {
    name: 'a VM found by pinging the metadata server (METADATA_SERVER_DETECTION=ping-only)',
    env: { METADATA_SERVER_DETECTION: 'ping-only' },
    firstFailure: /Could not load the default credentials/,
  },
];

/** The gateway CLI in a child process: google-auth-library reads process.env and keeps module-wide state. */
async function startGatewayChild(dir: string, env: Record<string, string>, profiles: unknown[]): Promise<{ child: ChildProcess; url: string }> {
  const cfg = path.join(dir, 'gateway.json');
  fs.writeFileSync(
    cfg,
    JSON.stringify({
      dataDir: path.join(dir, 'data'),
      keys: [{ id: 'test', key: '${env:GW_TEST_KEY}' }],
      profiles,
      upstream: { credentialsTimeoutMs: CREDENTIALS_TIMEOUT_MS },
    }),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'serve', '--config', cfg, '--port', '0'], {
    cwd: ROOT,
    // Nothing inherited: no GOOGLE_APPLICATION_CREDENTIALS, no proxy; HOME and CLOUDSDK_CONFIG are empty folders, so
    // no key file or gcloud ADC on this machine can stand in for the metadata server.
    env: { PATH: process.env.PATH, HOME: dir, CLOUDSDK_CONFIG: path.join(dir, 'gcloud'), GW_TEST_KEY: KEY, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { child, url: await listeningUrl(child) };
}

for (const environment of ENVIRONMENTS) {
  describe(`Vertex AI credentials: ADC from the GCE metadata server, on ${environment.name}`, function () {
    this.timeout(30_000);
    let dir: string;
    let metadata: MockMetadataServer;
    let vertex: MockVertex;
    let child: ChildProcess;
    let url: string;
    // A fresh profile per case, so each starts with no cached token (all share the process-wide library state).
    let profileN = 0;
    const nextProfile = () => `p${profileN++}`;
    /** Calls the audit log should record as gateway errors so far. */
    let auditFailures = 0;

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-metadata-'));
      fs.mkdirSync(path.join(dir, 'gcloud'));
      metadata = await new MockMetadataServer().start();
      vertex = await new MockVertex((t) => metadata.issuer.valid(t)).start();
      const vertexProfile = (name: string, extra = {}) => ({ name, provider: 'vertex', projectId: 'test-proj', region: 'us-east5', endpoint: vertex.url, ...extra });
      const profiles = [...Array.from({ length: 8 }, (_, i) => vertexProfile(`p${i}`)), vertexProfile('unified', { mode: 'unified' })];
      ({ child, url } = await startGatewayChild(dir, { GCE_METADATA_HOST: metadata.host, ...environment.env }, profiles));
    });
    after(async () => {
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      await vertex?.stop();
      await metadata?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /** What Claude Code does with CLAUDE_CODE_SKIP_VERTEX_AUTH=1 and ANTHROPIC_AUTH_TOKEN: the gateway key as the bearer. */
    const vertexSdk = (profile: string) => {
      const auth = new OAuth2Client();
      auth.setCredentials({ access_token: KEY, expiry_date: Date.now() + 3_600_000 });
      return new AnthropicVertex({ region: 'us-east5', projectId: 'test-proj', baseURL: `${url}/profiles/${profile}/vertex_ai/v1`, authClient: auth, maxRetries: 0 });
    };
    const rawCall = (profile: string) =>
      fetch(`${url}/profiles/${profile}/vertex_ai/v1/projects/test-proj/locations/us-east5/publishers/anthropic/models/${MODEL}:rawPredict`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ anthropic_version: 'vertex-2023-10-16', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
      });

    /** A 502 in Anthropic's error shape that names the metadata server and `cause`, recorded as a credentials failure. */
    async function assertCredentialsError(res: Response, profile: string, cause: RegExp): Promise<void> {
      assert.equal(res.status, 502);
      const body = (await res.json()) as ErrorBody;
      assert.equal(body.type, 'error');
      assert.equal(body.error.type, 'api_error');
      const message = body.error.message;
      assert.match(message, new RegExp(`^Google credentials for profile "${profile}" could not be obtained\\b`));
      assert.ok(message.includes(`metadata server at http://${metadata.host}`), message);
      assert.match(message, cause, message);
      assert.match(message, /To fix: /);
      assert.ok(!message.includes(KEY));
      // The child writes its audit record as the call settles, which may be just after the answer.
      const audit = path.join(dir, 'data', 'audit');
      const failed = () => auditCalls(audit).filter((r) => r.status === 'gateway_error');
      const want = ++auditFailures;
      await until(() => failed().length === want);
      assert.equal(failed().at(-1)!.errorType, 'CCGW_CREDENTIALS_FAILED');
    }

    /** Breaks the metadata server, calls, checks the error and its timing, mends the server and calls again. */
    async function failThenRecover(mode: 'fail' | 'hang', cause: RegExp, minMs: number): Promise<void> {
      const profile = nextProfile();
      metadata.mode = mode;
      try {
        const t0 = Date.now();
        await assertCredentialsError(await rawCall(profile), profile, cause);
        const took = Date.now() - t0;
        assert.ok(took >= minMs && took < CREDENTIALS_TIMEOUT_MS + 1000, `answered after ${took} ms (credentialsTimeoutMs ${CREDENTIALS_TIMEOUT_MS})`);
      } finally {
        metadata.mode = 'ok';
      }
      const rejected = vertex.rejectedTokens;
      const tokens = metadata.tokenRequests.length;
      const res = await rawCall(profile);
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(metadata.tokenRequests.length, tokens + 1, 'the next call asked the metadata server afresh');
      assert.match(String(vertex.last!.headers.authorization), /^Bearer ya29\.test-gce-\d+$/);
      assert.equal(vertex.rejectedTokens, rejected, 'Vertex never saw a bad token');
    }

    it('the metadata server answers 500 when the gateway first needs a token: 502 naming it; the next call succeeds once it answers again', async () => {
      await failThenRecover('fail', environment.firstFailure, 0);
    });

    it('the real Vertex SDK completes a turn, streaming and not; Vertex sees the metadata server\'s token, never the gateway key', async () => {
      const profile = nextProfile();
      const tokensBefore = metadata.tokenRequests.length;
      const client = vertexSdk(profile);
      const msg = await client.messages.create({ model: MODEL, max_tokens: 16, messages: [{ role: 'user', content: 'say pong' }] });
      assert.equal(msg.content[0].type === 'text' && msg.content[0].text, 'pong from vertex');
      assert.equal(vertex.last!.url, `/v1/projects/test-proj/locations/us-east5/publishers/anthropic/models/${MODEL}:rawPredict`);
      const token = /^Bearer (ya29\.test-gce-\d+)$/.exec(String(vertex.last!.headers.authorization))?.[1];
      assert.ok(token && metadata.issuer.log.includes(token), `Vertex got ${vertex.last!.headers.authorization}`);
      assert.ok(!JSON.stringify(vertex.last!.headers).includes(KEY), 'the gateway key never reaches Vertex');

      const final = await client.messages.stream({ model: MODEL, max_tokens: 16, messages: [{ role: 'user', content: 'say pong' }] }).finalMessage();
      assert.equal(final.content[0].type === 'text' && final.content[0].text, 'pong from vertex');
      assert.match(vertex.last!.url, /:streamRawPredict$/);
      assert.equal(vertex.last!.headers.authorization, `Bearer ${token}`, 'the token is cached across calls');
      assert.ok(!JSON.stringify(vertex.last!.headers).includes(KEY));

      const asked = metadata.tokenRequests.slice(tokensBefore);
      assert.equal(asked.length, 1, 'one token request for both calls');
      assert.match(asked[0].path, /[?&]scopes=https%3A%2F%2Fwww\.googleapis\.com%2Fauth%2Fcloud-platform(&|$)/);
      assert.ok(metadata.requests.every((r) => r.flavor === 'Google'), 'every metadata request carried Metadata-Flavor: Google');
    });

    it('the Anthropic SDK on the unified endpoint reaches Vertex with the metadata server\'s token, streaming and not', async () => {
      const client = new Anthropic({ baseURL: `${url}/profiles/unified`, authToken: KEY, apiKey: null, maxRetries: 0 });
      const msg = await client.messages.create({ model: 'claude-haiku-4-5-20251001', max_tokens: 16, messages: [{ role: 'user', content: 'say pong' }] });
      assert.equal(msg.content[0].type === 'text' && msg.content[0].text, 'pong from vertex');
      assert.match(String(vertex.last!.headers.authorization), /^Bearer ya29\.test-gce-\d+$/);
      const final = await client.messages.stream({ model: 'claude-haiku-4-5-20251001', max_tokens: 16, messages: [{ role: 'user', content: 'say pong' }] }).finalMessage();
      assert.equal(final.content[0].type === 'text' && final.content[0].text, 'pong from vertex');
      assert.match(vertex.last!.url, /:streamRawPredict$/);
      assert.match(String(vertex.last!.headers.authorization), /^Bearer ya29\.test-gce-\d+$/);
      assert.ok(!JSON.stringify(vertex.last!.headers).includes(KEY));
    });

    it('the stand-in speaks the real protocol: a request without Metadata-Flavor: Google is refused with 403', async () => {
      const refused = metadata.refused;
      const res = await fetch(`http://${metadata.host}/computeMetadata/v1/instance/service-accounts/default/token`);
      assert.equal(res.status, 403);
      assert.equal(res.headers.get('metadata-flavor'), 'Google');
      assert.equal(metadata.refused, refused + 1);
      // Only the gateway's requests count for the last case.
      metadata.refused = refused;
      metadata.requests.pop();
    });

    it('a token with less than the refresh margin left is replaced before the next call, without waiting for it to expire', async () => {
      const profile = nextProfile();
      const tokens = metadata.tokenRequests.length;
      metadata.issuer.lifetimeS = 120;
      try {
        assert.equal((await rawCall(profile)).status, 200);
        const first = metadata.issuer.log.at(-1)!;
        assert.equal(vertex.last!.headers.authorization, `Bearer ${first}`);
        metadata.issuer.lifetimeS = 3600;
        assert.equal((await rawCall(profile)).status, 200);
        assert.equal(metadata.tokenRequests.length, tokens + 2, 'the metadata server saw a second token request');
        assert.notEqual(vertex.last!.headers.authorization, `Bearer ${first}`);
        assert.ok(metadata.issuer.valid(first), 'the first token was still valid: refreshed early, not after a failure');
      } finally {
        metadata.issuer.lifetimeS = 3600;
      }
    });

    it('a token that expires soon is refreshed before use: a second token request, and Vertex never sees an expired token', async () => {
      const profile = nextProfile();
      const tokens = metadata.tokenRequests.length;
      const rejected = vertex.rejectedTokens;
      metadata.issuer.lifetimeS = 1;
      try {
        assert.equal((await rawCall(profile)).status, 200);
        const first = metadata.issuer.log.at(-1)!;
        assert.equal(vertex.last!.headers.authorization, `Bearer ${first}`);
        // Wait for the first token to expire (it must not be sent again).
        await new Promise((r) => setTimeout(r, 1_300));
        assert.ok(!metadata.issuer.valid(first), 'the first token has expired');
        metadata.issuer.lifetimeS = 3600;
        const res = await rawCall(profile);
        assert.equal(res.status, 200, await res.clone().text());
        assert.notEqual(vertex.last!.headers.authorization, `Bearer ${first}`);
        assert.equal(metadata.tokenRequests.length, tokens + 2, 'the metadata server saw a second token request');
        assert.equal(vertex.rejectedTokens, rejected, 'no request went out with an expired token');
      } finally {
        metadata.issuer.lifetimeS = 3600;
      }
    });

    it('the metadata server answers 500: 502 naming it within credentialsTimeoutMs; the next call succeeds once it works again', async () => {
      // Prime the library's state with a working server first, so this is a failure of an established setup.
      assert.equal((await rawCall(nextProfile())).status, 200);
      await failThenRecover('fail', /HTTP 500/, 0);
    });

    it('the metadata server hangs: 502 naming it after credentialsTimeoutMs; the next call succeeds once it answers again', async () => {
      await failThenRecover('hang', new RegExp(`no answer within ${CREDENTIALS_TIMEOUT_MS} ms`), CREDENTIALS_TIMEOUT_MS - 100);
    });

    it('the gateway\'s metadata requests all carried Metadata-Flavor: Google (none was refused)', () => {
      assert.ok(metadata.requests.length > 0);
      assert.ok(metadata.requests.every((r) => r.flavor === 'Google'));
      assert.equal(metadata.refused, 0);
    });
  });
}
