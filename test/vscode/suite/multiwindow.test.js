// One gateway per machine: a second "window" attaches to the serving one through /health and the control
// file, follows its /events stream, and takes over the same port when the serving window goes away.
// Both windows are GatewayControllers in this extension host, talking over real HTTP.
'use strict';

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const vscode = require('vscode');
const { startMockAnthropic } = require('../mock-anthropic.cjs');
const { api, setSetting, waitFor, freePort, callGateway } = require('./helpers');

describe('several windows share one gateway', () => {
  let mock;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-peers-'));
  const peers = [];

  before(async () => {
    const gw = await api();
    mock = await startMockAnthropic();
    await setSetting('profiles', [{ name: 'shared', provider: 'anthropic', baseUrl: mock.url, apiKey: 'sk-inline-for-test' }]);
    await waitFor(() => gw.profiles.includes('shared'), 'the profile');
  });

  after(async function () {
    this.timeout(30000);
    // Clients first, then the serving window, so no takeover starts while the suite tears down.
    const order = [...peers].sort((x, y) => (x.mode === 'serving') - (y.mode === 'serving'));
    for (const p of order) await p.dispose();
    await setSetting('profiles', undefined);
    await mock?.close();
  });

  it('the second window attaches, sees calls made anywhere, and takes over the port when the first closes', async function () {
    this.timeout(20000);
    const gw = await api();
    const port = await freePort();
    const a = await gw.createPeer({ port, label: 'A', dataDir: path.join(tmp, 'a') });
    peers.push(a);
    assert.strictEqual(a.mode, 'serving');
    const b = await gw.createPeer({ port, label: 'B', dataDir: path.join(tmp, 'b') });
    peers.push(b);
    assert.strictEqual(b.mode, 'client');
    assert.strictEqual(b.url, a.url);

    // B's key works on A's gateway, and B's meter sees the call through the event stream.
    const r = await callGateway(b.url, b.key, { stream: true });
    assert.strictEqual(r.status, 200, r.text);
    await waitFor(() => b.usage().recent.some((c) => c.id === r.requestId), "B's meter to see the call");
    await waitFor(() => a.usage().recent.some((c) => c.id === r.requestId), "A's meter to see it");

    // The event stream needs an admin key: B's window key is not one.
    assert.strictEqual((await fetch(`${a.url}/events`)).status, 401);
    assert.strictEqual((await fetch(`${a.url}/events`, { headers: { authorization: `Bearer ${b.key}` } })).status, 403);

    // A closes: B binds the same port within a few seconds; its key and terminal URL stay valid.
    const t0 = Date.now();
    await a.dispose();
    peers.shift();
    await waitFor(() => b.mode === 'serving', 'B to take over', 5000);
    const tookMs = Date.now() - t0;
    assert.strictEqual(b.url, `http://127.0.0.1:${port}`);
    const again = await callGateway(b.url, b.key);
    assert.strictEqual(again.status, 200, again.text);
    await waitFor(() => b.usage().recent.some((c) => c.id === again.requestId), "B's meter after the takeover");
    assert.ok(b.usage().recent.some((c) => c.id === r.requestId), 'the call from before the takeover is still counted');
    console.log(`      takeover in ${tookMs} ms`);
  });

  it('a third window attaches to whichever window serves now', async () => {
    const gw = await api();
    const port = await freePort();
    const a = await gw.createPeer({ port, label: 'A2', dataDir: path.join(tmp, 'a2') });
    peers.push(a);
    const b = await gw.createPeer({ port, label: 'B2', dataDir: path.join(tmp, 'b2') });
    peers.push(b);
    const c = await gw.createPeer({ port, label: 'C2', dataDir: path.join(tmp, 'c2') });
    peers.push(c);
    assert.deepStrictEqual([a.mode, b.mode, c.mode], ['serving', 'client', 'client']);
    await a.dispose();
    peers.splice(peers.indexOf(a), 1);
    await waitFor(() => [b.mode, c.mode].sort().join() === 'client,serving', 'one to serve and the other to attach', 6000);
    for (const p of [b, c]) {
      const r = await callGateway(`http://127.0.0.1:${port}`, p.key);
      assert.strictEqual(r.status, 200, r.text);
    }
    void vscode;
  });
});
