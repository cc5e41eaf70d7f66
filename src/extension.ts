import * as vscode from 'vscode';
import { registerAllCommands } from './vscode/commands';
import { GatewayController, type ControllerOptions } from './vscode/controller';
import { UsageDashboard } from './vscode/dashboard';
import { restoreWorkspaceKey } from './vscode/environment-commands';
import { ProfileSecrets } from './vscode/secrets';
import { SecretWarnings } from './vscode/secret-warnings';
import { readSettings, SECTION } from './vscode/settings';
import { StatusBarController } from './vscode/status-bar';
import { TerminalEnvironment } from './vscode/terminal-env';
import type { UsageSnapshot } from './core/usage-summary';
import type { DashboardMessage } from './vscode/dashboard';

/** Another window's view of the machine's gateway, started inside this extension host (tests of the multi-window protocol). */
export interface GatewayPeer {
  readonly mode: string;
  readonly url: string;
  readonly key: string;
  readonly profile: string;
  usage(): UsageSnapshot;
  switchProfile(name: string): Promise<void>;
  dispose(): Promise<void>;
}

/** What activate() returns: enough for tests and other extensions to find the gateway. */
export interface ClaudeGatewayApi {
  readonly url: string;
  readonly mode: string;
  readonly profile: string;
  readonly statusText: string;
  readonly statusTooltip: string;
  /** `warning`, `error` or empty. */
  readonly statusSeverity: string;
  /** Names of the configured profiles, as the running gateway sees them. */
  readonly profiles: string[];
  readonly windowKeyId: string;
  /** Folder of the audit log this window's gateway writes (when it serves) or would write (after a takeover). */
  readonly auditDir: string;
  terminalEnvironment(): Record<string, string>;
  /** The variables scoped to a workspace folder (by name) whose profile differs from the window's; empty otherwise. */
  folderTerminalEnvironment(folder: string): Record<string, string>;
  usage(): UsageSnapshot;
  /** The last snapshot the dashboard webview was sent, if it is open. */
  dashboardMessage(): DashboardMessage | undefined;
  /** Profiles the missing-secret warning was shown for. */
  secretWarnings(): string[];
  /** Starts another "window" on a port in this host (tests of serving, attaching and takeover). */
  createPeer(opts: ControllerOptions): Promise<GatewayPeer>;
}

let shutdown: (() => Promise<void>) | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<ClaudeGatewayApi> {
  const log = vscode.window.createOutputChannel('Claude Code Gateway', { log: true });
  const secrets = new ProfileSecrets(context.secrets);
  const controller = new GatewayController(context, secrets, log);
  context.subscriptions.push(log, secrets);
  await controller.start();
  await restoreWorkspaceKey(controller, context.secrets);
  shutdown = () => controller.shutdown();
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
    ...registerAllCommands({ controller, secrets, secretStorage: context.secrets, dashboard }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration(`${SECTION}.terminal.enabled`)) terminal.setEnabled(readSettings().terminalEnabled);
    }),
  );
  return {
    get url() {
      return controller.url;
    },
    get mode() {
      return controller.mode;
    },
    get profile() {
      return controller.profile.name;
    },
    get statusText() {
      return statusBar.text;
    },
    get statusTooltip() {
      return statusBar.tooltip;
    },
    get statusSeverity() {
      return statusBar.severity;
    },
    get profiles() {
      return controller.profiles.map((p) => p.name);
    },
    windowKeyId: controller.windowKeyId,
    get auditDir() {
      return controller.gatewayConfig.audit.dir;
    },
    terminalEnvironment: () => terminal.current(),
    folderTerminalEnvironment: (folder) => terminal.currentForFolder(folder),
    usage: () => controller.usage.snapshot(),
    dashboardMessage: () => dashboard.lastMessage,
    secretWarnings: () => [...warnings.shown],
    createPeer: async (opts) => {
      const peer = new GatewayController(context, secrets, log, { detached: true, ...opts });
      await peer.start();
      return {
        get mode() {
          return peer.mode;
        },
        get url() {
          return peer.url;
        },
        get profile() {
          return peer.profile.name;
        },
        key: peer.key,
        usage: () => peer.usage.snapshot(),
        switchProfile: (name) => peer.switchProfile(name),
        dispose: () => peer.shutdown(),
      };
    },
  };
}

/** Lets in-flight calls finish and hands the port over cleanly before the host exits. */
export async function deactivate(): Promise<void> {
  await shutdown?.();
}
