// Inside the real extension host: the gateway starts with the window, Switch Provider pins the window's
// key and rewrites the terminal environment, secrets stay out of settings and the environment.
'use strict';

const assert = require('assert');
const vscode = require('vscode');
const { api, setSetting, waitFor } = require('./helpers');

const setProfiles = (profiles) => setSetting('profiles', profiles);

describe('gateway in the extension host', () => {
  const PROFILES = [
    { name: 'anthropic', provider: 'anthropic' },
    { name: 'bedrock-us', provider: 'bedrock', region: 'us-west-2' },
    { name: 'vertex', provider: 'vertex', projectId: 'proj-1', region: 'us-east5' },
  ];

  before(async () => {
    const gw = await api();
    await setProfiles(PROFILES);
    await waitFor(() => gw.profiles.includes('vertex'), 'the profiles to reach the gateway');
  });

  after(async () => {
    await setProfiles(undefined);
  });

  it('activation starts the gateway on 127.0.0.1 and /health answers', async () => {
    const gw = await api();
    assert.match(gw.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${gw.url}/health`);
    assert.strictEqual(res.status, 200);
    const health = await res.json();
    assert.strictEqual(health.service, 'claude-code-gateway');
  });

  it('new terminals get the Claude Code environment with the window key, which the gateway accepts', async () => {
    const gw = await api();
    const env = await waitFor(() => {
      const e = gw.terminalEnvironment();
      return e.ANTHROPIC_BASE_URL ? e : undefined;
    }, 'the environment collection');
    assert.strictEqual(env.ANTHROPIC_BASE_URL, `${gw.url}/anthropic`);
    assert.ok(env.ANTHROPIC_AUTH_TOKEN && env.ANTHROPIC_AUTH_TOKEN.startsWith('ccgw-'), 'a gateway key, not a provider key');
    // The window key is accepted (the request then fails upstream for lack of a provider key, not for auth).
    const res = await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${env.ANTHROPIC_AUTH_TOKEN}` } });
    assert.notStrictEqual(res.status, 401);
    assert.notStrictEqual(res.status, 403);
    const wrong = await fetch(`${gw.url}/v1/models`, { headers: { authorization: 'Bearer not-the-key' } });
    assert.strictEqual(wrong.status, 403);
  });

  it('Switch Provider (the real command) pins the window to the profile and rewrites the environment', async () => {
    const gw = await api();
    await vscode.commands.executeCommand('claudeGateway.switchProvider', 'bedrock-us');
    assert.strictEqual(gw.profile, 'bedrock-us');
    const env = gw.terminalEnvironment();
    assert.strictEqual(env.CLAUDE_CODE_USE_BEDROCK, '1');
    assert.strictEqual(env.ANTHROPIC_BEDROCK_BASE_URL, `${gw.url}/bedrock`);
    assert.strictEqual(env.AWS_REGION, 'us-west-2');
    assert.strictEqual(env.ANTHROPIC_BASE_URL, undefined, 'the Anthropic variables are gone');
    assert.match(gw.statusText, /bedrock-us/);
    // The gateway routes this window's key to the new profile at once (a non-Messages call on /anthropic names it;
    // Messages calls there are translated for Bedrock, which the integration tests cover).
    const res = await fetch(`${gw.url}/anthropic/v1/files`, {
      headers: { authorization: `Bearer ${env.ANTHROPIC_AUTH_TOKEN}` },
    });
    assert.strictEqual(res.status, 400);
    assert.match((await res.json()).error.message, /Profile "bedrock-us" \(bedrock\)/);
    await vscode.commands.executeCommand('claudeGateway.switchProvider', 'vertex');
    assert.strictEqual(gw.terminalEnvironment().ANTHROPIC_VERTEX_PROJECT_ID, 'proj-1');
    await vscode.commands.executeCommand('claudeGateway.switchProvider', 'anthropic');
    assert.match(gw.statusText, /anthropic/);
  });

  it('Set Provider Secret stores the key in SecretStorage: never in settings or the terminal environment', async () => {
    const gw = await api();
    const secret = 'sk-ant-inhost-secret-0123456789';
    await vscode.commands.executeCommand('claudeGateway.setProviderSecret', 'anthropic', secret);
    const settings = JSON.stringify(vscode.workspace.getConfiguration('claudeGateway'));
    assert.ok(!settings.includes(secret), 'secret in settings');
    assert.ok(!JSON.stringify(gw.terminalEnvironment()).includes(secret), 'secret in the terminal environment');
  });

  it('settings changes apply live: a new profile becomes selectable without a reload', async () => {
    const gw = await api();
    await setProfiles([...PROFILES, { name: 'team-litellm', provider: 'litellm', baseUrl: 'http://127.0.0.1:9' }]);
    await waitFor(() => gw.profiles.includes('team-litellm'), 'the new profile to reach the gateway');
    await vscode.commands.executeCommand('claudeGateway.switchProvider', 'team-litellm');
    assert.strictEqual(gw.profile, 'team-litellm');
    assert.strictEqual(gw.terminalEnvironment().ANTHROPIC_BASE_URL, `${gw.url}/anthropic`);
    await vscode.commands.executeCommand('claudeGateway.switchProvider', 'anthropic');
  });
});
