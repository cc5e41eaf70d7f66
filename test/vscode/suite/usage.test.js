// The usage meter, the dashboard and the commands, against a local Anthropic-format upstream.
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const vscode = require('vscode');
const { startMockAnthropic } = require('../mock-anthropic.cjs');
const { api, setSetting, waitFor, callGateway } = require('./helpers');

describe('usage meter and commands', () => {
  let mock;
  const SECRET = 'sk-ant-mock-secret-0123456789abcdef';

  before(async () => {
    const gw = await api();
    mock = await startMockAnthropic({ apiKey: SECRET });
    await setSetting('budgets', [{ scope: 'global', usd: 0.01, period: 'day' }]);
    await setSetting('profiles', [
      { name: 'mock', provider: 'anthropic', baseUrl: mock.url },
      { name: 'mock-2', provider: 'anthropic', baseUrl: mock.url },
      { name: 'mock-unified', provider: 'anthropic', baseUrl: mock.url, mode: 'unified' },
      { name: 'bedrock-x', provider: 'bedrock', region: 'us-east-1', awsProfile: 'none' },
      { name: 'no-secret', provider: 'litellm', baseUrl: mock.url },
    ]);
    await waitFor(() => gw.profiles.includes('no-secret'), 'the profiles to reach the gateway');
    for (const p of ['mock', 'mock-2', 'mock-unified']) await vscode.commands.executeCommand('claudeGateway.setProviderSecret', p, SECRET);
    await vscode.commands.executeCommand('claudeGateway.switchProvider', 'mock', { relaunch: false });
  });

  after(async () => {
    await setSetting('profiles', undefined);
    await setSetting('budgets', undefined);
    await mock?.close();
  });

  it('the status bar shows the profile and today\'s spend, and the spend rises when a call settles', async () => {
    const gw = await api();
    assert.match(gw.statusText, /^\$\(cloud\) mock \$0\.00 · 0%$/);
    const r = await callGateway(gw.url, gw.terminalEnvironment().ANTHROPIC_AUTH_TOKEN, { stream: true });
    assert.strictEqual(r.status, 200, r.text);
    const text = await waitFor(() => (/\$0\.0096/.test(gw.statusText) ? gw.statusText : undefined), 'the meter to show the call');
    assert.match(text, /mock \$0\.0096 · 96%/);
    assert.strictEqual(gw.statusSeverity, 'warning', 'warning background at 80 % of a budget');
    const tip = gw.statusTooltip;
    assert.match(tip, /\| claude-sonnet-4-5-20250929 \| 1 \| 1200 \| 300 \| 0 \| 5000 \| \$0\.0096 \|/, tip);
    assert.match(tip, /global · day \$0\.01/);
    assert.match(tip, new RegExp(`Gateway: \`${gw.url.replace(/[.]/g, '\\.')}\``));
  });

  it('a spinning icon while a call streams, gone when it settles', async () => {
    const gw = await api();
    mock.hold = true;
    const pending = callGateway(gw.url, gw.terminalEnvironment().ANTHROPIC_AUTH_TOKEN, { stream: true });
    await waitFor(() => gw.statusText.startsWith('$(sync~spin)'), 'the spinning icon');
    mock.hold = false;
    mock.release();
    assert.strictEqual((await pending).status, 200);
    await waitFor(() => gw.statusText.startsWith('$(cloud)'), 'the icon to stop');
    assert.strictEqual(gw.statusSeverity, 'error', 'error background past 100 % of a budget');
    assert.match(gw.statusText, /192%/);
    // Past the budget the gateway refuses calls (billing_error); lift it for the rest of the suite.
    const refused = await callGateway(gw.url, gw.terminalEnvironment().ANTHROPIC_AUTH_TOKEN);
    assert.strictEqual(refused.status, 429);
    await setSetting('budgets', undefined);
    await waitFor(() => !/%/.test(gw.statusText), 'the budget to go from the meter');
  });

  it('Show Usage opens the dashboard and sends it the calls', async () => {
    const gw = await api();
    await vscode.commands.executeCommand('claudeGateway.showUsage');
    const msg = await waitFor(() => gw.dashboardMessage(), 'the dashboard to be fed');
    assert.ok(msg.snapshot.recent.length >= 2);
    assert.strictEqual(msg.snapshot.recent[0].model, 'claude-sonnet-4-5-20250929');
    assert.strictEqual(msg.snapshot.days.length, 14);
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });

  it('Switch Provider reports a wire-format change and relaunches Claude terminals only then', async () => {
    const gw = await api();
    let r = await vscode.commands.executeCommand('claudeGateway.switchProvider', 'mock-2', { relaunch: true });
    assert.deepStrictEqual(r, { profile: 'mock-2', wireFormatChanged: false, relaunched: 0 });
    const t = vscode.window.createTerminal({ name: 'claude session' });
    r = await vscode.commands.executeCommand('claudeGateway.switchProvider', 'bedrock-x', { relaunch: true });
    assert.strictEqual(r.wireFormatChanged, true);
    assert.strictEqual(r.relaunched, 1);
    await waitFor(() => !vscode.window.terminals.includes(t), 'the old terminal to be replaced');
    assert.strictEqual(gw.terminalEnvironment().CLAUDE_CODE_USE_BEDROCK, '1');
    r = await vscode.commands.executeCommand('claudeGateway.switchProvider', 'mock-unified', { relaunch: false });
    assert.strictEqual(r.wireFormatChanged, true);
    assert.strictEqual(gw.terminalEnvironment().ANTHROPIC_BASE_URL, gw.url);
    for (const term of vscode.window.terminals) term.dispose();
    await vscode.commands.executeCommand('claudeGateway.switchProvider', 'mock', { relaunch: false });
  });

  it('a profile without its secret warns with a Set Secret action', async () => {
    const gw = await api();
    await vscode.commands.executeCommand('claudeGateway.switchProvider', 'no-secret', { relaunch: false });
    await waitFor(() => gw.secretWarnings().includes('no-secret'), 'the missing-secret warning');
    await vscode.commands.executeCommand('claudeGateway.switchProvider', 'mock', { relaunch: false });
  });

  it('Test Connection reports the model reached and the latency, or the error and the fix', async () => {
    const ok = await vscode.commands.executeCommand('claudeGateway.testConnection', 'mock');
    assert.strictEqual(ok.ok, true, ok.message);
    assert.ok(ok.latencyMs >= 0 && ok.model);
    const bad = await vscode.commands.executeCommand('claudeGateway.testConnection', 'no-secret');
    assert.strictEqual(bad.ok, false);
    assert.match(bad.message, /Set Provider Secret/);
  });

  it('Copy Environment gives export lines with a short-lived token the gateway accepts', async () => {
    const gw = await api();
    const text = await vscode.commands.executeCommand('claudeGateway.copyEnvironment', 'sh');
    assert.match(text, new RegExp(`export ANTHROPIC_BASE_URL="${gw.url}/anthropic"`));
    const token = /ANTHROPIC_AUTH_TOKEN="([^"]+)"/.exec(text)[1];
    assert.ok(token.startsWith('ccgwt1.'), 'a signed token, not the window key');
    assert.ok(!text.includes(SECRET));
    assert.strictEqual(await vscode.env.clipboard.readText(), text);
    const res = await fetch(`${gw.url}/anthropic/v1/models`, { headers: { authorization: `Bearer ${token}` } });
    assert.strictEqual(res.status, 200);
  });

  it('Add Profile writes a validated profile to settings and its secret to secret storage', async () => {
    const gw = await api();
    const secret = 'sk-litellm-added-0123456789';
    const name = await vscode.commands.executeCommand('claudeGateway.addProfile', { name: 'added', provider: 'litellm', baseUrl: mock.url }, { target: 'user', secret });
    assert.strictEqual(name, 'added');
    await waitFor(() => gw.profiles.includes('added'), 'the added profile');
    const inspected = vscode.workspace.getConfiguration('claudeGateway').inspect('profiles');
    assert.ok(inspected.globalValue.some((p) => p.name === 'added'));
    assert.ok(!JSON.stringify(inspected).includes(secret), 'secret in settings');
    await assert.rejects(() => vscode.commands.executeCommand('claudeGateway.addProfile', { name: 'bad', provider: 'bedrock' }, { target: 'user' }), /region/);
  });

  it('Verify Audit Log finds the log intact, with every call recorded', async () => {
    const r = await vscode.commands.executeCommand('claudeGateway.verifyAuditLog', true);
    assert.strictEqual(r.intact, true, JSON.stringify(r.tamper));
    assert.ok(r.records >= 3, `records: ${r.records}`);
    const file = await vscode.commands.executeCommand('claudeGateway.openAuditLog');
    assert.ok(file && path.basename(file).startsWith('audit-'));
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });

  it('Configure Claude Code Extension merges the gateway variables into user settings, never into a workspace file', async () => {
    const gw = await api();
    const cc = () => vscode.workspace.getConfiguration('claudeCode');
    const userEntries = () => cc().inspect('environmentVariables').globalValue;
    await cc().update('environmentVariables', [{ name: 'DISABLE_TELEMETRY', value: '1' }, { name: 'ANTHROPIC_BASE_URL', value: 'http://127.0.0.1:9/stale' }], vscode.ConfigurationTarget.Global);
    // The folder ships settings of its own, and the entries an earlier version wrote there (with a gateway key).
    const dir = path.join(vscode.workspace.workspaceFolders[0].uri.fsPath, '.vscode');
    const file = path.join(dir, 'settings.json');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      file,
      JSON.stringify({ 'editor.tabSize': 3, 'claudeCode.environmentVariables': [{ name: 'ANTHROPIC_AUTH_TOKEN', value: 'ccgw-written-by-an-earlier-version' }, { name: 'ANTHROPIC_BASE_URL', value: 'http://127.0.0.1:9' }] }),
    );
    await waitFor(() => cc().inspect('environmentVariables').workspaceValue, 'the workspace value');

    assert.strictEqual(await vscode.commands.executeCommand('claudeGateway.configureClaudeCodeExtension', true), true);
    assert.strictEqual(await vscode.commands.executeCommand('claudeGateway.configureClaudeCodeExtension', true), true);
    const names = userEntries().map((v) => v.name);
    assert.deepStrictEqual(names, [...new Set(names)], 'each variable once, after two runs');
    const vars = Object.fromEntries(userEntries().map((v) => [v.name, v.value]));
    assert.strictEqual(vars.DISABLE_TELEMETRY, '1', "the user's own entry is kept");
    assert.strictEqual(vars.ANTHROPIC_BASE_URL, `${gw.url}/anthropic`);
    assert.ok(vars.ANTHROPIC_AUTH_TOKEN.startsWith('ccgw-') && vars.ANTHROPIC_AUTH_TOKEN !== gw.terminalEnvironment().ANTHROPIC_AUTH_TOKEN);
    assert.strictEqual(cc().inspect('disableLoginPrompt').globalValue, true);
    const sync = vscode.workspace.getConfiguration('settingsSync').inspect('ignoredSettings');
    if (sync?.defaultValue !== undefined) assert.ok(sync.globalValue.includes('claudeCode.environmentVariables'), 'the key would leave the machine with Settings Sync');
    assert.ok(!JSON.stringify(vars).includes(SECRET));

    // Nothing of the gateway in the workspace: the earlier entries are gone, the folder's own settings stay,
    // and the user's value is the one the Claude Code extension reads.
    const text = await waitFor(() => {
      const t = fs.readFileSync(file, 'utf8');
      return t.includes('claudeCode.environmentVariables') ? undefined : t;
    }, 'the workspace file to lose the old entries');
    assert.ok(!/ccgw-/.test(text), text);
    assert.strictEqual(JSON.parse(text)['editor.tabSize'], 3);
    assert.deepStrictEqual(cc().get('environmentVariables'), userEntries());
    const r = await callGateway(gw.url, vars.ANTHROPIC_AUTH_TOKEN);
    assert.strictEqual(r.status, 200, r.text);
    fs.rmSync(file);
  });
});
