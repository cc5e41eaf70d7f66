import * as vscode from 'vscode';
import { registerAllCommands } from './vscode/commands';
import { GatewayController } from './vscode/controller';
import { UsageDashboard } from './vscode/dashboard';
import { restoreEditorKeys } from './vscode/environment-commands';
import { ProfileSecrets } from './vscode/secrets';
import { SecretWarnings } from './vscode/secret-warnings';
import { readSettings, SECTION } from './vscode/settings';
import { StatusBarController } from './vscode/status-bar';
import { TerminalEnvironment } from './vscode/terminal-env';
import { publicApi, testApi, type ClaudeGatewayApi, type ClaudeGatewayTestApi } from './vscode/api';

let shutdown: (() => Promise<void>) | undefined;

export type { ClaudeGatewayApi, ClaudeGatewayTestApi };

export async function activate(context: vscode.ExtensionContext): Promise<ClaudeGatewayApi | ClaudeGatewayTestApi> {
  const log = vscode.window.createOutputChannel('Claude Code Gateway', { log: true });
  const secrets = new ProfileSecrets(context.secrets);
  const controller = new GatewayController(context, secrets, log);
  context.subscriptions.push(log, secrets);
  shutdown = () => controller.shutdown();
  // Everything is registered before the gateway starts, so settings that do not validate leave every
  // command in place (each says why it cannot run) instead of failing activation.
  const terminal = new TerminalEnvironment(context.environmentVariableCollection, controller);
  terminal.setEnabled(readSettings().terminalEnabled);
  const statusBar = new StatusBarController(controller);
  const dashboard = new UsageDashboard(context.extensionUri, controller);
  const warnings = new SecretWarnings(controller, secrets);
  context.subscriptions.push(
    controller,
    terminal,
    statusBar,
    dashboard,
    warnings,
    ...registerAllCommands({ controller, secrets, secretStorage: context.secrets, globalState: context.globalState, dashboard }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration(`${SECTION}.terminal.enabled`)) terminal.setEnabled(readSettings().terminalEnabled);
    }),
  );
  await controller.start();
  await restoreEditorKeys(controller, context.secrets);
  const internals = { context, secrets, log, controller, terminal, statusBar, dashboard, warnings };
  // The full surface (peers, keys, snapshots) is for the test suites only; other extensions see where the gateway is.
  return context.extensionMode === vscode.ExtensionMode.Production ? publicApi(controller) : testApi(internals);
}

/** Lets in-flight calls finish and hands the port over cleanly before the host exits. */
export async function deactivate(): Promise<void> {
  await shutdown?.();
}
