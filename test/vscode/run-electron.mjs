#!/usr/bin/env node
// Runs the same in-host mocha suite (test/vscode/suite) in a downloaded VS Code through
// @vscode/test-electron. Needs a machine that can download VS Code; machines that reach only the
// npm registry use scripts/run-vscode-tests.mjs (code-server) instead.
//
//   npm run build && node test/vscode/run-electron.mjs
//
// Environment: CCGW_EXTENSION_DIR (default: the project root), CCGW_VSCODE_VERSION (default 1.100.3),
// CCGW_VSCODE_SETTINGS (JSON object written as user settings).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTests } from '@vscode/test-electron';

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, '..', '..');
const extensionDevelopmentPath = path.resolve(process.env.CCGW_EXTENSION_DIR || projectRoot);
const extensionTestsPath = path.join(here, 'suite', 'index.js');

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const RUN = path.join(projectRoot, 'test-results', `vscode-electron-${stamp}-${process.pid}`);
const userDataDir = path.join(RUN, 'user-data');
const workspace = path.join(RUN, 'workspace');
fs.mkdirSync(path.join(userDataDir, 'User'), { recursive: true });
fs.mkdirSync(workspace, { recursive: true });
fs.mkdirSync(path.join(RUN, 'extensions'), { recursive: true });
// The stub that registers the Claude Code extension's settings (Configure Claude Code Extension writes them).
const stub = path.join(here, 'claude-code-stub');
const settings = {
  'security.workspace.trust.enabled': false,
  'workbench.startupEditor': 'none',
  'update.mode': 'none',
  'telemetry.telemetryLevel': 'off',
  'git.openRepositoryInParentFolders': 'never',
  ...(process.env.CCGW_VSCODE_SETTINGS ? JSON.parse(process.env.CCGW_VSCODE_SETTINGS) : {}),
};
fs.writeFileSync(path.join(userDataDir, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
const resultsPath = path.join(RUN, 'results.json');

let code = 1;
try {
  await runTests({
    version: process.env.CCGW_VSCODE_VERSION || '1.100.3',
    extensionDevelopmentPath: [extensionDevelopmentPath, stub],
    extensionTestsPath,
    extensionTestsEnv: { CCGW_VSCODE_RESULTS: resultsPath },
    launchArgs: [
      workspace,
      '--user-data-dir', userDataDir,
      '--extensions-dir', path.join(RUN, 'extensions'),
      '--disable-workspace-trust',
      '--disable-gpu',
      '--skip-welcome',
      '--skip-release-notes',
      ...(os.platform() === 'linux' && process.getuid?.() === 0 ? ['--no-sandbox'] : []),
    ],
  });
  code = 0;
} catch (e) {
  console.error(`[vscode-electron] ${e && e.message ? e.message : e}`);
}

if (fs.existsSync(resultsPath)) {
  const { stats = {}, failures = [] } = JSON.parse(fs.readFileSync(resultsPath, 'utf8'));
  for (const f of failures) console.log(`[vscode-electron] FAILED: ${f.title}\n${f.stack || f.message}`);
  const passed = Number(stats.passes || 0);
  const failed = Number(stats.failures || 0);
  console.log(`${passed} passed, ${failed} failed`);
  if (failed > 0 || passed === 0) code = 1;
} else {
  console.log('0 passed, 1 failed');
  code = 1;
}
process.exit(code);
