// Window A of the two-window test: the first window binds the configured port and serves the gateway.
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const vscode = require('vscode');
const { api } = require('../suite/helpers');

describe('window A (first extension host)', () => {
  it('serves the gateway on the configured port', async () => {
    const gw = await api();
    const port = vscode.workspace.getConfiguration('claudeGateway').get('port');
    assert.strictEqual(gw.mode, 'serving');
    assert.strictEqual(gw.url, `http://127.0.0.1:${port}`);
    const health = await fetch(`${gw.url}/health`);
    assert.strictEqual(health.status, 200);
    const info = { url: gw.url, port, mode: gw.mode, pid: process.pid, auditDir: gw.auditDir, windowKeyId: gw.windowKeyId };
    const file = path.join(process.env.CCGW_MW_DIR, 'window-a.json');
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(info));
    fs.renameSync(`${file}.tmp`, file);
  });
});
