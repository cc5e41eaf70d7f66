#!/usr/bin/env node
// UI smoke layer: a person's view of the extension in a real VS Code workbench (code-server + Debian's
// Chromium via playwright-core). Complements the in-host mocha suite (scripts/run-vscode-tests.mjs).
//
//   node scripts/run-vscode-ui-smoke.mjs                       # extension loaded from CCGW_EXTENSION_DIR / project root
//   CCGW_VSIX=claude-code-gateway-0.1.0.vsix node scripts/run-vscode-ui-smoke.mjs   # the packaged bundle
//
// Checks: the workbench loads; every command the manifest contributes (contributes.commands, less
// those hidden from the palette) is listed in the command palette; running it from the palette does
// not end in "command '<id>' not found" (the extension activated and registered it) nor in
// "Command '<title>' resulted in an error" (its handler threw). Set
// CCGW_UI_EXECUTE=0 to only look the commands up. Prints "N passed, N failed"; the screenshot
// ui-smoke.png and the logs stay in test-results/vscode-ui-*/.
import fs from 'node:fs';
import path from 'node:path';
import {
  createRun,
  extensionDir,
  installVsix,
  killGroup,
  launchBrowser,
  preflight,
  startCodeServer,
  workbenchUrl,
  writeUserSetup,
} from './vscode-harness.mjs';

const log = (...a) => console.log('[vscode-ui]', ...a);
const vsix = process.env.CCGW_VSIX ? path.resolve(process.env.CCGW_VSIX) : '';
const execute = process.env.CCGW_UI_EXECUTE !== '0';

function manifestCommands(dir) {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  let nls = {};
  try {
    nls = JSON.parse(fs.readFileSync(path.join(dir, 'package.nls.json'), 'utf8'));
  } catch {}
  const text = (v) => {
    if (v && typeof v === 'object') v = v.value ?? v.original;
    if (typeof v !== 'string') return '';
    const m = v.match(/^%(.+)%$/);
    return m && typeof nls[m[1]] === 'string' ? nls[m[1]] : v;
  };
  const hidden = new Set(
    ((pkg.contributes && pkg.contributes.menus && pkg.contributes.menus.commandPalette) || [])
      .filter((m) => m && m.when === 'false')
      .map((m) => m.command),
  );
  const cmds = (pkg.contributes && pkg.contributes.commands) || [];
  return cmds
    .filter((c) => c && c.command && !hidden.has(c.command))
    .map((c) => {
      const title = text(c.title);
      const category = text(c.category);
      return { id: c.command, label: category ? `${category}: ${title}` : title };
    })
    .filter((c) => c.label);
}

async function closeTransientUi(page) {
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press('Escape');
    await page.waitForTimeout(100);
  }
}

async function main() {
  const problems = preflight({ needMain: !vsix });
  if (vsix && !fs.existsSync(vsix)) problems.push(`CCGW_VSIX ${vsix} not found`);
  if (problems.length) {
    for (const p of problems) console.error(`[vscode-ui] ERROR: ${p}`);
    console.log('0 passed, 1 failed');
    return 1;
  }
  const { RUN, runtimeDir, cleanup } = createRun('vscode-ui');
  const workspace = writeUserSetup(RUN);
  log(`run dir: ${path.relative(process.cwd(), RUN) || RUN}`);

  const results = [];
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
  };

  let server;
  let browser;
  let page;
  const pageLog = fs.createWriteStream(path.join(RUN, 'page.log'));
  try {
    let manifestDir = extensionDir;
    if (vsix) {
      installVsix(RUN, runtimeDir, vsix);
      // Read the manifest that shipped in the VSIX, from where code-server unpacked it.
      const installed = fs
        .readdirSync(path.join(RUN, 'extensions'), { withFileTypes: true })
        .filter((d) => d.isDirectory() && fs.existsSync(path.join(RUN, 'extensions', d.name, 'package.json')));
      if (installed.length !== 1) throw new Error(`expected one installed extension in ${path.join(RUN, 'extensions')}, found ${installed.length}`);
      manifestDir = path.join(RUN, 'extensions', installed[0].name);
      log(`installed ${vsix} as ${installed[0].name}`);
    }
    server = startCodeServer(RUN, runtimeDir);
    const port = await server.port;
    ({ browser, page } = await launchBrowser());
    page.on('pageerror', (err) => pageLog.write(`[page error] ${err.message}\n`));
    page.on('console', (msg) => pageLog.write(`[${msg.type()}] ${msg.text()}\n`));
    // Present so the workbench's automation hooks never call into nothing.
    await page.exposeFunction('codeAutomationLog', (type, args) => pageLog.write(`[host:${type}] ${Array.isArray(args) ? args.join(' ') : args}\n`));
    await page.exposeFunction('codeAutomationExit', () => {});
    const url = vsix ? workbenchUrl(port, workspace) : workbenchUrl(port, workspace, [['extensionDevelopmentPath', extensionDir]]);
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60_000 });

    await check('workbench loads', async () => {
      await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 60_000 });
      // Extensions are not active yet when the workbench appears; the status bar filling in is a
      // reasonable sign that startup finished (onStartupFinished activation follows it).
      await page.locator('.statusbar').waitFor({ state: 'visible', timeout: 30_000 });
      await page.waitForTimeout(1500);
    });

    const commands = manifestCommands(manifestDir);
    if (!commands.length) log('the manifest contributes no commands: only the workbench is checked');
    for (const cmd of commands) {
      await check(`command palette: ${cmd.label}${execute ? ' (runs)' : ''}`, async () => {
        await closeTransientUi(page);
        await page.keyboard.press('F1');
        const input = page.locator('.quick-input-widget .quick-input-box input');
        await input.waitFor({ state: 'visible', timeout: 10_000 });
        await input.fill(`>${cmd.label}`);
        const row = page.locator('.quick-input-list .monaco-list-row', { hasText: cmd.label }).first();
        await row.waitFor({ state: 'visible', timeout: 10_000 });
        if (!execute) return;
        await page.keyboard.press('Enter');
        await page.waitForTimeout(1500);
        // VS Code reports a command that is missing or throws in a modal dialog (web) or a toast.
        const surfaces = page.locator('.monaco-dialog-box, .notifications-toasts');
        if (await surfaces.filter({ hasText: `command '${cmd.id}' not found` }).count()) {
          throw new Error(`running it says: command '${cmd.id}' not found (the extension did not register it)`);
        }
        const errored = surfaces.filter({ hasText: 'resulted in an error' });
        if (await errored.count()) throw new Error(`running it failed: ${(await errored.first().innerText()).replace(/\s+/g, ' ')}`);
      });
    }
  } catch (e) {
    results.push({ name: 'harness', ok: false, message: e && e.message ? e.message : String(e) });
    console.error(`[vscode-ui] ERROR: ${e && e.message ? e.message : e}`);
  } finally {
    if (page) {
      try {
        await page.screenshot({ path: path.join(RUN, 'ui-smoke.png'), timeout: 10_000 });
        log(`screenshot: ${path.join(RUN, 'ui-smoke.png')}`);
      } catch {}
    }
    try {
      await browser?.close();
    } catch {}
    await killGroup(server?.child);
    pageLog.end();
    cleanup();
  }

  fs.writeFileSync(path.join(RUN, 'results.json'), JSON.stringify(results, null, 2));
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  for (const r of results.filter((x) => !x.ok)) console.log(`[vscode-ui] FAILED: ${r.name}\n${r.message}`);
  console.log(`${passed} passed, ${failed} failed`);
  if (failed || !passed) log(`logs kept in ${RUN}`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

process.exitCode = await main();
