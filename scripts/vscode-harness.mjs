// Shared pieces of the code-server harness (scripts/run-vscode-tests.mjs, scripts/run-vscode-ui-smoke.mjs).
// code-server comes from scripts/install-code-server.sh; the browser is Debian's /usr/bin/chromium,
// driven by playwright-core (never `npx playwright install`). See /work/shared/VSCODE-TESTING.md.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const projectRoot = path.resolve(here, '..');
export const toolsRoot = process.env.CCGW_TOOLS_DIR || path.join(os.homedir(), '.cache', 'claude-code-gateway', 'tools');
export const codeServerEntry = path.join(toolsRoot, 'code-server', 'node_modules', 'code-server', 'out', 'node', 'entry.js');
export const chromiumPath = process.env.CCGW_CHROMIUM || '/usr/bin/chromium';
export const extensionDir = path.resolve(process.env.CCGW_EXTENSION_DIR || projectRoot);

export function preflight({ needMain = true } = {}) {
  const problems = [];
  if (!fs.existsSync(codeServerEntry)) problems.push(`code-server not found at ${codeServerEntry}: run 'bash scripts/install-code-server.sh'`);
  if (!fs.existsSync(chromiumPath)) problems.push(`${chromiumPath} not found: run 'bash scripts/install-code-server.sh' (it installs Debian's chromium)`);
  const pkgPath = path.join(extensionDir, 'package.json');
  if (!fs.existsSync(pkgPath)) {
    problems.push(`no package.json in extension dir ${extensionDir}`);
  } else if (needMain) {
    const pkg = JSON.parse(fs.readFileSync(pkgPath, 'utf8'));
    if (pkg.main && !fs.existsSync(path.resolve(extensionDir, pkg.main))) {
      problems.push(`${path.resolve(extensionDir, pkg.main)} (package.json "main") does not exist: run 'npm run build' first`);
    }
  }
  return problems;
}

// A fresh RUN folder per run (user data persists state such as the terminal's environment variable
// collection, which would make later checks pass falsely).
// XDG_RUNTIME_DIR holds unix sockets (vscode-ipc-*.sock for the terminal's `code` CLI); a socket path
// must stay under 108 bytes, which a folder inside test-results/ can exceed, so that one XDG folder is
// a short temp folder, removed by cleanup().
export function createRun(kind) {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const RUN = path.join(projectRoot, 'test-results', `${kind}-${stamp}-${process.pid}`);
  fs.mkdirSync(RUN, { recursive: true });
  const runtimeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-vsc-'));
  return { RUN, runtimeDir, cleanup: () => fs.rmSync(runtimeDir, { recursive: true, force: true }) };
}

export function writeUserSetup(RUN) {
  const userDir = path.join(RUN, 'user-data', 'User');
  fs.mkdirSync(userDir, { recursive: true });
  for (const d of ['extensions', 'xdg/config', 'xdg/data', 'xdg/cache', 'logs']) fs.mkdirSync(path.join(RUN, d), { recursive: true });
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

function serverEnv(RUN, runtimeDir, extraEnv = {}) {
  const env = {
    ...process.env,
    EXTENSIONS_GALLERY: '{}',
    XDG_CONFIG_HOME: path.join(RUN, 'xdg/config'),
    XDG_DATA_HOME: path.join(RUN, 'xdg/data'),
    XDG_CACHE_HOME: path.join(RUN, 'xdg/cache'),
    XDG_RUNTIME_DIR: runtimeDir,
    ...extraEnv,
  };
  // Variables of an enclosing VS Code / code-server would confuse the nested one.
  for (const k of Object.keys(env)) {
    if (k.startsWith('VSCODE_') || k === 'ELECTRON_RUN_AS_NODE' || k === 'PASSWORD' || k === 'HASHED_PASSWORD') delete env[k];
  }
  return env;
}

function commonArgs(RUN) {
  return [
    codeServerEntry,
    '--config', path.join(RUN, 'config.yaml'),
    '--user-data-dir', path.join(RUN, 'user-data'),
    '--extensions-dir', path.join(RUN, 'extensions'),
  ];
}

// `code-server --install-extension x.vsix --force`, before the server starts.
export function installVsix(RUN, runtimeDir, vsix) {
  const r = spawnSync(process.execPath, [...commonArgs(RUN), '--install-extension', path.resolve(vsix), '--force'], {
    env: serverEnv(RUN, runtimeDir),
    cwd: RUN,
    encoding: 'utf8',
    timeout: 60_000,
  });
  fs.writeFileSync(path.join(RUN, 'install-extension.log'), `${r.stdout || ''}${r.stderr || ''}`);
  if (r.status !== 0) throw new Error(`installing ${vsix} failed (exit ${r.status}); see ${path.join(RUN, 'install-extension.log')}`);
}

// Starts code-server in its own process group; resolves `port` from its "HTTP server listening" line.
export function startCodeServer(RUN, runtimeDir, extraEnv = {}) {
  const args = [
    ...commonArgs(RUN),
    '--auth', 'none',
    '--bind-addr', '127.0.0.1:0',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
  ];
  const logPath = path.join(RUN, 'code-server.log');
  const out = fs.createWriteStream(logPath);
  const child = spawn(process.execPath, args, { env: serverEnv(RUN, runtimeDir, extraEnv), cwd: RUN, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
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
    child.on('exit', (code, sig) => reject(new Error(`code-server exited early (code ${code}, signal ${sig}); see ${logPath}`)));
    child.on('error', reject);
    setTimeout(() => reject(new Error(`code-server did not report a port within 30 s; see ${logPath}`)), 30_000).unref();
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

// SIGTERM to the whole group, SIGKILL after 5 s: a plain SIGTERM to code-server leaves the pty host,
// the file watcher and shells running.
export async function killGroup(child) {
  if (!child || child.pid === undefined || !groupAlive(child.pid)) return;
  const pid = child.pid;
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

export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  return { browser, page };
}

// payload entries such as ['extensionDevelopmentPath', '/abs/dir'] become vscode-remote URIs whose
// authority matches the page's location.host, as the web workbench requires.
export function workbenchUrl(port, workspace, payloadPaths = []) {
  const authority = `127.0.0.1:${port}`;
  let url = `http://${authority}/?folder=${encodeURIComponent(workspace)}`;
  if (payloadPaths.length) {
    const payload = payloadPaths.map(([k, p]) => [k, `vscode-remote://${authority}${p}`]);
    url += `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
  }
  return url;
}
