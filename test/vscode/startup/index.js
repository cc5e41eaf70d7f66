// The in-host runner for the startup suite: scripts/run-vscode-tests.mjs starts a second code-server
// window whose user settings do not validate, and runs this folder's tests with the main suite's runner.
'use strict';

const { runDir } = require('../suite/index.js');

module.exports = { run: () => runDir(__dirname) };
