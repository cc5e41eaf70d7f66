#!/usr/bin/env node
// Runs the mocha suites in test/vscode inside a real VS Code extension host, served by code-server
// (installed by scripts/install-code-server.sh) and driven by Debian's Chromium through playwright-core.
// See /work/shared/VSCODE-TESTING.md. Two passes, each with a fresh code-server and user data:
//   main     test/vscode/suite: the gateway, commands, usage, a hostile workspace's settings;
//   startup  test/vscode/startup: a window whose user settings do not validate at activation.
//
//   node scripts/run-vscode-tests.mjs
//
// Environment:
//   CCGW_TOOLS_DIR          tools folder (default ~/.cache/claude-code-gateway/tools)
//   CCGW_EXTENSION_DIR      extension under development (default: the project root)
//   CCGW_VSCODE_SETTINGS    JSON object merged into the user settings
//   CCGW_VSCODE_TIMEOUT_MS  time allowed for the suite (default 180000)
//   CCGW_CHROMIUM           browser binary (default /usr/bin/chromium)
//   CCGW_VSCODE_GREP        passed to mocha's grep inside the host
//   CCGW_VSCODE_SUITE       run only this pass (main or startup)
// Prints a closing line "N passed, N failed" (over both passes); exits non-zero on any failure or when no test ran.
// Everything of a run (logs, results.json, screenshot on failure) stays in test-results/vscode-run-*/.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  createRun,
  extensionDir,
  killGroup,
  launchBrowser,
  preflight,
  projectRoot,
  startCodeServer,
  workbenchUrl,
  writeUserSetup,
} from './vscode-harness.mjs';

const SUITES = {
  // With a stub that registers the Claude Code extension's settings (Configure Claude Code Extension writes them).
  main: { testsPath: path.join(projectRoot, 'test', 'vscode', 'suite', 'index.js'), settings: {}, extensions: [path.join(projectRoot, 'test', 'vscode', 'claude-code-stub')] },
  // A Bedrock profile without its region: the settings do not validate when the extension activates.
  startup: { testsPath: path.join(projectRoot, 'test', 'vscode', 'startup', 'index.js'), settings: { 'claudeGateway.profiles': [{ name: 'no-region', provider: 'bedrock' }] } },
};
const timeoutMs = Number(process.env.CCGW_VSCODE_TIMEOUT_MS || 180_000);

const log = (...a) => console.log('[vscode-tests]', ...a);
const fail = (message) => console.error(`[vscode-tests] ERROR: ${message}`);

// Workbench chatter that says nothing about the suite: kept in extension-host.log, not printed.
const QUIET = [/^Ignoring fetching additional builtin extensions/, /^Updating additional builtin extensions cache/];

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

function formatLogArgs(args) {
  if (Array.isArray(args)) return args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
  return typeof args === 'string' ? args : JSON.stringify(args);
}

const userSettings = process.env.CCGW_VSCODE_SETTINGS || '{}';

