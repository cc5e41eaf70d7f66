import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listeningUrl } from '../helpers/gateway';
import { MockGoogleOAuth } from '../helpers/mock-google';
import { MockVertex } from '../helpers/mock-vertex';

const ROOT = path.resolve(__dirname, '../..');
const KEY = 'ccgw-vertex-keyfile-test-key-000000000001';
const URL_PATH = '/vertex_ai/v1/projects/test-proj/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001:rawPredict';

/**
 * A service-account key file: google-auth-library signs a JWT and posts it to https://oauth2.googleapis.com/token
 * whatever the file says, so the gateway runs as a child process with HTTPS_PROXY pointing at a local CONNECT
 * proxy and NODE_EXTRA_CA_CERTS trusting a throwaway CA (Node reads it only at start-up).
 */
describe('Vertex AI credentials: service-account key file (google-auth-library through HTTPS_PROXY)', function () {
  this.timeout(30_000);
  let google: MockGoogleOAuth;
  let vertex: MockVertex;
  let child: ChildProcess;
  let url: string;

  before(async () => {
    google = await new MockGoogleOAuth().start();
    vertex = await new MockVertex((t) => google.issuer.valid(t)).start();
    const cfg = path.join(google.dir, 'gateway.json');
    fs.writeFileSync(
      cfg,
      JSON.stringify({
        dataDir: path.join(google.dir, 'data'),
        keys: [{ id: 'test', key: '${env:GW_TEST_KEY}' }],
        profiles: [
          { name: 'vertex', provider: 'vertex', projectId: 'test-proj', region: 'us-east5', keyFile: google.keyFile, endpoint: vertex.url },
          { name: 'short', provider: 'vertex', projectId: 'test-proj', region: 'us-east5', keyFile: google.keyFile, endpoint: vertex.url },
        ],
      }),
    );
    child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'serve', '--config', cfg, '--port', '0'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: google.dir,
        GW_TEST_KEY: KEY,
        HTTPS_PROXY: google.proxyUrl,
        NO_PROXY: '127.0.0.1,localhost',
        NODE_EXTRA_CA_CERTS: google.caFile,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    url = await listeningUrl(child);
  });
  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    await vertex.stop();
    await google.stop();
  });

  const call = (prefix = '') =>
    fetch(url + prefix + URL_PATH, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ anthropic_version: 'vertex-2023-10-16', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
    });

  it('obtains a token with the signed JWT assertion (verified by the stand-in) and Vertex accepts it', async () => {
    const res = await call();
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(google.connects, ['oauth2.googleapis.com:443'], 'the token request went through the proxy to Google\'s endpoint');
    assert.match(String(vertex.last!.headers.authorization), /^Bearer ya29\.test-sa-1$/);
    assert.equal((await call()).status, 200);
    assert.equal(google.issuer.log.length, 1, 'the token is cached');
  });

  it('crosses a real token expiry: the next request gets a fresh token, and Vertex never sees the expired one', async () => {
    google.issuer.lifetimeS = 1; // tokens for the "short" profile expire 1 s after issue
    assert.equal((await call('/profiles/short')).status, 200);
    const first = google.issuer.log.at(-1);
    await new Promise((r) => setTimeout(r, 1_300));
    assert.ok(!google.issuer.valid(first!), 'the first token has expired');
    const rejected = vertex.rejectedTokens;
    assert.equal((await call('/profiles/short')).status, 200);
    assert.notEqual(String(vertex.last!.headers.authorization), `Bearer ${first}`);
    assert.equal(vertex.rejectedTokens, rejected, 'no request went out with the expired token');
  });
});
