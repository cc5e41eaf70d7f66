import * as assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateKey } from '../../src/core/gateway/keys';
import { allText, writtenCalls } from '../helpers/audit';
import { writeAwsFiles, type AwsTestFiles } from '../helpers/aws-files';
import { startGateway, type TestGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';
import { MockBedrock } from '../helpers/mock-bedrock';

const TOKEN_SECRET = 'test-token-secret-0123456789abcdef';

/**
 * audit.bodies "redacted" and "full" keep the request body but none of the secrets the gateway holds, wherever they
 * came from: a key file, an apiKeyHelper's output (known only once it has run), AWS secrets from a shared-credentials
 * file and from credential_process, a Google service-account key file, the token secret, gateway keys and tokens.
 * The attack: a tool result that printed those files goes back to the model in the next request.
 */
for (const mode of ['redacted', 'full'] as const) {
  describe(`abuse: audit.bodies "${mode}" stores no secret the gateway holds`, function () {
    this.timeout(30_000);
    let upstream: MockAnthropic;
    let bedrock: MockBedrock;
    let aws: AwsTestFiles;
    let dir: string;
    let gw: TestGateway;
    // Shapes the "redacted" patterns do not know, so only knowing the secret removes it.
    const fileKey = `provider-key-in-a-file-${randomBytes(12).toString('hex')}`;
    const helperKey = `helper-printed-key-${randomBytes(12).toString('hex')}`;
    const pem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    let keyFileJson: string;

    before(async () => {
      upstream = await new MockAnthropic().start();
      aws = writeAwsFiles();
      bedrock = await new MockBedrock(aws.lookup).start();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-leaks-audit-'));
      fs.writeFileSync(path.join(dir, 'anthropic.key'), `${fileKey}\n`);
      keyFileJson = JSON.stringify({ type: 'service_account', project_id: 'p', private_key_id: 'abc', private_key: pem, client_email: 'sa@p.iam.gserviceaccount.com' }, null, 2);
      fs.writeFileSync(path.join(dir, 'sa.json'), keyFileJson);
      gw = await startGateway(
        {
          audit: { bodies: mode },
          profiles: [
            { name: 'file', provider: 'anthropic', apiKeyFile: path.join(dir, 'anthropic.key'), baseUrl: upstream.url },
            { name: 'helper', provider: 'anthropic', apiKeyHelper: `echo ${helperKey}`, baseUrl: upstream.url },
            { name: 'bedrock', provider: 'bedrock', region: 'us-east-1', awsProfile: 'proc', endpoint: bedrock.url },
            { name: 'vertex', provider: 'vertex', projectId: 'p', region: 'us-east5', keyFile: path.join(dir, 'sa.json'), endpoint: 'http://127.0.0.1:9' },
          ],
        },
        { env: { ...aws.env, HOME: dir } },
      );
    });
    after(async () => {
      await gw.close();
      await Promise.all([upstream.stop(), bedrock.stop()]);
      aws.cleanup();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    const send = (profile: string, body: Record<string, unknown>) =>
      fetch(`${gw.url}/profiles/${profile}/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01', 'x-note': `seen ${gw.key}` },
        body: JSON.stringify(body),
      });

    it('a tool result that printed every credential file is stored without any of them', async () => {
      // The helper and credential_process run on first use: their output exists nowhere before.
      for (const profile of ['helper', 'bedrock']) {
        const res = await send(profile, { model: 'claude-haiku-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] });
        assert.equal(res.status, 200, `${profile}: ${await res.text()}`);
        await res.arrayBuffer().catch(() => undefined);
      }
      const credentials = fs.readFileSync(aws.env.AWS_SHARED_CREDENTIALS_FILE, 'utf8');
      const processSecret = 'proc-secret-1';
      const processToken = bedrock.last!.headers['x-amz-security-token'] as string;
      assert.match(processToken, /^proc-token-1-/);
      const token = gw.runtime.keys.issueToken('test', 60_000);
      const printed = [
        `$ cat ~/.anthropic.key\n${fileKey}\n`,
        `$ ./get-key.sh\n${helperKey}\n`,
        `$ cat ~/.aws/credentials\n${credentials}`,
        `$ aws configure export-credentials --profile proc\n{"SecretAccessKey": "${processSecret}", "SessionToken": "${processToken}"}`,
        `$ cat sa.json\n${keyFileJson}`,
        `$ cat ~/.claude-code-gateway/data/token.secret\n${TOKEN_SECRET}\n$ echo $ANTHROPIC_AUTH_TOKEN\n${gw.key}\n${token}`,
      ].join('\n');
      const res = await send('file', {
        model: 'claude-haiku-4-5',
        max_tokens: 8,
        messages: [
          { role: 'user', content: 'show me the credentials' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'cat ...' } }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: printed }] },
        ],
      });
      assert.equal(res.status, 200, await res.text());
      const calls = await writtenCalls(gw.auditDir);
      const record = calls.find((c) => c.profile === 'file')!;
      const stored = (record.request as { body: string }).body;
      assert.match(stored, /show me the credentials/, 'the body is kept');
      assert.match(stored, /aws_access_key_id/, 'what is not secret is kept');

      const pemLines = pem.split('\n').filter((l) => l && !l.startsWith('-----') && l.length >= 8);
      const secrets: Record<string, string> = {
        'apiKeyFile contents': fileKey,
        'apiKeyHelper output': helperKey,
        'AWS secret (shared credentials, profile default)': 'test/default/secret/key/000000000000000000',
        'AWS secret (shared credentials, profile static)': 'test/static/secret/key/0000000000000000000',
        'AWS secret (credential_process)': processSecret,
        'AWS session token (credential_process)': processToken,
        'token secret': TOKEN_SECRET,
        'gateway key': gw.key,
        'gateway token': token,
      };
      pemLines.forEach((l, i) => (secrets[`service-account private key, line ${i + 1}`] = l));
      const text = allText(gw.auditDir);
      for (const [what, value] of Object.entries(secrets)) assert.ok(!text.includes(value), `${what} is in the audit log`);
    });

    it('a secret stored after start (a helper that rotates) is learnt when it is resolved', async () => {
      const fresh = generateKey();
      gw.runtime.heldSecrets.add(fresh);
      const res = await send('file', { model: 'claude-haiku-4-5', max_tokens: 8, messages: [{ role: 'user', content: `rotated: ${fresh}` }] });
      assert.equal(res.status, 200);
      await res.text();
      await writtenCalls(gw.auditDir);
      assert.ok(!allText(gw.auditDir).includes(fresh));
      assert.match(allText(gw.auditDir), /rotated: \[redacted\]/);
    });
  });
}

/** With audit.bodies "none" no body is stored, but error lines are: a failing apiKeyHelper's stderr can repeat a key. */
describe('abuse: a failing helper that prints a key leaves it in no error message and no audit line', () => {
  let upstream: MockAnthropic;
  let dir: string;
  let gw: TestGateway;
  const fileKey = `provider-key-in-a-file-${randomBytes(12).toString('hex')}`;

  before(async () => {
    upstream = await new MockAnthropic().start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-leaks-helper-'));
    const file = path.join(dir, 'anthropic.key');
    fs.writeFileSync(file, `${fileKey}\n`);
    gw = await startGateway({
      profiles: [
        { name: 'file', provider: 'anthropic', apiKeyFile: file, baseUrl: upstream.url },
        { name: 'broken', provider: 'anthropic', apiKeyHelper: `echo "rejected key $(cat '${file}')" >&2; exit 3`, baseUrl: upstream.url },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await upstream.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the 502 names the helper and its stderr with the key redacted; the audit line too', async () => {
    const send = (profile: string) =>
      fetch(`${gw.url}/profiles/${profile}/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
        body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }),
      });
    const ok = await send('file');
    assert.equal(ok.status, 200);
    await ok.text();
    const res = await send('broken');
    const text = await res.text();
    assert.equal(res.status, 502);
    assert.match(text, /apiKeyHelper of profile \\"broken\\" failed: exited with status 3 \(rejected key \[redacted\]\)/);
    assert.ok(!text.includes(fileKey), text);
    const calls = await writtenCalls(gw.auditDir);
    assert.match(String(calls.at(-1)!.error), /rejected key \[redacted\]/);
    assert.ok(!allText(gw.auditDir).includes(fileKey), 'the key is in the audit log');
  });
});
