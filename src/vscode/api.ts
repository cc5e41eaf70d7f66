import type * as vscode from 'vscode';
import { secretIdentity } from '../core/secret-identity';
import type { UsageSnapshot } from '../core/usage-summary';
import { GatewayController, type ControllerOptions } from './controller';
import type { DashboardMessage, UsageDashboard } from './dashboard';
import type { ProfileSecrets } from './secrets';
import type { SecretWarnings } from './secret-warnings';
import type { StatusBarController } from './status-bar';
import type { TerminalEnvironment } from './terminal-env';

/** What activate() returns to other extensions: where this window's gateway is and which profile it uses. */
export interface ClaudeGatewayApi {
  readonly url: string;
  readonly mode: string;
  readonly profile: string;
}

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

/** What activate() returns in the test suites: the gateway's state, and peers for the multi-window protocol. */
export interface ClaudeGatewayTestApi extends ClaudeGatewayApi {
  readonly statusText: string;
  readonly statusTooltip: string;
  /** `warning`, `error` or empty. */
  readonly statusSeverity: string;
  /** Names of the configured profiles, as the running gateway sees them. */
  readonly profiles: string[];
  readonly windowKeyId: string;
  /** Why the gateway is not running (settings that do not validate, a failed start), if it is not. */
  readonly problem: string | undefined;
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
  /** Where the gateway would send a profile's key now (its upstream URL), as the running gateway sees the profile. */
  profileTarget(name: string): string | undefined;
  /** Answered "send the key there?" questions: `profile -> provider url: sent|refused`. */
  secretPrompts(): string[];
  /** Answers those questions from now on without a dialog (true or false); undefined restores the dialog. */
  answerSecretPrompts(answer: boolean | undefined): void;
  /** Starts another "window" on a port in this host (tests of serving, attaching and takeover). */
  createPeer(opts: ControllerOptions): Promise<GatewayPeer>;
}

/** The parts of the extension the test API reads. */
export interface ApiInternals {
  context: vscode.ExtensionContext;
  secrets: ProfileSecrets;
  log: vscode.LogOutputChannel;
  controller: GatewayController;
  terminal: TerminalEnvironment;
  statusBar: StatusBarController;
  dashboard: UsageDashboard;
  warnings: SecretWarnings;
}

export function publicApi(controller: GatewayController): ClaudeGatewayApi {
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
  };
}

export function testApi(i: ApiInternals): ClaudeGatewayTestApi {
  const { context, secrets, log, controller, terminal, statusBar, dashboard, warnings } = i;
  const more: Omit<ClaudeGatewayTestApi, keyof ClaudeGatewayApi> = {
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
    get problem() {
      return controller.problem;
    },
    get auditDir() {
      return controller.gatewayConfig.audit.dir;
    },
    terminalEnvironment: () => terminal.current(),
    folderTerminalEnvironment: (folder) => terminal.currentForFolder(folder),
    usage: () => controller.usage.snapshot(),
    dashboardMessage: () => dashboard.lastMessage,
    secretWarnings: () => [...warnings.shown],
    profileTarget: (name) => {
      const p = controller.profiles.find((x) => x.name === name);
      return p && secretIdentity(p).url;
    },
    secretPrompts: () => [...secrets.answers],
    answerSecretPrompts: (answer) => secrets.setConfirm(answer === undefined ? undefined : async () => answer),
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
  // Getters stay live: the descriptors are copied, not their values (a spread would read them once).
  return Object.defineProperties(publicApi(controller), Object.getOwnPropertyDescriptors(more)) as ClaudeGatewayTestApi;
}
