#!/usr/bin/env node
// "Several windows", tested with two extension hosts: one code-server, two workbench pages (two windows,
// so two separate Node extension hosts), each loading the extension under development from the project
// root and test/vscode/multiwindow/index.js. Window A (folder window-a) serves the gateway on a fixed free
// port; window B (folder window-b) attaches, makes a call through a local mock upstream, asks the driver
// to close page A (a file in RUN/mw), then checks it took over the same port, that the audit log kept the
// earlier call, and that a new call works. The driver then verifies the audit hash chain with the CLI.
//
//   node scripts/run-vscode-multiwindow.mjs
//
// Environment: CCGW_TOOLS_DIR, CCGW_EXTENSION_DIR, CCGW_CHROMIUM as for run-vscode-tests.mjs;
// CCGW_VSCODE_TIMEOUT_MS (default 90000). Prints "N passed, N failed"; exits non-zero on any failure.
// Logs (one per window), results and screenshots on failure stay in test-results/vscode-multiwindow-*/.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';
import { createRun, extensionDir, killGroup, launchBrowser, preflight, projectRoot, startCodeServer, workbenchUrl, writeUserSetup } from './vscode-harness.mjs';

const require = createRequire(import.meta.url);
const { startMockAnthropic } = require('../test/vscode/mock-anthropic.cjs');

const testsPath = path.join(projectRoot, 'test', 'vscode', 'multiwindow', 'index.js');
const timeoutMs = Number(process.env.CCGW_VSCODE_TIMEOUT_MS || 90_000);
const MOCK_KEY = 'mw-mock-provider-key-0123456789';
const QUIET = [/^Ignoring fetching additional builtin extensions/, /^Updating additional builtin extensions cache/];

const log = (...a) => console.log('[vscode-multiwindow]', ...a);
const fail = (m) => console.error(`[vscode-multiwindow] ERROR: ${m}`);

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

