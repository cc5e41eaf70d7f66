import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writtenCalls } from '../helpers/audit';
import { startGateway, type TestGateway } from '../helpers/gateway';
import { MockBedrock } from '../helpers/mock-bedrock';
import { MockGoogleSts } from '../helpers/mock-google';
import { MockVertex } from '../helpers/mock-vertex';

const MODEL = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';
const BEDROCK_BODY = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
const VERTEX_PATH = '/vertex_ai/v1/projects/test-proj/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001:rawPredict';
const VERTEX_BODY = JSON.stringify({ anthropic_version: 'vertex-2023-10-16', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
type ErrorBody = { type: string; error: { type: string; message: string } };

// A credential_process whose behaviour the test sets through a file: ok, fail, slow, hang or expired.
const PROCESS = `
const fs = require('fs'); const path = require('path');
const dir = process.argv[2];
const mode = fs.readFileSync(path.join(dir, 'mode'), 'utf8').trim();
const n = Date.now();
const print = (exp) => process.stdout.write(JSON.stringify({ Version: 1, AccessKeyId: 'ASIAFAULTS' + n, SecretAccessKey: 'faults-secret-' + n, SessionToken: 'faults-token-' + n, Expiration: new Date(exp).toISOString() }));
if (mode === 'fail') { process.stderr.write('sso session expired; run aws sso login'); process.exit(1); }
if (mode === 'expired') print(Date.now() - 60000);
else if (mode === 'slow') setTimeout(() => print(Date.now() + 3600000), 400);
else if (mode === 'hang') setTimeout(() => print(Date.now() + 3600000), 4000);
else print(Date.now() + 3600000);
`;

/**
 * Credential faults: the AWS chain (a real credential_process run by the AWS SDK) or the Google token endpoint
 * (workload identity federation through google-auth-library) fails, is slow, hangs, or hands out credentials that
 * already expired. Each gives a clear 502 naming the cause, never a hang; the next request after it works again succeeds.
 */
describe('faults: provider credentials fail, are slow, or are already expired', function () {
  this.timeout(30_000);
  let dir: string;
  let bedrock: MockBedrock;
  let sts: MockGoogleSts;
  let vertex: MockVertex;
  let gw: TestGateway;
  const setMode = (m: string) => fs.writeFileSync(path.join(dir, 'mode'), m);
  let profileN = 0;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-credfaults-'));
    fs.writeFileSync(path.join(dir, 'proc.js'), PROCESS);
    fs.writeFileSync(path.join(dir, 'config'), `[profile proc]\ncredential_process = ${process.execPath} ${path.join(dir, 'proc.js')} ${dir}\n`);
    fs.writeFileSync(path.join(dir, 'credentials'), '');
    setMode('ok');
    bedrock = await new MockBedrock((id) => (id.startsWith('ASIAFAULTS') ? { secret: `faults-secret-${id.slice(10)}` } : undefined)).start();
    sts = await new MockGoogleSts().start();
    vertex = await new MockVertex((t) => sts.issuer.valid(t)).start();
    // A fresh profile name per case, so each starts with an empty credential cache.
    const profiles = [];
    for (let i = 0; i < 8; i++) {
      profiles.push({ name: `b${i}`, provider: 'bedrock', region: 'us-east-1', awsProfile: 'proc', endpoint: bedrock.url });
      profiles.push({ name: `v${i}`, provider: 'vertex', projectId: 'test-proj', region: 'us-east5', keyFile: sts.credentialsFile, endpoint: vertex.url });
    }
    gw = await startGateway(
      { profiles, upstream: { credentialsTimeoutMs: 1500 } },
      { env: { PATH: process.env.PATH, AWS_CONFIG_FILE: path.join(dir, 'config'), AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'credentials') } },
    );
  });
  after(async () => {
    await gw.close();
    await Promise.all([bedrock.stop(), sts.stop(), vertex.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const bedrockCall = (profile: string) =>
    fetch(`${gw.url}/profiles/${profile}/bedrock/model/${MODEL}/invoke`, { method: 'POST', headers: { authorization: `Bearer ${gw.key}` }, body: BEDROCK_BODY });
  const vertexCall = (profile: string) => fetch(`${gw.url}/profiles/${profile}${VERTEX_PATH}`, { method: 'POST', headers: { authorization: `Bearer ${gw.key}` }, body: VERTEX_BODY });

  async function assert502(res: Response, pattern: RegExp): Promise<void> {
    assert.equal(res.status, 502);
    const body = (await res.json()) as ErrorBody;
    assert.equal(body.type, 'error');
    assert.equal(body.error.type, 'api_error');
    assert.match(body.error.message, pattern);
    const rec = (await writtenCalls(gw.auditDir)).at(-1)!;
    assert.equal(rec.status, 'gateway_error');
    assert.equal(rec.errorType, 'CCGW_CREDENTIALS_FAILED');
  }

  const awsCases: Array<[string, string, RegExp, number]> = [
    ['fails', 'fail', /AWS credentials for profile "b\d" \(AWS profile "proc"\) could not be resolved: .*To fix: /, 0],
    ['hangs past credentialsTimeoutMs', 'hang', /could not be resolved: the AWS credential chain gave no answer within 1500 ms/, 1400],
    ['returns credentials that already expired', 'expired', /could not be resolved: .*expired/i, 0],
  ];
  for (const [what, mode, pattern, minMs] of awsCases) {
    it(`AWS credential_process ${what}: 502 naming the cause; the next request after it works again succeeds`, async () => {
      const profile = `b${profileN++}`;
      setMode(mode);
      const t0 = Date.now();
      await assert502(await bedrockCall(profile), pattern);
      const took = Date.now() - t0;
      assert.ok(took >= minMs && took < 4000, `answered after ${took} ms`);
      setMode('ok');
      const rejected = bedrock.rejected.length;
      const res = await bedrockCall(profile);
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(bedrock.rejected.length, rejected, 'Bedrock never saw bad credentials');
    });
  }

  it('AWS credential_process is slow (400 ms, under the limit): served', async () => {
    setMode('slow');
    const res = await bedrockCall(`b${profileN++}`);
    assert.equal(res.status, 200);
    setMode('ok');
  });

  const googleCases: Array<[string, () => void, RegExp, number]> = [
    ['fails (500)', () => (sts.mode = 'fail'), /Google credentials for profile "v\d" could not be obtained: .*To fix: /, 0],
    ['hangs past credentialsTimeoutMs', () => (sts.delayMs = 3000), /could not be obtained: the token endpoint gave no answer within 1500 ms/, 1400],
    ['returns an already-expired token', () => (sts.mode = 'expired'), /could not be obtained: the token endpoint returned an access token that had already expired/, 0],
  ];
  for (const [what, breakIt, pattern, minMs] of googleCases) {
    it(`Google token endpoint ${what}: 502 naming the cause; the next request after it works again succeeds`, async () => {
      const profile = `v${profileN++}`;
      breakIt();
      const t0 = Date.now();
      await assert502(await vertexCall(profile), pattern);
      const took = Date.now() - t0;
      assert.ok(took >= minMs && took < 4000, `answered after ${took} ms`);
      sts.mode = 'ok';
      sts.delayMs = 0;
      const rejected = vertex.rejectedTokens;
      const res = await vertexCall(profile);
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(vertex.rejectedTokens, rejected, 'Vertex never saw a bad token');
    });
  }

  it('Google token endpoint is slow (400 ms, under the limit): served', async () => {
    sts.delayMs = 400;
    const res = await vertexCall(`v${profileN++}`);
    assert.equal(res.status, 200);
    sts.delayMs = 0;
  });
});
