// Window B of the two-window test: a second extension host finds window A's gateway, attaches as a
// client, sees its own calls through the event stream, and takes over the same port when A's page closes.
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const vscode = require('vscode');
const { api, waitFor, callGateway } = require('../suite/helpers');

const dir = process.env.CCGW_MW_DIR;
const readJson = (name) => JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));

function auditIds(auditDir) {
  const ids = new Set();
  for (const f of fs.readdirSync(auditDir).filter((n) => n.endsWith('.jsonl'))) {
    for (const line of fs.readFileSync(path.join(auditDir, f), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line);
        if (r.id) ids.add(r.id);
      } catch {}
    }
  }
  return ids;
}

describe('window B (second extension host)', () => {
  let gw;
  let a;
  let key;
  let firstCall;

  before(async () => {
    gw = await api();
    a = readJson('window-a.json');
  });

  it("attaches as a client to window A's gateway, and its terminals point at the same port", async () => {
    assert.notStrictEqual(process.pid, a.pid, 'the two windows run in separate extension host processes');
    assert.strictEqual(gw.mode, 'client');
    assert.strictEqual(gw.url, a.url);
    const env = gw.terminalEnvironment();
    assert.strictEqual(env.ANTHROPIC_BASE_URL, `${a.url}/anthropic`);
    key = env.ANTHROPIC_AUTH_TOKEN;
    assert.ok(key && key.length > 20, 'the terminal environment carries B’s window key');
    assert.notStrictEqual(gw.windowKeyId, a.windowKeyId);
  });

  it("a call with B's key goes through A's gateway and shows in B's meter (event stream)", async () => {
    const r = await callGateway(gw.url, key, { stream: true });
    assert.strictEqual(r.status, 200, r.text);
    assert.ok(r.requestId);
    await waitFor(() => gw.usage().recent.some((c) => c.id === r.requestId), "B's meter to see the call");
    firstCall = r.requestId;
  });

  it('a folder that pins another profile gets a terminal environment scoped to it (multi-root workspace)', async () => {
    assert.deepStrictEqual(
      (vscode.workspace.workspaceFolders || []).map((f) => f.name),
      ['window-b', 'window-b-pinned'],
    );
    assert.strictEqual(gw.profile, 'mock');
    // The first folder has no setting of its own: the window's collection applies, nothing scoped.
    assert.deepStrictEqual(gw.folderTerminalEnvironment('window-b'), {});
    // Applied on the workspace-folder and configuration events, which can follow activation.
    await waitFor(() => gw.folderTerminalEnvironment('window-b-pinned').ANTHROPIC_BASE_URL, 'the scoped collection of window-b-pinned');
    const scoped = gw.folderTerminalEnvironment('window-b-pinned');
    assert.strictEqual(scoped.ANTHROPIC_BASE_URL, `${a.url}/profiles/pinned/anthropic`);
    assert.strictEqual(scoped.ANTHROPIC_AUTH_TOKEN, key);
    // The window-wide environment is unchanged by the scoped one.
    assert.strictEqual(gw.terminalEnvironment().ANTHROPIC_BASE_URL, `${a.url}/anthropic`);
    // What a terminal of that folder would send reaches the folder's profile.
    const r = await callGateway(gw.url, key, { path: '/profiles/pinned/anthropic/v1/messages' });
    assert.strictEqual(r.status, 200, r.text);
    const call = await waitFor(() => gw.usage().recent.find((c) => c.id === r.requestId), "B's meter to see the folder's call");
    assert.strictEqual(call.profile, 'pinned');
  });

  it('takes over the same port within a few seconds when A’s page closes', async function () {
    this.timeout(30000);
    fs.writeFileSync(path.join(dir, 'close-a'), String(Date.now()));
    await waitFor(() => fs.existsSync(path.join(dir, 'a-closed')), 'the driver to close page A', 15000);
    const closedAt = Number(fs.readFileSync(path.join(dir, 'a-closed'), 'utf8'));
    await waitFor(() => gw.mode === 'serving', 'B to serve', 10000);
    const tookMs = Date.now() - closedAt;
    console.log(`      takeover ${tookMs} ms after page A closed`);
    assert.ok(tookMs < 8000, `takeover took ${tookMs} ms`);
    assert.strictEqual(gw.url, a.url);
    assert.strictEqual(gw.terminalEnvironment().ANTHROPIC_BASE_URL, `${a.url}/anthropic`);
    assert.strictEqual(gw.folderTerminalEnvironment('window-b-pinned').ANTHROPIC_BASE_URL, `${a.url}/profiles/pinned/anthropic`);
    fs.writeFileSync(path.join(dir, 'takeover.json'), JSON.stringify({ tookMs, url: gw.url, auditDir: gw.auditDir }));
  });

  it('the call made while A served is still in the audit log', async () => {
    assert.strictEqual(gw.auditDir, a.auditDir);
    assert.ok(auditIds(gw.auditDir).has(firstCall), `${firstCall} not found in ${gw.auditDir}`);
  });

  it("a new call with B's key succeeds on the gateway B now serves, and is audited", async () => {
    const r = await callGateway(gw.url, key);
    assert.strictEqual(r.status, 200, r.text);
    await waitFor(() => gw.usage().recent.some((c) => c.id === r.requestId), "B's meter to see the new call");
    await waitFor(() => auditIds(gw.auditDir).has(r.requestId), 'the new call in the audit log');
    assert.ok(gw.usage().recent.some((c) => c.id === firstCall), 'the call from before the takeover still counts');
  });
});
