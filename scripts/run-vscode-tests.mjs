#!/usr/bin/env node
// Runs the mocha suite in test/vscode/suite inside a real VS Code extension host, served by
// code-server (installed by scripts/install-code-server.sh) and driven by Debian's Chromium through
// playwright-core. See /work/shared/VSCODE-TESTING.md.
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
// Prints a closing line "N passed, N failed"; exits non-zero on any failure or when no test ran.
// Everything of a run (logs, results.json, screenshot on failure) stays in test-results/vscode-run-*/.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, '..');
const toolsRoot = process.env.CCGW_TOOLS_DIR || path.join(os.homedir(), '.cache', 'claude-code-gateway', 'tools');
const codeServerEntry = path.join(toolsRoot, 'code-server', 'node_modules', 'code-server', 'out', 'node', 'entry.js');
const extensionDir = path.resolve(process.env.CCGW_EXTENSION_DIR || projectRoot);
const testsPath = path.join(projectRoot, 'test', 'vscode', 'suite', 'index.js');
const chromiumPath = process.env.CCGW_CHROMIUM || '/usr/bin/chromium';
const timeoutMs = Number(process.env.CCGW_VSCODE_TIMEOUT_MS || 180_000);

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const RUN = path.join(projectRoot, 'test-results', `vscode-run-${stamp}-${process.pid}`);

// XDG_RUNTIME_DIR holds unix sockets (vscode-ipc-*.sock for the terminal's `code` CLI); a socket
// path must stay under 108 bytes, which a folder inside the project's test-results/ can exceed.
// So this one XDG folder is a short temp folder, removed after the run.
const runtimeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-vsc-'));

const log = (...a) => console.log('[vscode-tests]', ...a);

function fail(message) {
  console.error(`[vscode-tests] ERROR: ${message}`);
}

function preflight() {
  const problems = [];
  if (!fs.existsSync(codeServerEntry)) problems.push(`code-server not found at ${codeServerEntry}: run 'bash scripts/install-code-server.sh'`);
  if (!fs.existsSync(chromiumPath)) problems.push(`${chromiumPath} not found: run 'bash scripts/install-code-server.sh' (it installs Debian's chromium)`);
  const pkgPath = path.join(extensionDir, 'package.json');
  if (!fs.existsSync(pkgPath)) {
    problems.push(`no package.json in extension dir ${extensionDir}`);
  } else {
    const pkg = JSON.parse(fs.readFileSync(pkgPath, 'utf8'));
    if (pkg.main && !fs.existsSync(path.resolve(extensionDir, pkg.main))) {
      problems.push(`${path.resolve(extensionDir, pkg.main)} (package.json "main") does not exist: run 'npm run build' first`);
    }
  }
  if (!fs.existsSync(testsPath)) problems.push(`${testsPath} not found`);
  return problems;
}

function writeSetup() {
  const userDir = path.join(RUN, 'user-data', 'User');
  fs.mkdirSync(userDir, { recursive: true });
  for (const d of ['extensions', 'xdg/config', 'xdg/data', 'xdg/cache', 'logs']) {
    fs.mkdirSync(path.join(RUN, d), { recursive: true });
  }
  const workspace = path.join(RUN, 'workspace');
  fs.mkdirSync(workspace, { recursive: true });
  fs.writeFileSync(path.join(workspace, 'README.md'), '# scratch workspace for the VS Code test run\n');

  let extra = {};
  if (process.env.CCGW_VSCODE_SETTINGS) {
    try {
      extra = JSON.parse(process.env.CCGW_VSCODE_SETTINGS);
    } catch (e) {
      throw new Error(`CCGW_VSCODE_SETTINGS is not valid JSON: ${e.message}`);
    }
    if (!extra || typeof extra !== 'object' || Array.isArray(extra)) throw new Error('CCGW_VSCODE_SETTINGS must be a JSON object');
  }
  const settings = {
    'terminal.integrated.gpuAcceleration': 'off',
    'security.workspace.trust.enabled': false,
    'workbench.startupEditor': 'none',
    'update.mode': 'none',
    'telemetry.telemetryLevel': 'off',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'workbench.enableExperiments': false,
    'workbench.tips.enabled': false,
    'git.openRepositoryInParentFolders': 'never',
    'git.autoRepositoryDetection': false,
    ...extra,
  };
  fs.writeFileSync(path.join(userDir, 'settings.json'), JSON.stringify(settings, null, 2));
  fs.writeFileSync(path.join(RUN, 'config.yaml'), 'bind-addr: 127.0.0.1:0\nauth: none\ncert: false\n');
  return workspace;
}