/** One pass: a fresh code-server and user data, the suite at `testsPath`; resolves { passed, failed, ok }. */
async function runSuite(name, { testsPath, settings, extensions = [] }) {
  const problems = preflight();
  if (!fs.existsSync(testsPath)) problems.push(`${testsPath} not found`);
  if (problems.length) {
    for (const p of problems) fail(p);
    return { passed: 0, failed: 1, ok: false };
  }
  const { RUN, runtimeDir, cleanup } = createRun(name === 'main' ? 'vscode-run' : `vscode-run-${name}`);
  // A port of its own, so a gateway of another run (or the developer's own window) is never joined.
  const gatewayPort = await freePort();
  process.env.CCGW_VSCODE_SETTINGS = JSON.stringify({ 'claudeGateway.port': gatewayPort, ...settings, ...JSON.parse(userSettings) });
  const workspace = writeUserSetup(RUN);
  // Installed beside the extension under development (the workbench takes one development path).
  for (const dir of extensions) {
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    fs.cpSync(dir, path.join(RUN, 'extensions', `${pkg.publisher}.${pkg.name}-${pkg.version}`), { recursive: true });
  }
  log(`pass: ${name}`);
  log(`run dir: ${path.relative(process.cwd(), RUN) || RUN}`);
  log(`extension: ${extensionDir}`);

  const t0 = Date.now();
  let server;
  let browser;
  let page;
  let ok = false;
  let passed = 0;
  let failed = 1;
  const hostLog = fs.createWriteStream(path.join(RUN, 'extension-host.log'));

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
    server = startCodeServer(RUN, runtimeDir, { CCGW_VSCODE_RESULTS: path.join(RUN, 'results.json') });
    const port = await server.port;
    log(`code-server listening on 127.0.0.1:${port} (${Date.now() - t0} ms)`);

    ({ browser, page } = await launchBrowser());
    page.on('pageerror', (err) => hostLog.write(`[page error] ${err.message}\n`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') hostLog.write(`[page console.error] ${msg.text()}\n`);
    });

    let resolveExit;
    const exited = new Promise((r) => (resolveExit = r));
    await page.exposeFunction('codeAutomationExit', (code, logs) => {
      try {
        if (Array.isArray(logs)) {
          for (const l of logs) {
            if (!l || typeof l.relativePath !== 'string') continue;
            const dest = path.join(RUN, 'logs', l.relativePath.replace(/\.\.(\/|\\)/g, ''));
            fs.mkdirSync(path.dirname(dest), { recursive: true });
            fs.writeFileSync(dest, typeof l.contents === 'string' ? l.contents : JSON.stringify(l.contents));
          }
        }
      } catch {}
      resolveExit(Number(code));
    });
    await page.exposeFunction('codeAutomationLog', (type, args) => {
      const text = formatLogArgs(args);
      hostLog.write(`[${type}] ${text}\n`);
      if (QUIET.some((re) => re.test(text))) return;
      for (const line of text.split('\n')) console.log(`[ext-host:${type}] ${line}`);
    });

    const url = workbenchUrl(port, workspace, [
      ['extensionDevelopmentPath', extensionDir],
      ['extensionTestsPath', testsPath],
    ]);
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60_000 });

    let timer;
    const timedOut = new Promise((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    const code = await Promise.race([exited, timedOut]);
    clearTimeout(timer);
    if (code === 'timeout') {
      throw new Error(`the extension host did not report an exit code within ${timeoutMs / 1000} s (no codeAutomationExit); logs kept in ${RUN}`);
    }
    log(`extension host exited with code ${code} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const resultsPath = path.join(RUN, 'results.json');
    if (!fs.existsSync(resultsPath)) throw new Error(`${resultsPath} was not written: the suite did not run (see extension-host.log)`);
    const results = JSON.parse(fs.readFileSync(resultsPath, 'utf8'));
    const stats = results.stats || {};
    for (const f of results.failures || []) {
      console.log(`[vscode-tests] FAILED: ${f.title}\n${f.stack || f.message}`);
    }
    passed = Number(stats.passes || 0);
    failed = Number(stats.failures || 0);
    const pending = Number(stats.pending || 0);
    log(`${name}: ${passed} passed, ${failed} failed${pending ? `, ${pending} skipped` : ''}`);
    ok = code === 0 && failed === 0 && passed > 0;
    if (!ok && failed === 0) failed = 1;
    if (passed === 0 && failed === 0) fail('no tests ran');
    else if (code !== 0 && failed === 0) fail(`extension host exit code ${code}`);
  } catch (e) {
    fail(e && e.message ? e.message : String(e));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!ok && page) {
      try {
        await page.screenshot({ path: path.join(RUN, 'failure.png'), timeout: 10_000 });
        log(`screenshot: ${path.join(RUN, 'failure.png')}`);
      } catch {}
    }
    try {
      await browser?.close();
    } catch {}
    await killGroup(server?.child);
    hostLog.end();
    cleanup();
    if (!ok) log(`logs kept in ${RUN}`);
  }
  return { passed, failed, ok };
}

async function main() {
  const only = process.env.CCGW_VSCODE_SUITE;
  if (only && !SUITES[only]) {
    fail(`CCGW_VSCODE_SUITE=${only}: not one of ${Object.keys(SUITES).join(', ')}`);
    console.log('0 passed, 1 failed');
    return 1;
  }
  let passed = 0;
  let failed = 0;
  for (const [name, suite] of Object.entries(SUITES)) {
    if (only && name !== only) continue;
    const r = await runSuite(name, suite);
    passed += r.passed;
    failed += r.failed;
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

process.exitCode = await main();
