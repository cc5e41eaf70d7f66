import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ConfigError, type GatewayConfig, type Profile } from '../core/config/validate';
import { Emitter, type Disposable, type Event } from '../core/events';
import { buildGateway } from '../core/gateway/build';
import { generateKey, KeyRing } from '../core/gateway/keys';
import { GatewayEventStream } from '../core/remote-events';
import { AuditLockedError } from '../core/accounting/audit-lock';
import { GatewayRuntime } from '../core/runtime';
import { controlRequest, probeGateway, readControlFile, removeControlFile, writeControlFile, type ControlFile } from '../core/shared-gateway';
import { UsageSummary } from '../core/usage-summary';
import { CommandId } from './command-ids';
import { configFromSettings, readSettings, SECTION, type RawSettings } from './settings';
import type { ProfileSecrets } from './secrets';

const WINDOW_PROFILE_STATE = 'claudeGateway.windowProfile';

/** Whether this window serves the machine's gateway or attached to another window's. */
export type GatewayMode = 'serving' | 'client' | 'stopped';

/** Something the status bar and the terminal environment follow. */
export interface GatewayState {
  url: string;
  profile: Profile;
  mode: GatewayMode;
}

export interface ControllerOptions {
  /** Listen port instead of `claudeGateway.port` (tests start extra "windows" on their own port). */
  port?: number;
  /** Label in the window key id (tests). */
  label?: string;
  /** Don't follow settings changes or remember the profile in workspace state (test peers). */
  detached?: boolean;
  /** Data folder (audit log) instead of the extension's global storage (test peers that serve side by side). */
  dataDir?: string;
}

interface Serving {
  runtime: GatewayRuntime;
  app: FastifyInstance;
  adminKey: string;
  port: number;
  subscription: Disposable;
}

interface Attached {
  stream: GatewayEventStream;
  control: ControlFile;
}

/** What `profile` reports while the settings do not validate (nothing is served then). */
const UNCONFIGURED: Profile = { name: 'unconfigured', provider: 'anthropic', mode: 'native', credentials: 'gateway', jsonPath: '', unusable: 'the settings do not validate' };

