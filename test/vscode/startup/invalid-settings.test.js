// The window starts with settings that do not validate (a Bedrock profile without its region):
// activation still succeeds, every command is registered and says why it cannot run, and fixing the
// settings starts the gateway without a reload.
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const vscode = require('vscode');
const { api, setSetting, waitFor, EXTENSION_ID } = require('../suite/helpers');

describe('invalid settings at startup', () => {
  after(async () => {
    await setSetting('profiles', undefined);
  });

  it('activation succeeds, every command is registered, and the problem is named', async () => {
    const gw = await api();
    const contributed = vscode.extensions.getExtension(EXTENSION_ID).packageJSON.contributes.commands.map((c) => c.command);
    const registered = await vscode.commands.getCommands(true);
    for (const id of contributed) assert.ok(registered.includes(id), `command ${id} is not registered`);
    assert.strictEqual(gw.mode, 'stopped');
    assert.match(gw.problem, /claudeGateway\.profiles\[0\]\.region/);
    assert.match(gw.statusTooltip, /not running: .*claudeGateway\.profiles\[0\]\.region/);
  });

  it('commands that need the gateway say why they cannot run', async () => {
    for (const [id, ...args] of [
      ['claudeGateway.switchProvider', 'no-region'],
      ['claudeGateway.testConnection', 'no-region'],
      ['claudeGateway.copyEnvironment', 'sh'],
      ['claudeGateway.setProviderSecret', 'no-region', 'x'],
      ['claudeGateway.configureClaudeCodeExtension', true],
    ]) {
      await assert.rejects(
        () => vscode.commands.executeCommand(id, ...args),
        (err) => /the gateway is not running: .*claudeGateway\.profiles\[0\]\.region.*Open Settings/.test(err.message),
        `${id} did not name the problem`,
      );
    }
  });

  it('fixing the settings starts the gateway without a reload', async () => {
    const gw = await api();
    await setSetting('profiles', [{ name: 'fixed', provider: 'bedrock', region: 'us-east-1' }]);
    await waitFor(() => gw.mode === 'serving', 'the gateway to start', 10000);
    assert.strictEqual(gw.problem, undefined);
    assert.strictEqual(gw.profile, 'fixed');
    assert.strictEqual((await fetch(`${gw.url}/health`)).status, 200);
    assert.strictEqual(gw.terminalEnvironment().CLAUDE_CODE_USE_BEDROCK, '1');
  });

  it('Configure Claude Code Extension without that extension installed writes nothing (no workspace file either)', async () => {
    assert.strictEqual(await vscode.commands.executeCommand('claudeGateway.configureClaudeCodeExtension', true), false);
    const file = path.join(vscode.workspace.workspaceFolders[0].uri.fsPath, '.vscode', 'settings.json');
    assert.ok(!fs.existsSync(file), fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
  });
});
