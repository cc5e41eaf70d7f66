import * as vscode from 'vscode';
import { registerAllCommands } from './vscode/commands';
import { GatewayController } from './vscode/controller';
import { ProfileSecrets } from './vscode/secrets';
import { readSettings, SECTION } from './vscode/settings';
import { StatusBarController } from './vscode/status-bar';
import { TerminalEnvironment } from './vscode/terminal-env';

/** What activate() returns: enough for tests and other extensions to find the gateway. */
export interface ClaudeGatewayApi {
  readonly url: string;
  readonly profile: string;
  readonly statusText: string;
  /** Names of the configured profiles, as the running gateway sees them. */
  readonly profiles: string[];
  terminalEnvironment(): Record<string, string>;
}

export async function activate(context: vscode.ExtensionContext): Promise<ClaudeGatewayApi> {
  const log = vscode.window.createOutputChannel('Claude Code Gateway', { log: true });
  const secrets = new ProfileSecrets(context.secrets);
  const controller = new GatewayController(context, secrets, log);
  context.subscriptions.push(log, secrets, controller);
  await controller.start();
  const terminal = new TerminalEnvironment(context.environmentVariableCollection, controller);
  terminal.setEnabled(readSettings().terminalEnabled);
  const statusBar = new StatusBarController(controller);
  context.subscriptions.push(
    terminal,
    statusBar,
    ...registerAllCommands(controller, secrets),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration(`${SECTION}.terminal.enabled`)) terminal.setEnabled(readSettings().terminalEnabled);
    }),
  );
  return {
    get url() {
      return controller.url;
    },
    get profile() {
      return controller.profile.name;
    },
    get statusText() {
      return statusBar.text;
    },
    get profiles() {
      return controller.profiles.map((p) => p.name);
    },
    terminalEnvironment: () => terminal.current(),
  };
}

export function deactivate(): void {}