/** Resolves with check()'s first truthy value, checking every 50 ms; rejects after timeoutMs or when `abort` settles. */
function waitFor(check, what, timeoutMs, abort) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let done = false;
    abort?.then((v) => {
      if (!done) {
        done = true;
        reject(new Error(`${what}: ${v}`));
      }
    });
    const tick = () => {
      if (done) return;
      let v;
      try {
        v = check();
      } catch {
        v = undefined;
      }
      if (v) {
        done = true;
        return resolve(v);
      }
      if (Date.now() - started > timeoutMs) {
        done = true;
        return reject(new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`));
      }
      setTimeout(tick, 50);
    };
    tick();
  });
}

function writeFolder(dir, settings) {
  fs.mkdirSync(path.join(dir, '.vscode'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'README.md'), `# ${path.basename(dir)}\n`);
  if (settings) fs.writeFileSync(path.join(dir, '.vscode', 'settings.json'), JSON.stringify(settings, null, 2));
}

/** A workbench page running the in-host runner; resolves `exited` with the code it reports. */
async function openWindow(context, name, port, workspaceArg, RUN) {
  const page = await context.newPage();
  const hostLog = fs.createWriteStream(path.join(RUN, `${name}.log`));
  page.on('pageerror', (err) => hostLog.write(`[page error] ${err.message}\n`));
  let resolveExit;
  const exited = new Promise((r) => (resolveExit = r));
  await page.exposeFunction('codeAutomationExit', (code) => resolveExit(`extension host of ${name} exited with code ${code}`));
  await page.exposeFunction('codeAutomationLog', (type, args) => {
    const text = Array.isArray(args) ? args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ') : String(args);
    hostLog.write(`[${type}] ${text}\n`);
    if (QUIET.some((re) => re.test(text))) return;
    for (const line of text.split('\n')) console.log(`[${name}:${type}] ${line}`);
  });
  let url = workbenchUrl(port, workspaceArg.path, [
    ['extensionDevelopmentPath', extensionDir],
    ['extensionTestsPath', testsPath],
  ]);
  // A workspace file is read by the browser side: it needs the remote URI, not a bare path.
  if (workspaceArg.kind === 'workspace') {
    url = url.replace(/^([^?]*\?)folder=[^&]*/, `$1workspace=${encodeURIComponent(`vscode-remote://127.0.0.1:${port}${workspaceArg.path}`)}`);
  }
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60_000 });
  return { page, exited, hostLog };
}

/** Set when the workbench opened window B's workspace without its folders (a harness hiccup, not a product failure). */
let workspaceNotLoaded = false;

async function main({ lastTry = true } = {}) {
  const problems = preflight();
  if (!fs.existsSync(testsPath)) problems.push(`${testsPath} not found`);
  if (problems.length) {
    for (const p of problems) fail(p);
    console.log('0 passed, 1 failed');
    return 1;
  }
  const { RUN, runtimeDir, cleanup } = createRun('vscode-multiwindow');
  const MW = path.join(RUN, 'mw');
  fs.mkdirSync(MW, { recursive: true });
  const mock = await startMockAnthropic({ apiKey: MOCK_KEY });
  const gatewayPort = await freePort();
  process.env.CCGW_VSCODE_SETTINGS = JSON.stringify({
    'claudeGateway.port': gatewayPort,
    'claudeGateway.profiles': [
      { name: 'mock', provider: 'anthropic', baseUrl: mock.url, apiKey: '${env:CCGW_MW_MOCK_KEY}' },
      { name: 'pinned', provider: 'anthropic', baseUrl: mock.url, apiKey: '${env:CCGW_MW_MOCK_KEY}' },
    ],
    'claudeGateway.activeProfile': 'mock',
  });
  writeUserSetup(RUN);
  const folderA = path.join(RUN, 'window-a');
  writeFolder(folderA);
  // Window B is a multi-root workspace (its first folder names the role); its second folder pins another
  // profile in its own settings, so its terminals get a collection scoped to it.
  const folderB = path.join(RUN, 'window-b');
  writeFolder(folderB);
  writeFolder(path.join(RUN, 'window-b-pinned'), { 'claudeGateway.activeProfile': 'pinned' });
  const workspaceB = path.join(RUN, 'window-b.code-workspace');
  fs.writeFileSync(workspaceB, JSON.stringify({ folders: [{ path: 'window-b' }, { path: 'window-b-pinned' }], settings: {} }, null, 2));
  log(`run dir: ${path.relative(process.cwd(), RUN) || RUN}; gateway port ${gatewayPort}`);

  const t0 = Date.now();
  const secs = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  let server;
  let browser;
  const windows = {};
  const results = [];
  const driverChecks = [];
  let ok = false;
  const check = (title, fn) => {
    try {
      fn();
      driverChecks.push({ title, ok: true });
      console.log(`  ✔ driver: ${title}`);
    } catch (e) {
      driverChecks.push({ title, ok: false, message: e.message });
      console.log(`  ✘ driver: ${title}: ${e.message}`);
    }
  };

  const onSignal = async (sig) => {
    fail(`interrupted by ${sig}`);
    try {
      await browser?.close();
    } catch {}
    await killGroup(server?.child);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    server = startCodeServer(RUN, runtimeDir, { CCGW_MW_DIR: MW, CCGW_MW_MOCK_KEY: MOCK_KEY });
    const port = await server.port;
    log(`code-server on 127.0.0.1:${port} (${secs()})`);
    let page;
    ({ browser, page } = await launchBrowser());
    const context = page.context();
    await page.close();
    const deadline = new Promise((r) => setTimeout(() => r(`no result within ${timeoutMs / 1000} s`), timeoutMs).unref());

    windows.a = await openWindow(context, 'window-a', port, { kind: 'folder', path: folderA }, RUN);
    const aResults = path.join(MW, 'window-a.results.json');
    await waitFor(() => fs.existsSync(aResults), "window A's results", timeoutMs, Promise.race([windows.a.exited, deadline]));
    results.push(JSON.parse(fs.readFileSync(aResults, 'utf8')));
    log(`window A reported (${secs()})`);
    if (results[0].stats.failures || !results[0].stats.passes) throw new Error('window A failed; window B not started');

    // A browser context of its own (its own storage), as a second VS Code window would have: sharing window A's
    // storage sometimes left window B's workbench with an empty workspace.
    windows.b = await openWindow(await browser.newContext(), 'window-b', port, { kind: 'workspace', path: workspaceB }, RUN);
    const bDone = Promise.race([windows.b.exited, deadline]);
    await waitFor(() => fs.existsSync(path.join(MW, 'close-a')), 'window B to ask for page A to close', timeoutMs, bDone);
    log(`closing page A (${secs()})`);
    await windows.a.page.close();
    fs.writeFileSync(path.join(MW, 'a-closed'), String(Date.now()));
    windows.a.closed = true;
    const bResults = path.join(MW, 'window-b.results.json');
    await waitFor(() => fs.existsSync(bResults), "window B's results", timeoutMs, deadline);
    results.push(JSON.parse(fs.readFileSync(bResults, 'utf8')));
    log(`window B reported (${secs()})`);

    const takeover = fs.existsSync(path.join(MW, 'takeover.json')) ? JSON.parse(fs.readFileSync(path.join(MW, 'takeover.json'), 'utf8')) : undefined;
    if (takeover) log(`takeover: ${takeover.tookMs} ms after page A closed`);
    check('the mock upstream saw every model call', () => {
      const n = mock.requests.filter((r) => (r.url || '').split('?')[0].endsWith('/v1/messages')).length;
      if (n < 3) throw new Error(`${n} Messages calls reached the mock`);
    });
    check('the audit log written by both windows verifies (claude-code-gateway audit verify --dir)', () => {
      if (!takeover?.auditDir) throw new Error('no takeover record with the audit folder');
      const r = spawnSync(process.execPath, [path.join(projectRoot, 'dist', 'cli.js'), 'audit', 'verify', '--dir', takeover.auditDir, '--json'], { encoding: 'utf8', timeout: 20_000 });
      fs.writeFileSync(path.join(RUN, 'audit-verify.json'), `${r.stdout}${r.stderr}`);
      if (r.status !== 0) throw new Error(`exit ${r.status}: ${r.stdout}${r.stderr}`.slice(0, 500));
    });
  } catch (e) {
    fail(e && e.message ? e.message : String(e));
    driverChecks.push({ title: 'run', ok: false, message: String(e && e.message) });
  } finally {
    let passed = 0;
    let failed = 0;
    for (const r of results) {
      passed += r.stats.passes;
      failed += r.stats.failures;
      for (const f of r.failures) console.log(`[vscode-multiwindow] FAILED (${r.role}): ${f.title}\n${f.stack || f.message}`);
    }
    passed += driverChecks.filter((c) => c.ok).length;
    failed += driverChecks.filter((c) => !c.ok).length;
    if (results.length < 2 && failed === 0) failed = 1;
    ok = failed === 0 && passed > 0;
    if (!ok) {
      for (const [name, w] of Object.entries(windows)) {
        if (w.closed) continue;
        try {
          await w.page.screenshot({ path: path.join(RUN, `failure-${name}.png`), timeout: 10_000 });
        } catch {}
      }
    }
    try {
      await browser?.close();
    } catch {}
    await killGroup(server?.child);
    await mock.close();
    for (const w of Object.values(windows)) w.hostLog.end();
    cleanup();
    log(`done in ${secs()}`);
    workspaceNotLoaded = !ok && fs.existsSync(path.join(MW, 'workspace-not-loaded'));
    // The closing line is printed once, for the run that counts.
    if (lastTry || !workspaceNotLoaded) console.log(`${passed} passed, ${failed} failed`);
    if (!ok) log(`logs kept in ${RUN}`);
  }
  return ok ? 0 : 1;
}

// Seen in about one run in five under load: code-server's web workbench opens window B's .code-workspace with no
// folders at all (before the extension is involved). Such a run is repeated, up to three in all; any other
// failure counts at once.
const ATTEMPTS = 3;
let code = 1;
for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
  code = await main({ lastTry: attempt === ATTEMPTS });
  if (code === 0 || !workspaceNotLoaded) break;
  if (attempt < ATTEMPTS) log(`window B opened its workspace without folders (workbench hiccup, attempt ${attempt}); running the whole test again`);
}
process.exitCode = code;
