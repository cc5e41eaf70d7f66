import * as assert from 'node:assert/strict';
import { AwsCredentialSource } from '../../src/core/credentials/aws';
import { writeAwsFiles, type AwsTestFiles } from '../helpers/aws-files';
import { startGateway, type TestGateway } from '../helpers/gateway';
import { MockBedrock } from '../helpers/mock-bedrock';

const MODEL = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';
const BODY = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });

/** Refresh of short-lived credentials from a real credential_process run by the AWS SDK's fromIni. */
describe('Bedrock credentials: caching and refresh before expiry (credential_process)', () => {
  let aws: AwsTestFiles;
  let bedrock: MockBedrock;
  let gw: TestGateway;
  const invoke = () =>
    fetch(`${gw.url}/bedrock/model/${MODEL}/invoke`, { method: 'POST', headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json' }, body: BODY });

  before(async () => {
    aws = writeAwsFiles();
    // The mock enforces each session's real Expiration: a request signed with expired credentials gets ExpiredTokenException.
    bedrock = await new MockBedrock((id, token) => aws.lookup(id, token)).start();
    gw = await startGateway({ profiles: [{ name: 'proc', provider: 'bedrock', region: 'us-east-1', awsProfile: 'proc', endpoint: bedrock.url }] }, { env: aws.env });
  });
  after(async () => {
    await gw.close();
    await bedrock.stop();
    aws.cleanup();
  });

  it('long-lived credentials are resolved once and reused; concurrent first requests share one resolution', async () => {
    aws.setLifetime(60 * 60_000);
    const results = await Promise.all(Array.from({ length: 6 }, invoke));
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
    await invoke();
    assert.equal(aws.processRuns(), 1);
  });

  it('credentials far from expiry are reused, not re-resolved on every request', async () => {
    // From now on the process issues credentials that really expire 1.5 s after issue (well inside the 5-minute margin).
    aws.setLifetime(1_500);
    const runsBefore = aws.processRuns();
    // The cached credentials are still valid for an hour: no refresh.
    assert.equal((await invoke()).status, 200);
    assert.equal(aws.processRuns(), runsBefore);
  });

  it('crosses a real expiry: after the first key expired, callers get new credentials, and concurrent callers share one refresh', async () => {
    const source = new AwsCredentialSource(aws.env);
    const profile = gw.runtime.profile('proc')!;
    const first = await source.get(profile);
    assert.ok(first.expiration && first.expiration.getTime() - Date.now() < 5 * 60_000);
    await new Promise((r) => setTimeout(r, 1_600));
    assert.ok(aws.lookup(first.accessKeyId, first.sessionToken)!.expiresAt! < Date.now(), 'the first key has expired at AWS');
    // Concurrent callers at refresh time share one credential_process run.
    const runs = aws.processRuns();
    const [a, b, c] = await Promise.all([source.get(profile), source.get(profile), source.get(profile)]);
    assert.equal(aws.processRuns(), runs + 1);
    assert.equal(a, b);
    assert.equal(b, c);
    assert.notEqual(a.accessKeyId, first.accessKeyId);
  });

  it('through the gateway: after a key expires, the next request succeeds with refreshed credentials', async () => {
    const fresh = await startGateway({ profiles: [{ name: 'short', provider: 'bedrock', region: 'us-east-1', awsProfile: 'proc', endpoint: bedrock.url }] }, { env: aws.env });
    try {
      const call = () =>
        fetch(`${fresh.url}/bedrock/model/${MODEL}/invoke`, { method: 'POST', headers: { authorization: `Bearer ${fresh.key}` }, body: BODY });
      assert.equal((await call()).status, 200);
      const firstSigner = bedrock.last!.signer!;
      await new Promise((r) => setTimeout(r, 1_600));
      const rejectedBefore = bedrock.rejected.length;
      assert.equal((await call()).status, 200);
      assert.notEqual(bedrock.last!.signer, firstSigner, 'signed with a new key');
      assert.equal(bedrock.rejected.length, rejectedBefore, 'AWS never saw the expired key again');
    } finally {
      await fresh.close();
    }
  });
});
