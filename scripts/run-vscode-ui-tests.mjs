#!/usr/bin/env node
// UI journey of the packaged extension in a real VS Code workbench (code-server + Debian's Chromium via
// playwright-core): Switch Provider from the command palette, the status bar shows the profile, the real
// Claude Code CLI runs in an integrated terminal through the gateway against a local mock upstream, the
// status bar spend rises, and the dashboard lists the call. A screenshot of every step is saved in
// test-results/vscode-ui-journey-*/ (CI artifacts).
//
//   npm run package && CCGW_VSIX=claude-code-gateway-0.1.0.vsix node scripts/run-vscode-ui-tests.mjs
//   node scripts/run-vscode-ui-tests.mjs        # without CCGW_VSIX: the VSIX in the project root, else dist/ in development mode
//
// Prints "N passed, N failed".
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';
import { createRun, extensionDir, installVsix, killGroup, launchBrowser, preflight, projectRoot, startCodeServer, workbenchUrl, writeUserSetup } from './vscode-harness.mjs';

const require = createRequire(import.meta.url);
const { startMockAnthropic } = require('../test/vscode/mock-anthropic.cjs');

const log = (...a) => console.log('[vscode-ui]', ...a);
const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8'));
const defaultVsix = path.join(projectRoot, `${pkg.name}-${pkg.version}.vsix`);
const vsix = process.env.CCGW_VSIX ? path.resolve(process.env.CCGW_VSIX) : fs.existsSync(defaultVsix) ? defaultVsix : '';
const STATUS = `[id="${pkg.publisher}.${pkg.name}.claudeGateway.status"] .statusbar-item-label`;
const CLAUDE = path.join(projectRoot, 'node_modules', '.bin', 'claude');
const MOCK_KEY = 'ui-mock-provider-key-0123456789';

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