function startCodeServer() {
  const env = {
    ...process.env,
    EXTENSIONS_GALLERY: '{}',
    XDG_CONFIG_HOME: path.join(RUN, 'xdg/config'),
    XDG_DATA_HOME: path.join(RUN, 'xdg/data'),
    XDG_CACHE_HOME: path.join(RUN, 'xdg/cache'),
    XDG_RUNTIME_DIR: runtimeDir,
    CCGW_VSCODE_RESULTS: path.join(RUN, 'results.json'),
  };
  // Variables of an enclosing VS Code / code-server would confuse the nested one.
  for (const k of Object.keys(env)) {
    if (k.startsWith('VSCODE_') || k === 'ELECTRON_RUN_AS_NODE' || k === 'PASSWORD' || k === 'HASHED_PASSWORD') delete env[k];
  }
  const args = [
    codeServerEntry,
    '--config', path.join(RUN, 'config.yaml'),
    '--user-data-dir', path.join(RUN, 'user-data'),
    '--extensions-dir', path.join(RUN, 'extensions'),
    '--auth', 'none',
    '--bind-addr', '127.0.0.1:0',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
  ];
  const out = fs.createWriteStream(path.join(RUN, 'code-server.log'));
  const child = spawn(process.execPath, args, { env, cwd: RUN, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const port = new Promise((resolve, reject) => {
    let buf = '';
    const onData = (chunk) => {
      out.write(chunk);
      buf += chunk.toString();
      const m = buf.match(/HTTP server listening on https?:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) resolve(Number(m[1]));
      if (buf.length > 1e6) buf = buf.slice(-1e5);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code, sig) => reject(new Error(`code-server exited early (code ${code}, signal ${sig}); see ${path.join(RUN, 'code-server.log')}`)));
    child.on('error', reject);
    setTimeout(() => reject(new Error(`code-server did not report a port within 30 s; see ${path.join(RUN, 'code-server.log')}`)), 30_000).unref();
  });
  port.catch(() => {});
  return { child, port };
}

function groupAlive(pid) {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function killGroup(child) {
  if (!child || child.pid === undefined) return;
  const pid = child.pid;
  if (!groupAlive(pid)) return;
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {}
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && groupAlive(pid)) await new Promise((r) => setTimeout(r, 100));
  if (groupAlive(pid)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {}
  }
}

// Workbench chatter that says nothing about the suite: kept in extension-host.log, not printed.
const QUIET = [/^Ignoring fetching additional builtin extensions/, /^Updating additional builtin extensions cache/];

function formatLogArgs(args) {
  if (Array.isArray(args)) return args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
  return typeof args === 'string' ? args : JSON.stringify(args);
}

async function main() {
  const problems = preflight();
  if (problems.length) {
    for (const p of problems) fail(p);
    fs.rmSync(runtimeDir, { recursive: true, force: true });
    console.log('0 passed, 1 failed');
    return 1;
  }
  fs.mkdirSync(RUN, { recursive: true });
  const workspace = writeSetup();
  log(`run dir: ${path.relative(process.cwd(), RUN) || RUN}`);
  log(`extension: ${extensionDir}`);

  const t0 = Date.now();
  let server;
  let browser;
  let page;
  let ok = false;
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
    server = startCodeServer();
    const port = await server.port;
    log(`code-server listening on 127.0.0.1:${port} (${Date.now() - t0} ms)`);

    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
    });
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    page = await context.newPage();
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

    const authority = `127.0.0.1:${port}`;
    const payload = [
      ['extensionDevelopmentPath', `vscode-remote://${authority}${extensionDir}`],
      ['extensionTestsPath', `vscode-remote://${authority}${testsPath}`],
    ];
    const url = `http://${authority}/?folder=${encodeURIComponent(workspace)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
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
    const passed = Number(stats.passes || 0);
    const failed = Number(stats.failures || 0);
    const pending = Number(stats.pending || 0);
    console.log(pending ? `${passed} passed, ${failed} failed, ${pending} skipped` : `${passed} passed, ${failed} failed`);
    ok = code === 0 && failed === 0 && passed > 0;
    if (passed === 0 && failed === 0) fail('no tests ran');
    else if (code !== 0 && failed === 0) fail(`extension host exit code ${code}`);
  } catch (e) {
    fail(e && e.message ? e.message : String(e));
    if (!fs.existsSync(path.join(RUN, 'results.json'))) console.log('0 passed, 1 failed');
  } finally {
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
    fs.rmSync(runtimeDir, { recursive: true, force: true });
    if (!ok) log(`logs kept in ${RUN}`);
  }
  return ok ? 0 : 1;
}

process.exitCode = await main();
