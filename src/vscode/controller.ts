import * as vscode from 'vscode';
import type { FastifyInstance } from 'fastify';
import type { GatewayConfig, Profile } from '../core/config/validate';
import { Emitter, type Event } from '../core/events';
import { buildGateway } from '../core/gateway/build';
import { generateKey, KeyRing } from '../core/gateway/keys';
import { GatewayRuntime } from '../core/runtime';
import { configFromSettings, readSettings, SECTION, type RawSettings } from './settings';
import type { ProfileSecrets } from './secrets';

const WINDOW_PROFILE_STATE = 'claudeGateway.windowProfile';

/** Something the status bar and the terminal environment follow. */
export interface GatewayState {
  url: string;
  profile: Profile;
}

/**
 * Owns this window's gateway: the core runtime, the Fastify app and its listening socket, and the window's
 * in-memory gateway key, pinned to the profile this window uses.
 */
export class GatewayController implements vscode.Disposable {
  readonly windowKeyId: string;
  private readonly windowKey = generateKey();
  private runtime?: GatewayRuntime;
  private app?: FastifyInstance;
  private settings: RawSettings;
  private _url = '';
  private readonly _onDidChangeState = new Emitter<GatewayState>();
  /** The address or the window's profile changed. */
  readonly onDidChangeState: Event<GatewayState> = this._onDidChangeState.event;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly secrets: ProfileSecrets,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.settings = readSettings();
    const folder = vscode.workspace.workspaceFolders?.[0]?.name;
    this.windowKeyId = `window:${folder ?? 'no-folder'}:${Math.random().toString(36).slice(2, 8)}`;
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration(SECTION)) void this.applySettings();
      }),
    );
  }

  get url(): string {
    return this._url;
  }

  /** The gateway key of this window (kept in memory only). */
  get key(): string {
    return this.windowKey;
  }

  get core(): GatewayRuntime {
    if (!this.runtime) throw new Error('the gateway is not running');
    return this.runtime;
  }

  /** The profile this window's key is pinned to. */
  get profile(): Profile {
    const rt = this.core;
    const pinned = rt.keys.get(this.windowKeyId)?.profile;
    return rt.profile(pinned ?? rt.config.activeProfile) ?? rt.config.profiles[0];
  }

  get profiles(): Profile[] {
    return this.core.config.profiles;
  }

  async start(): Promise<void> {
    const config = this.buildConfig();
    await this.secrets.load(config.profiles.map((p) => p.name));
    const keys = new KeyRing();
    const folder = vscode.workspace.workspaceFolders?.[0]?.name;
    const remembered = this.context.workspaceState.get<string>(WINDOW_PROFILE_STATE);
    const initial = remembered && config.profiles.some((p) => p.name === remembered) ? remembered : config.activeProfile;
    keys.add({ id: this.windowKeyId, project: folder, profile: initial, admin: true }, this.windowKey);
    this.runtime = new GatewayRuntime({ config, keys, secrets: this.secrets, version: this.context.extension.packageJSON.version });
    await this.listen(config.listen.port);
  }

  private buildConfig(): GatewayConfig {
    return configFromSettings(this.settings, this.context.globalStorageUri.fsPath);
  }

  private async listen(port: number): Promise<void> {
    const app = buildGateway({ runtime: this.core, listenHost: '127.0.0.1' });
    try {
      await app.listen({ host: '127.0.0.1', port });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw err;
      // Another window (or process) holds the port: serve this window on a free one.
      this.log.warn(`Port ${port} is in use; this window's gateway listens on a free port instead.`);
      await app.close();
      return this.listen(0);
    }
    this.app = app;
    const address = app.server.address();
    this._url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : port}`;
    this.log.info(`Gateway listening on ${this._url}`);
    this.fireState();
  }

  /** Pins this window's key to a profile: the next request of every Claude Code session in the window goes there. */
  async switchProfile(name: string): Promise<void> {
    this.core.pinKey(this.windowKeyId, name);
    await this.context.workspaceState.update(WINDOW_PROFILE_STATE, name);
    this.log.info(`Switched this window to profile "${name}"`);
    this.fireState();
  }

  /** Settings changed: apply them live; restart the listener only when the port changed. */
  private async applySettings(): Promise<void> {
    const previous = this.settings;
    this.settings = readSettings();
    let config: GatewayConfig;
    try {
      config = this.buildConfig();
    } catch (err) {
      void vscode.window.showErrorMessage(`Claude Gateway settings: ${(err as Error).message}`);
      return;
    }
    await this.secrets.load(config.profiles.map((p) => p.name));
    const rt = this.core;
    rt.updateConfig(config);
    const pinned = rt.keys.get(this.windowKeyId)?.profile;
    if (!pinned || !rt.profile(pinned)) rt.keys.pin(this.windowKeyId, config.activeProfile);
    if (previous.port !== this.settings.port) await this.restart();
    else this.fireState();
  }

  /** Stops accepting, lets in-flight streams finish (app.close waits for them), and listens again. */
  async restart(): Promise<void> {
    const old = this.app;
    this.app = undefined;
    if (old) await old.close();
    await this.listen(this.settings.port);
  }

  private fireState(): void {
    this._onDidChangeState.fire({ url: this._url, profile: this.profile });
  }

  dispose(): void {
    for (const d of this.disposables.reverse()) d.dispose();
    void this.app?.close();
    this.runtime?.dispose();
    this._onDidChangeState.dispose();
  }
}
