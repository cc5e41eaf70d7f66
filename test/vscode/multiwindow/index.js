// Mocha runner for the two-window test (scripts/run-vscode-multiwindow.mjs): one code-server, two
// workbench pages, so two separate extension hosts, each loading the extension under development and
// this file. The role comes from the first workspace folder's name (window-a or window-b); the
// runs coordinate with the driver through files in CCGW_MW_DIR.
// Window A serves the gateway and then keeps its host alive until the driver closes its page; window B
// runs the checks and exits.
'use strict';

const fs = require('fs');
const path = require('path');
const util = require('util');
const Mocha = require('mocha');
const vscode = require('vscode');

Mocha.reporters.Base.consoleLog = (...args) => console.log(util.format(...args));

// A multi-root workspace's folders can reach the extension host after the tests start (the browser reads
// the .code-workspace file through the remote file system): wait for them, on the event.
function workspaceFolders() {
  if (vscode.workspace.workspaceFolders?.length || !vscode.workspace.workspaceFile) return Promise.resolve();
  return new Promise((resolve) => {
    const sub = vscode.workspace.onDidChangeWorkspaceFolders(() => {
      if (!vscode.workspace.workspaceFolders?.length) return;
      sub.dispose();
      resolve();
    });
    setTimeout(resolve, 15_000).unref?.();
  });
}

async function run() {
  await workspaceFolders();
  return runRole();
}

function runRole() {
  const role = vscode.workspace.workspaceFolders?.[0]?.name;
  const dir = process.env.CCGW_MW_DIR;
  if (!dir) return Promise.reject(new Error('CCGW_MW_DIR is not set'));
  // A workspace file opened with no folders at all: tell the driver, which may run the whole test again.
  if (vscode.workspace.workspaceFile && !vscode.workspace.workspaceFolders?.length) fs.writeFileSync(path.join(dir, 'workspace-not-loaded'), vscode.workspace.workspaceFile.toString());
  if (role !== 'window-a' && role !== 'window-b') return Promise.reject(new Error(`unknown role ${role} (workspace ${vscode.workspace.name}, file ${vscode.workspace.workspaceFile}, folders ${JSON.stringify(vscode.workspace.workspaceFolders)})`));
  const resultsPath = path.join(dir, `${role}.results.json`);
  const mocha = new Mocha({ ui: 'bdd', timeout: 20000, color: false, reporter: 'spec' });
  mocha.addFile(path.join(__dirname, `${role}.test.js`));
  const failures = [];
  const passes = [];
  return new Promise((resolve, reject) => {
    const runner = mocha.run((failed) => {
      const s = runner.stats || {};
      const results = { role, stats: { tests: s.tests || 0, passes: s.passes || 0, failures: s.failures || 0, pending: s.pending || 0, duration: s.duration }, failures, passes };
      // Written to a temp name and renamed: the driver polls for the file and must never read half of it.
      fs.writeFileSync(`${resultsPath}.tmp`, JSON.stringify(results, null, 2));
      fs.renameSync(`${resultsPath}.tmp`, resultsPath);
      if (failed > 0) return reject(new Error(`${failed} test(s) failed`));
      if (results.stats.passes === 0) return reject(new Error('no tests ran'));
      if (role === 'window-b') return resolve();
      // Window A keeps serving until the driver closes its page (a safety timer ends it otherwise).
      setTimeout(resolve, 120_000).unref?.();
    });
    runner.on('pass', (t) => passes.push(t.fullTitle()));
    runner.on('fail', (t, err) => failures.push({ title: t.fullTitle(), message: String((err && err.message) || err), stack: String((err && err.stack) || '') }));
  });
}

module.exports = { run };