/** One line for an error message: a settings error's problems, else the message. */
function reason(err: unknown): string {
  return err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves once no model call is in flight on a runtime. */
function callsSettled(runtime: GatewayRuntime): Promise<void> {
  if (runtime.callsInFlight === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const sub = runtime.onDidSettleCall(() => {
      if (runtime.callsInFlight > 0) return;
      sub.dispose();
      resolve();
    });
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Owns this window's side of the machine's gateway. The first window to bind the port serves it (core
 * runtime + Fastify app); later windows find it through `/health` and the control file, register their key
 * with it and follow its `/events` stream; when the serving window goes away, one of them binds the same
 * port within a few seconds and the others attach to it. Each window has an in-memory gateway key pinned
 * to the profile the window uses.
 */
export class GatewayController implements vscode.Disposable {
  readonly windowKeyId: string;
  readonly usage = new UsageSummary();
  private readonly windowKey = generateKey();
  /** Further keys of this window (the workspace key written for Anthropic's own extension), pinned like the window key. */
  private readonly extraKeys = new Map<string, string>();
  private settings: RawSettings;
  private config?: GatewayConfig;
  /** Why the gateway is not running, when settings did not validate or the start failed. */
  private _problem?: string;
  private pinned = '';
  private serving?: Serving;
  private attached?: Attached;
  private _mode: GatewayMode = 'stopped';
  private _url = '';
  private disposed = false;
  private connecting?: Promise<void>;
  private readonly _onDidChangeState = new Emitter<GatewayState>();
  /** The address, the mode or the window's profile changed. */
  readonly onDidChangeState: Event<GatewayState> = this._onDidChangeState.event;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly secrets: ProfileSecrets,
    private readonly log: vscode.LogOutputChannel,
    private readonly opts: ControllerOptions = {},
  ) {
    this.settings = readSettings();
    const folder = this.project ?? 'no-folder';
    this.windowKeyId = `window:${opts.label ?? folder}:${randomBytes(3).toString('hex')}`;
    if (!opts.detached) {
      this.disposables.push(
        vscode.workspace.onDidChangeConfiguration((e) => {
          if (e.affectsConfiguration(SECTION)) void this.applySettings();
        }),
        // Trusted now: the workspace's choice of profile counts from here on.
        vscode.workspace.onDidGrantWorkspaceTrust(() => void this.applySettings()),
      );
    }
  }

  private get project(): string | undefined {
    return vscode.workspace.workspaceFolders?.[0]?.name;
  }

  private get port(): number {
    return this.opts.port ?? this.settings.port;
  }

  private get storageDir(): string {
    return this.context.globalStorageUri.fsPath;
  }

  get url(): string {
    return this._url;
  }

  get mode(): GatewayMode {
    return this._mode;
  }

  /** The gateway key of this window (kept in memory only). */
  get key(): string {
    return this.windowKey;
  }

  /** The runtime when this window serves the gateway. */
  get runtime(): GatewayRuntime | undefined {
    return this.serving?.runtime;
  }

  get gatewayConfig(): GatewayConfig {
    return this.configured();
  }

  /** The profile this window's key is pinned to. */
  get profile(): Profile {
    const c = this.config;
    if (!c) return UNCONFIGURED;
    return c.profiles.find((p) => p.name === this.pinned) ?? c.profiles.find((p) => p.name === c.activeProfile) ?? c.profiles[0];
  }

  get profiles(): Profile[] {
    return this.config?.profiles ?? [];
  }

  /** Why the gateway is not running (settings that do not validate, a start that failed); undefined while it runs. */
  get problem(): string | undefined {
    return this._problem;
  }

  private configured(): GatewayConfig {
    if (!this.config) throw new Error(this.notRunning());
    return this.config;
  }

  private notRunning(): string {
    return `the gateway is not running: ${this._problem ?? 'it has not started yet'}. Fix the settings (Open Settings) or run Claude Gateway: Restart Gateway.`;
  }

  /** Throws the reason when a command needs the gateway and it could not start. */
  assertRunning(): void {
    if (!this.config || (this._problem && this._mode === 'stopped')) throw new Error(this.notRunning());
  }

  /**
   * Reads the settings and serves or attaches. Does not throw: settings that do not validate (or a start
   * that fails) leave the gateway stopped, with the reason in `problem`, an error message with an action,
   * and commands that say why they cannot run; a settings change that fixes them starts it.
   */
  async start(): Promise<void> {
    try {
      await this.startOnce();
    } catch (err) {
      this.failed(err, true);
    }
  }

  private async startOnce(): Promise<void> {
    this.settings = readSettings();
    const config = this.buildConfig();
    this.config = config;
    this._problem = undefined;
    this.secrets.useProfiles(config.profiles);
    await this.secrets.load();
    const remembered = this.opts.detached ? undefined : this.context.workspaceState.get<string>(WINDOW_PROFILE_STATE);
    this.pinned = remembered && config.profiles.some((p) => p.name === remembered) ? remembered : config.activeProfile;
    this.usage.setBudgets(config.budgets);
    this.usage.seedFromAudit(config.audit.dir);
    await this.connect();
  }

  /** Records why the gateway is not running and (unless the caller reports it) tells the user, with the action that helps. */
  private failed(err: unknown, show: boolean): void {
    this._problem = reason(err);
    this.log.error(`The gateway is not running: ${(err as Error).message}`);
    this.fireState();
    if (show) this.showProblem(err);
  }

  private showProblem(err: unknown): void {
    const settings = err instanceof ConfigError;
    const action = settings ? 'Open Settings' : 'Restart Gateway';
    void vscode.window.showErrorMessage(`Claude Gateway ${settings ? 'settings' : 'could not start'}: ${reason(err)}`, action).then((choice) => {
      if (choice === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', SECTION);
      else if (choice === 'Restart Gateway') void vscode.commands.executeCommand(CommandId.RestartGateway);
    });
  }

  private buildConfig(): GatewayConfig {
    return configFromSettings({ ...this.settings, port: this.port }, this.opts.dataDir ?? this.storageDir);
  }

  /** Serves the configured port, or attaches to the gateway already serving it; port 0 as the last resort. */
  private connect(): Promise<void> {
    this.connecting ??= this.connectOnce().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async connectOnce(): Promise<void> {
    const port = this.port;
    for (let attempt = 0; attempt < 20 && !this.disposed; attempt++) {
      try {
        await this.serve(port);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw err;
      }
      const probe = await probeGateway(port);
      if (probe.kind === 'foreign') break;
      if (probe.kind === 'gateway') {
        const control = readControlFile(this.storageDir, port);
        if (control && control.instanceId === probe.instanceId) {
          try {
            await this.attach(control);
            return;
          } catch (err) {
            this.log.warn(`Could not attach to the gateway on port ${port}: ${(err as Error).message}`);
          }
        } else if (attempt >= 10) {
          // A gateway we have no control file for (the CLI, another user): don't wait for it.
          break;
        }
      }
      await sleep(150 + Math.random() * 150);
    }
    if (this.disposed) return;
    this.log.warn(`Port ${port} is held by something this window cannot attach to; this window's gateway listens on a free port instead.`);
    await this.serve(0);
  }

  private async serve(port: number): Promise<void> {
    const config = this.configured();
    const keys = new KeyRing(randomBytes(32));
    keys.add({ id: this.windowKeyId, project: this.project, profile: this.pinned }, this.windowKey);
    const adminKey = generateKey();
    keys.add({ id: 'control', admin: true }, adminKey);
    for (const [id, key] of this.extraKeys) keys.add({ id, project: this.project, profile: this.pinned }, key);
    const version = this.context.extension.packageJSON.version;
    let runtime: GatewayRuntime;
    try {
      runtime = new GatewayRuntime({ config, keys, secrets: this.secrets, version });
    } catch (err) {
      if (!(err instanceof AuditLockedError)) throw err;
      // Another live gateway (a window that serves another port, or the CLI on the same data folder) writes the audit
      // log: attach to it when it is a window's gateway; else keep a separate log rather than fork its hash chain.
      const holder = this.controlFileOf(err.holder.pid);
      if (holder) {
        const probe = await probeGateway(holder.port);
        if (probe.kind === 'gateway' && probe.instanceId === holder.instanceId) {
          await this.attach(holder);
          return;
        }
      }
      const dir = path.join(path.dirname(config.audit.dir), `audit-window-${process.pid}`);
      this.log.warn(`${err.message} This window's gateway keeps its own audit log in ${dir} (its budgets count only its own calls).`);
      runtime = new GatewayRuntime({ config: { ...config, audit: { ...config.audit, dir } }, keys, secrets: this.secrets, version });
    }
    const app = buildGateway({ runtime, listenHost: '127.0.0.1' });
    try {
      await app.listen({ host: '127.0.0.1', port });
    } catch (err) {
      await app.close();
      runtime.dispose();
      throw err;
    }
    const address = app.server.address();
    const actual = typeof address === 'object' && address ? address.port : port;
    writeControlFile(this.storageDir, { port: actual, instanceId: runtime.instanceId, adminKey, pid: process.pid });
    this.serving = { runtime, app, adminKey, port: actual, subscription: this.usage.follow(runtime) };
    this.setConnected('serving', `http://127.0.0.1:${actual}`);
  }

  /** The control file of the window gateway run by process `pid`, if any. */
  private controlFileOf(pid: number): ControlFile | undefined {
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.storageDir);
    } catch {
      return undefined;
    }
    for (const n of names) {
      const port = /^gateway-(\d+)\.json$/.exec(n)?.[1];
      const c = port === undefined ? undefined : readControlFile(this.storageDir, Number(port));
      if (c?.pid === pid) return c;
    }
    return undefined;
  }

  private async attach(control: ControlFile): Promise<void> {
    const url = `http://127.0.0.1:${control.port}`;
    const stream = new GatewayEventStream(url, control.adminKey);
    try {
      const hello = await stream.connect();
      if (hello.instanceId !== control.instanceId) throw new Error('the gateway on the port is not the one in the control file');
      for (const [id, key] of [[this.windowKeyId, this.windowKey], ...this.extraKeys]) {
        await controlRequest(url, control.adminKey, 'PUT', `/control/keys/${encodeURIComponent(id)}`, { key, project: this.project, profile: this.pinned });
      }
    } catch (err) {
      stream.dispose();
      throw err;
    }
    stream.onDidStartCall((e) => this.usage.started(e.id));
    stream.onDidSettleCall((c) => this.usage.settled(c));
    stream.onDidEnd(() => void this.takeOver());
    this.attached = { stream, control };
    this.setConnected('client', url);
  }

  /** The serving gateway went away: bind its port (or attach to whichever window did). */
  private async takeOver(): Promise<void> {
    if (this.disposed || !this.attached) return;
    this.log.info('The serving gateway went away; taking over its port or attaching to the window that did.');
    const previous = this.attached.control;
    this.attached.stream.dispose();
    this.attached = undefined;
    this._mode = 'stopped';
    await this.waitForRelease(previous);
    this.usage.clearInFlight();
    await sleep(Math.random() * 300);
    try {
      await this.connect();
      this.log.info(`Now ${this.mode === 'serving' ? 'serving' : 'attached to'} the gateway on ${this._url}`);
    } catch (err) {
      this.log.error(`Could not take over the gateway: ${(err as Error).message}`);
      void vscode.window.showErrorMessage(`Claude Gateway: could not take over the gateway (${(err as Error).message}). Run "Claude Gateway: Restart Gateway".`);
    }
  }

  /** Waits (at most 10 s) while the old serving window is still alive and finishing its in-flight calls. */
  private async waitForRelease(previous: ControlFile): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !this.disposed) {
      if (readControlFile(this.storageDir, previous.port)?.instanceId !== previous.instanceId) return;
      if (!processAlive(previous.pid)) return;
      await sleep(100);
    }
  }

  private setConnected(mode: GatewayMode, url: string): void {
    this._mode = mode;
    this._url = url;
    this.log.info(mode === 'serving' ? `Gateway listening on ${url}` : `Attached to the gateway on ${url} (served by another window)`);
    this.fireState();
  }

  /** Stops serving (in-flight streams finish: app.close waits for them) or detaches. */
  private async stop(): Promise<void> {
    const s = this.serving;
    const a = this.attached;
    this.serving = undefined;
    this.attached = undefined;
    this._mode = 'stopped';
    if (s) {
      s.subscription.dispose();
      // The control file goes last: a client waits for it to disappear before binding the port, so the
      // calls still streaming here are settled (and audited) by this gateway before another one starts.
      const closed = s.app.close();
      // Model calls in flight finish; then connections that carry none (a peer's half-open keep-alive or
      // event-stream socket) are dropped instead of holding the port until the header timeout.
      await callsSettled(s.runtime);
      await sleep(200);
      s.app.server.closeAllConnections();
      await closed;
      s.runtime.dispose();
      removeControlFile(this.storageDir, s.port, s.runtime.instanceId);
    }
    if (a) {
      a.stream.dispose();
      await controlRequest(`http://127.0.0.1:${a.control.port}`, a.control.adminKey, 'DELETE', `/control/keys/${encodeURIComponent(this.windowKeyId)}`).catch(() => undefined);
    }
  }

  /** Pins this window's key to a profile: the next request of every Claude Code session in the window goes there. */
  async switchProfile(name: string): Promise<void> {
    const profiles = this.configured().profiles;
    if (!profiles.some((p) => p.name === name)) throw new Error(`No profile named "${name}" (profiles: ${profiles.map((p) => p.name).join(', ')})`);
    for (const id of [this.windowKeyId, ...this.extraKeys.keys()]) {
      if (this.serving) this.serving.runtime.pinKey(id, name);
      else if (this.attached) await controlRequest(this._url, this.attached.control.adminKey, 'PUT', `/control/keys/${encodeURIComponent(id)}/profile`, { profile: name });
    }
    this.pinned = name;
    if (!this.opts.detached) await this.context.workspaceState.update(WINDOW_PROFILE_STATE, name);
    this.log.info(`Switched this window to profile "${name}"`);
    this.fireState();
  }

  /** Adds a key that follows this window's profile (kept across takeovers). */
  async addWindowKey(id: string, key: string): Promise<void> {
    this.extraKeys.set(id, key);
    if (this.serving) this.serving.runtime.keys.add({ id, project: this.project, profile: this.pinned }, key);
    else if (this.attached) await controlRequest(this._url, this.attached.control.adminKey, 'PUT', `/control/keys/${encodeURIComponent(id)}`, { key, project: this.project, profile: this.pinned });
  }

  /** A short-lived signed token for this window's key (Copy Environment). */
  async issueToken(ttlMs: number): Promise<{ token: string; expiresAt: string }> {
    if (this.serving) return { token: this.serving.runtime.keys.issueToken(this.windowKeyId, ttlMs), expiresAt: new Date(Date.now() + ttlMs).toISOString() };
    if (!this.attached) throw new Error('the gateway is not running');
    const r = await controlRequest<{ token: string; expiresAt: string }>(this._url, this.attached.control.adminKey, 'POST', '/control/tokens', { keyId: this.windowKeyId, ttlMs });
    return r!;
  }

  /** Settings changed: apply them live; restart the listener only when the port changed. */
  private async applySettings(): Promise<void> {
    if (!this.config || (this._problem && this._mode === 'stopped')) {
      // Not running (the settings did not validate, or the start failed): these settings may fix it.
      await this.stop();
      await this.start();
      return;
    }
    const previous = this.settings;
    this.settings = readSettings();
    let config: GatewayConfig;
    try {
      config = this.buildConfig();
    } catch (err) {
      // The gateway keeps serving the last settings that validated.
      this.showProblem(err);
      return;
    }
    this.config = config;
    // Before the runtime sees the new profiles, so no request gets a key for an upstream it was not stored for.
    this.secrets.useProfiles(config.profiles);
    this.serving?.runtime.updateConfig(config);
    this.usage.setBudgets(config.budgets);
    if (!config.profiles.some((p) => p.name === this.pinned)) {
      this.pinned = config.activeProfile;
      this.serving?.runtime.pinKey(this.windowKeyId, this.pinned);
    }
    await this.secrets.load();
    if (previous.port !== this.settings.port && this.opts.port === undefined) await this.restart();
    else this.fireState();
  }

  /** Stops accepting, lets in-flight streams finish, and serves (or attaches) again. */
  async restart(): Promise<void> {
    await this.stop();
    if (!this.config || this._problem) {
      try {
        await this.startOnce();
      } catch (err) {
        this.failed(err, false);
        throw new Error(this.notRunning(), { cause: err });
      }
      return;
    }
    await this.connect();
  }

  private fireState(): void {
    this._onDidChangeState.fire({ url: this._url, profile: this.profile, mode: this._mode });
  }

  /** Stops for good; resolves when in-flight calls have finished (deactivate waits for it). */
  async shutdown(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const d of this.disposables.reverse()) d.dispose();
    // A takeover in progress ends first (it stops early once disposed), so nothing starts after the stop.
    await this.connecting?.catch(() => undefined);
    await this.stop();
    this.usage.dispose();
    this._onDidChangeState.dispose();
  }

  dispose(): void {
    void this.shutdown();
  }
}
