import * as vscode from 'vscode';
import type { SecretSource } from '../core/credentials/api-keys';
import { Emitter, type Event } from '../core/events';

const PREFIX = 'claudeGateway.secret.';

/**
 * Provider secrets in VS Code's SecretStorage, keyed by profile name, with an in-memory copy so the
 * gateway can read them synchronously on every request.
 */
export class ProfileSecrets implements SecretSource, vscode.Disposable {
  private cache = new Map<string, string>();
  private readonly _onDidChange = new Emitter<string>();
  readonly onDidChange: Event<string> = this._onDidChange.event;
  private readonly subscription: vscode.Disposable;

  constructor(private readonly storage: vscode.SecretStorage) {
    this.subscription = storage.onDidChange(async (e) => {
      if (!e.key.startsWith(PREFIX)) return;
      const profile = e.key.slice(PREFIX.length);
      const value = await storage.get(e.key);
      if (value) this.cache.set(profile, value);
      else this.cache.delete(profile);
      this._onDidChange.fire(profile);
    });
  }

  /** Loads the secrets of the given profiles into memory. */
  async load(profiles: string[]): Promise<void> {
    await Promise.all(
      profiles.map(async (name) => {
        const value = await this.storage.get(PREFIX + name);
        if (value) this.cache.set(name, value);
      }),
    );
  }

  get(profile: string): string | undefined {
    return this.cache.get(profile);
  }

  has(profile: string): boolean {
    return this.cache.has(profile);
  }

  async set(profile: string, value: string): Promise<void> {
    this.cache.set(profile, value);
    await this.storage.store(PREFIX + profile, value);
  }

  async delete(profile: string): Promise<void> {
    this.cache.delete(profile);
    await this.storage.delete(PREFIX + profile);
  }

  dispose(): void {
    this.subscription.dispose();
    this._onDidChange.dispose();
  }
}
