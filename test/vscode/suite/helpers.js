// Shared helpers of the in-host suite (not a test file: index.js loads only *.test.js).
'use strict';

const assert = require('assert');
const net = require('net');
const vscode = require('vscode');

const EXTENSION_ID = 'claude-code-gateway.claude-code-gateway';

async function api() {
  const ext = vscode.extensions.getExtension(EXTENSION_ID);
  assert.ok(ext, `extension ${EXTENSION_ID} not found`);
  return ext.activate();
}

async function setSetting(key, value, target = vscode.ConfigurationTarget.Global) {
  await vscode.workspace.getConfiguration('claudeGateway').update(key, value, target);
}

/** Resolves with check()'s first truthy value; rejects after timeoutMs. Checks on every tick, not on a fixed sleep. */
function waitFor(check, what, timeoutMs = 5000) {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      let value;
      try {
        value = check();
      } catch {
        value = undefined;
      }
      if (value) return resolve(value);
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 25);
    };
    tick();
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** One Messages call through the gateway with a key; `stream` reads the SSE body to the end. */
async function callGateway(url, key, { stream = false, path = '/anthropic/v1/messages', model = 'claude-sonnet-4-5-20250929' } = {}) {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model, max_tokens: 16, stream, messages: [{ role: 'user', content: 'say pong' }] }),
  });
  const text = await res.text();
  return { status: res.status, text, requestId: res.headers.get('x-gateway-request-id') };
}

module.exports = { api, setSetting, waitFor, freePort, callGateway, EXTENSION_ID };
