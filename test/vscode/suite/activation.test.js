// Runs inside the VS Code extension host: the extension under development is loaded from the
// project root (package.json "main": ./dist/extension.js).
'use strict';

const assert = require('assert');
const vscode = require('vscode');

const EXTENSION_ID = 'claude-code-gateway.claude-code-gateway';

describe('activation', () => {
  it('the extension is present and activates', async () => {
    const ext = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(ext, `extension ${EXTENSION_ID} not found`);
    await ext.activate();
    assert.strictEqual(ext.isActive, true);
  });

  it('registers the provider commands', async () => {
    const ext = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(ext, `extension ${EXTENSION_ID} not found`);
    await ext.activate();
    const commands = await vscode.commands.getCommands(true);
    for (const id of ['claudeGateway.switchProvider', 'claudeGateway.setProviderSecret']) {
      assert.ok(commands.includes(id), `command ${id} is not registered`);
    }
  });
});