async function palette(page, title) {
  for (let i = 0; i < 2; i++) await page.keyboard.press('Escape');
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget .quick-input-box input');
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  await input.fill(`>${title}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ state: 'visible', timeout: 10_000 });
  await page.keyboard.press('Enter');
}

async function statusText(page) {
  return (await page.locator(STATUS).first().innerText()).replace(/\s+/g, ' ').trim();
}

async function main() {
  const problems = preflight({ needMain: !vsix });
  if (!fs.existsSync(CLAUDE)) problems.push(`${CLAUDE} not found: run npm ci`);
  if (problems.length) {
    for (const p of problems) console.error(`[vscode-ui] ERROR: ${p}`);
    console.log('0 passed, 1 failed');
    return 1;
  }
  const mock = await startMockAnthropic({ apiKey: MOCK_KEY });
  const port = await freePort();
  process.env.CCGW_VSCODE_SETTINGS = JSON.stringify({
    'claudeGateway.port': port,
    'claudeGateway.profiles': [
      { name: 'other', provider: 'anthropic', baseUrl: 'http://127.0.0.1:9', apiKey: '${env:CCGW_UI_MOCK_KEY}' },
      { name: 'mock', provider: 'anthropic', baseUrl: mock.url, apiKey: '${env:CCGW_UI_MOCK_KEY}' },
    ],
    'claudeGateway.budgets': [{ scope: 'global', usd: 5, period: 'day' }],
    'terminal.integrated.defaultProfile.linux': 'bash',
  });
  const { RUN, runtimeDir, cleanup } = createRun('vscode-ui-journey');
  const workspace = writeUserSetup(RUN);
  const home = path.join(RUN, 'home');
  fs.mkdirSync(home, { recursive: true });
  log(`run dir: ${path.relative(process.cwd(), RUN) || RUN}; ${vsix ? `VSIX ${path.basename(vsix)}` : 'development mode'}`);

  const results = [];
  let page;
  let shot = 0;
  const check = async (name, fn) => {
    const t = Date.now();
    try {
      await fn();
      results.push({ name, ok: true });
      log(`ok   ${name} (${Date.now() - t} ms)`);
    } catch (e) {
      results.push({ name, ok: false, message: e && e.message ? e.message : String(e) });
      log(`FAIL ${name}: ${e && e.message ? e.message.split('\n')[0] : e}`);
    }
    if (page) {
      const file = path.join(RUN, `${String(++shot).padStart(2, '0')}-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.png`);
      await page.screenshot({ path: file, timeout: 10_000 }).catch(() => {});
    }
  };

  let server;
  let browser;
  const pageLog = fs.createWriteStream(path.join(RUN, 'page.log'));
  const t0 = Date.now();
  try {
    if (vsix) installVsix(RUN, runtimeDir, vsix);
    server = startCodeServer(RUN, runtimeDir, {
      CCGW_UI_MOCK_KEY: MOCK_KEY,
      HOME: home,
      DISABLE_TELEMETRY: '1',
      DISABLE_ERROR_REPORTING: '1',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      DISABLE_AUTOUPDATER: '1',
    });
    const csPort = await server.port;
    ({ browser, page } = await launchBrowser());
    page.on('pageerror', (err) => pageLog.write(`[page error] ${err.message}\n`));
    page.on('console', (msg) => pageLog.write(`[${msg.type()}] ${msg.text()}\n`));
    await page.exposeFunction('codeAutomationLog', (type, args) => pageLog.write(`[host:${type}] ${Array.isArray(args) ? args.join(' ') : args}\n`));
    await page.exposeFunction('codeAutomationExit', () => {});
    await page.goto(vsix ? workbenchUrl(csPort, workspace) : workbenchUrl(csPort, workspace, [['extensionDevelopmentPath', extensionDir]]), { waitUntil: 'domcontentloaded', timeout: 60_000 });

    await check('status bar meter appears', async () => {
      await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 60_000 });
      await page.locator(STATUS).first().waitFor({ state: 'visible', timeout: 30_000 });
      const text = await statusText(page);
      if (!/other \$0\.00/.test(text)) throw new Error(`status bar says "${text}"`);
    });

    await check('switch provider from the palette', async () => {
      await palette(page, 'Claude Gateway: Switch Provider');
      const input = page.locator('.quick-input-widget .quick-input-box input');
      await page.locator('.quick-input-list .monaco-list-row', { hasText: 'mock' }).first().waitFor({ state: 'visible', timeout: 10_000 });
      await input.fill('mock');
      await page.waitForTimeout(200);
      await page.keyboard.press('Enter');
      await page.waitForFunction((sel) => /mock \$0\.00/.test(document.querySelector(sel)?.textContent ?? ''), STATUS, { timeout: 10_000 });
    });

    await check('claude -p through the gateway in a terminal', async () => {
      await palette(page, 'Terminal: Create New Terminal');
      const rows = page.locator('.terminal-wrapper.active .xterm-rows');
      await rows.waitFor({ state: 'visible', timeout: 15_000 });
      await page.waitForFunction(() => /[$#]\s*$/m.test(document.querySelector('.terminal-wrapper.active .xterm-rows')?.textContent ?? ''), null, { timeout: 15_000 });
      await page.locator('.terminal-wrapper.active .xterm-helper-textarea').focus();
      await page.keyboard.type(`${CLAUDE} -p "say pong" --output-format json; echo CLAUDE_EXIT=$?`);
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => /CLAUDE_EXIT=\d/.test(document.querySelector('.terminal-wrapper.active .xterm-rows')?.textContent ?? ''), null, { timeout: 60_000 });
      const out = await rows.innerText();
      if (!/CLAUDE_EXIT=0/.test(out) || !/pong/.test(out)) throw new Error(`claude failed: ${out.slice(-600)}`);
      if (!mock.requests.some((r) => (r.url || '').includes('/v1/messages'))) throw new Error('the mock upstream saw no Messages call');
    });

    await check('status bar spend rises', async () => {
      await page.waitForFunction((sel) => /mock \$0\.(0*[1-9])/.test(document.querySelector(sel)?.textContent ?? ''), STATUS, { timeout: 10_000 });
      log(`status bar: ${await statusText(page)}`);
    });

    await check('dashboard lists the call', async () => {
      await palette(page, 'Claude Gateway: Show Usage');
      const deadline = Date.now() + 20_000;
      let rows = 0;
      while (Date.now() < deadline && !rows) {
        for (const f of page.frames()) {
          rows = await f.locator('#recent tbody tr[data-id]').count().catch(() => 0);
          if (rows) break;
        }
        if (!rows) await page.waitForTimeout(200);
      }
      if (!rows) throw new Error('no call in the dashboard table');
      await page.waitForTimeout(300);
    });
  } catch (e) {
    results.push({ name: 'harness', ok: false, message: e && e.message ? e.message : String(e) });
    console.error(`[vscode-ui] ERROR: ${e && e.message ? e.message : e}`);
  } finally {
    try {
      await browser?.close();
    } catch {}
    await killGroup(server?.child);
    await mock.close();
    pageLog.end();
    cleanup();
  }
  fs.writeFileSync(path.join(RUN, 'results.json'), JSON.stringify(results, null, 2));
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  for (const r of results.filter((x) => !x.ok)) console.log(`[vscode-ui] FAILED: ${r.name}\n${r.message}`);
  log(`screenshots in ${RUN} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

process.exitCode = await main();
