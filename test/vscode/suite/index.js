// Mocha runner loaded inside the VS Code extension host (code-server or @vscode/test-electron).
// VS Code calls require(<this file>).run() after loading the extension under development.
// CommonJS on purpose: the extension host require()s it. mocha 11 is still CommonJS (mocha 12 is not).
'use strict';

const fs = require('fs');
const path = require('path');
const util = require('util');
const Mocha = require('mocha');

// The extension host forwards console.log arguments joined by spaces, without printf-style
// substitution, so mocha's reporter lines ("%d passing (%s)") are formatted here first.
Mocha.reporters.Base.consoleLog = (...args) => console.log(util.format(...args));

/** Runs every *.test.js of a folder (this one, or another suite's that shares this runner). */
function runDir(dir) {
  const mocha = new Mocha({
    ui: 'bdd',
    timeout: 20000,
    color: false,
    reporter: 'spec',
  });
  if (process.env.CCGW_VSCODE_GREP) mocha.grep(process.env.CCGW_VSCODE_GREP);

  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.test.js'))
    .sort();
  for (const f of files) mocha.addFile(path.join(dir, f));

  const resultsPath = process.env.CCGW_VSCODE_RESULTS;
  const failures = [];
  const passes = [];

  return new Promise((resolve, reject) => {
    let runner;
    try {
      runner = mocha.run((failed) => {
        const stats = runner.stats || {};
        const results = {
          stats: {
            suites: stats.suites || 0,
            tests: stats.tests || 0,
            passes: stats.passes || 0,
            pending: stats.pending || 0,
            failures: stats.failures || 0,
            start: stats.start,
            end: stats.end,
            duration: stats.duration,
          },
          files: files,
          failures,
          passes,
        };
        if (resultsPath) {
          try {
            fs.mkdirSync(path.dirname(resultsPath), { recursive: true });
            fs.writeFileSync(resultsPath, JSON.stringify(results, null, 2));
          } catch (e) {
            console.error(`[ccgw-suite] could not write ${resultsPath}: ${e && e.stack}`);
          }
        }
        if (failed > 0) reject(new Error(`${failed} test(s) failed`));
        else if (results.stats.passes === 0) reject(new Error('no tests ran'));
        else resolve();
      });
      runner.on('pass', (test) => passes.push(test.fullTitle()));
      runner.on('fail', (test, err) =>
        failures.push({
          title: test.fullTitle(),
          message: String((err && err.message) || err),
          stack: String((err && err.stack) || ''),
        }),
      );
    } catch (e) {
      if (resultsPath) {
        try {
          fs.writeFileSync(
            resultsPath,
            JSON.stringify({ stats: { tests: 0, passes: 0, failures: 1 }, failures: [{ title: 'suite load', message: String(e && e.message), stack: String(e && e.stack) }], passes: [] }, null, 2),
          );
        } catch {}
      }
      reject(e);
    }
  });
}

function run() {
  return runDir(__dirname);
}

module.exports = { run, runDir };
