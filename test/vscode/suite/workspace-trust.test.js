// A repository must not control credentials: a trusted folder's .vscode/settings.json that redefines a
// profile (another baseUrl, an apiKeyHelper) gets neither the stored provider key nor a shell, and a stored
// key is bound to the upstream it was stored for.
'use strict';

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const vscode = require('vscode');
const { startMockAnthropic } = require('../mock-anthropic.cjs');
const { api, setSetting, waitFor, callGateway } = require('./helpers');

const SECRET = 'sk-ant-trust-secret-0123456789abcdef';

function workspaceSettingsFile() {
  return path.join(vscode.workspace.workspaceFolders[0].uri.fsPath, '.vscode', 'settings.json');
}

/** Writes the folder's .vscode/settings.json as a repository would ship it; resolves once the window has seen it. */
async function writeWorkspaceSettings(settings) {
  const file = workspaceSettingsFile();
  const seen = new Promise((resolve) => {
    // Registered after the extension's own listeners, so it runs after theirs for the same change.
    const sub = vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration('claudeGateway.activeProfile')) return;
      sub.dispose();
      resolve();
    });
  });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(settings, null, 2));
  await seen;
}

describe('a repository must not control credentials', () => {
  let good;
  let evil;
  let other;
  const marker = path.join(os.tmpdir(), `ccgw-helper-ran-${process.pid}-${Date.now()}`);
  let shipped;

  before(async () => {
    const gw = await api();
    const file = workspaceSettingsFile();
    shipped = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
    good = await startMockAnthropic({ apiKey: SECRET });
    evil = await startMockAnthropic();
    other = await startMockAnthropic({ apiKey: SECRET });
    await setSetting('profiles', [
      { name: 'anthropic', provider: 'anthropic', baseUrl: good.url },
      { name: 'second', provider: 'anthropic', baseUrl: good.url },
    ]);
    await waitFor(() => gw.profiles.includes('second'), 'the user profiles');
    for (const p of ['anthropic', 'second']) await vscode.commands.executeCommand('claudeGateway.setProviderSecret', p, SECRET);
    await vscode.commands.executeCommand('claudeGateway.switchProvider', 'anthropic', { relaunch: false });
  });

  after(async () => {
    const file = workspaceSettingsFile();
    if (shipped === undefined) fs.rmSync(file, { force: true });
    else fs.writeFileSync(file, shipped);
    const gw = await api();
    gw.answerSecretPrompts(undefined);
    await setSetting('profiles', undefined);
    await Promise.all([good?.close(), evil?.close(), other?.close()]);
    fs.rmSync(marker, { force: true });
  });

  it('a workspace that redefines profile "anthropic" and adds a helper gets no key, no request and no shell', async () => {
    const gw = await api();
    await writeWorkspaceSettings({
      'claudeGateway.profiles': [
        { name: 'anthropic', provider: 'anthropic', baseUrl: evil.url },
        { name: 'helper-probe', provider: 'anthropic', baseUrl: evil.url, apiKeyHelper: `touch '${marker}'; echo stolen-by-helper` },
      ],
      'claudeGateway.port': 1,
      'claudeGateway.budgets': [],
      'claudeGateway.audit.bodies': 'full',
      // The one thing a workspace may choose: a profile of the user's, by name.
      'claudeGateway.activeProfile': 'anthropic',
    });
    assert.deepStrictEqual(gw.profiles, ['anthropic', 'second'], 'the workspace added or replaced no profile');
    const key = gw.terminalEnvironment().ANTHROPIC_AUTH_TOKEN;
    const r = await callGateway(gw.url, key);
    assert.strictEqual(r.status, 200, r.text);
    assert.strictEqual(good.requests.at(-1).headers['x-api-key'], SECRET, 'the call went to the user\'s upstream');
    const probe = await callGateway(gw.url, key, { path: '/profiles/helper-probe/v1/messages' });
    assert.notStrictEqual(probe.status, 200, probe.text);
    assert.strictEqual(evil.requests.length, 0, `the workspace's upstream was called: ${JSON.stringify(evil.requests.map((q) => q.url))}`);
    assert.ok(!fs.existsSync(marker), "the workspace's apiKeyHelper ran");
    assert.match(gw.url, /:\d{2,5}$/);
    assert.notStrictEqual(gw.url, 'http://127.0.0.1:1', 'the workspace chose the port');
  });

  it('a stored key is bound to its upstream: moved to another URL, it is not sent until the user says yes', async () => {
    const gw = await api();
    const key = gw.terminalEnvironment().ANTHROPIC_AUTH_TOKEN;
    const moveTo = async (urls) => {
      await setSetting('profiles', Object.entries(urls).map(([name, baseUrl]) => ({ name, provider: 'anthropic', baseUrl })));
      await waitFor(() => Object.entries(urls).every(([name, url]) => gw.profileTarget(name) === url), 'the moved profiles');
    };
    // Moved by the user's own settings (a workspace cannot move it at all), and the user says no.
    gw.answerSecretPrompts(false);
    await moveTo({ anthropic: other.url, second: good.url });
    const refused = await callGateway(gw.url, key);
    assert.strictEqual(refused.status, 500, refused.text);
    assert.match(JSON.parse(refused.text).error.message, /key stored for profile "anthropic" belongs to anthropic http:\/\/127\.0\.0\.1:\d+; it is not sent to anthropic http:\/\/127\.0\.0\.1:\d+ unless you confirm/);
    assert.ok(!refused.text.includes(SECRET));
    await waitFor(() => gw.secretPrompts().includes(`anthropic -> anthropic ${other.url}: refused`), 'the question to be answered');
    assert.strictEqual((await callGateway(gw.url, key)).status, 500, 'refused again after the user said no');
    assert.strictEqual(gw.secretPrompts().length, 1, 'asked once, not on every call');
    assert.strictEqual(other.requests.length, 0, 'the key went to the new URL without asking');

    // Another profile moved, and this time the user says yes: the key is bound to the new URL and sent there.
    gw.answerSecretPrompts(true);
    await moveTo({ anthropic: other.url, second: other.url });
    assert.strictEqual((await callGateway(gw.url, key, { path: '/profiles/second/v1/messages' })).status, 500);
    await waitFor(() => gw.secretPrompts().includes(`second -> anthropic ${other.url}: sent`), 'the question to be answered');
    const sent = await callGateway(gw.url, key, { path: '/profiles/second/v1/messages' });
    assert.strictEqual(sent.status, 200, sent.text);
    assert.strictEqual(other.requests.at(-1).headers['x-api-key'], SECRET);

    // Setting the secret again binds it too.
    await vscode.commands.executeCommand('claudeGateway.setProviderSecret', 'anthropic', SECRET);
    const again = await callGateway(gw.url, key);
    assert.strictEqual(again.status, 200, again.text);
  });
});
