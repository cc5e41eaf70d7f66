import * as vscode from 'vscode';
import type { Profile } from '../core/config/validate';
import type { SecretSource } from '../core/credentials/api-keys';
import { Errors } from '../core/errors';
import { Emitter, type Event } from '../core/events';
import { describeIdentity, parseIdentity, sameIdentity, secretIdentity, type SecretIdentity } from '../core/secret-identity';

const PREFIX = 'claudeGateway.secret.';
/** Marks the stored form `{ ccgwSecret: 1, value, boundTo }`; anything else is a key stored by an earlier version. */
const FORMAT = 1;

interface Entry {
  value: string;
  /** The upstream the key was stored for; unset for a key stored before keys were bound (bound at first use). */
  boundTo?: SecretIdentity;
}

/** What the user is asked before a key goes to an upstream it was not stored for. */
export interface SecretQuestion {
  profile: string;
  from: SecretIdentity;
  to: SecretIdentity;
}

/** Answers a SecretQuestion: true sends (and re-binds) the key. */
export type ConfirmRebind = (q: SecretQuestion) => Thenable<boolean>;

function parseEntry(raw: string): Entry {
  if (raw.startsWith('{')) {
    try {
      const v = JSON.parse(raw) as { ccgwSecret?: unknown; value?: unknown; boundTo?: unknown };
      if (v.ccgwSecret === FORMAT && typeof v.value === 'string') return { value: v.value, boundTo: parseIdentity(v.boundTo) };
    } catch {
      // Not our envelope: a key that happens to start with "{".
    }
  }
  return { value: raw };
}

const serialize = (e: Entry) => JSON.stringify({ ccgwSecret: FORMAT, value: e.value, boundTo: e.boundTo });

/** The default question: a modal dialog; Escape or closing it means no. */
const askUser: ConfirmRebind = async (q) => {
  const send = 'Send the Key';
  const answer = await vscode.window.showWarningMessage(
    `Send the key stored for "${q.profile}" to ${describeIdentity(q.to)}?`,
    {
      modal: true,
      detail: `The key was stored for ${describeIdentity(q.from)}, and profile "${q.profile}" now points elsewhere. Answer yes only if you changed the profile yourself. Until then the gateway refuses this profile's calls.`,
    },
    send,
  );
  return answer === send;
};

/**
 * Provider secrets in VS Code's SecretStorage, with an in-memory copy so the gateway can read them
 * synchronously on every request. Each secret is bound to the upstream it was stored for (provider and
 * URL, region, project: `secretIdentity`), not just to the profile's name: when the profile now points
 * somewhere else, the key is not handed out; the user is asked once, and only a yes re-binds it.
 */
export class ProfileSecrets implements SecretSource, vscode.Disposable {
  private cache = new Map<string, Entry>();
  /** Bumped on every write to the cache, so a read of the storage that started before a write does not undo it. */
  private writes = 0;
  private profiles = new Map<string, Profile>();
  /** Questions open or answered no in this session, by profile and target: asked once, not on every call. */
  private readonly asked = new Set<string>();
  private confirm: ConfirmRebind = askUser;
  private readonly _onDidChange = new Emitter<string>();
  readonly onDidChange: Event<string> = this._onDidChange.event;
  private readonly subscription: vscode.Disposable;
  /** `profile -> target: sent|refused` for every answered question (tests read it). */
  readonly answers: string[] = [];

  constructor(private readonly storage: vscode.SecretStorage) {
    this.subscription = storage.onDidChange(async (e) => {
      if (!e.key.startsWith(PREFIX)) return;
      const profile = e.key.slice(PREFIX.length);
      await this.read(profile);
      this._onDidChange.fire(profile);
    });
  }

  /** The profiles the gateway uses now (call before handing the config to the runtime). */
  useProfiles(profiles: readonly Profile[]): void {
    this.profiles = new Map(profiles.map((p) => [p.name, p]));
  }

  /** Loads the secrets of the profiles in use into memory. */
  async load(): Promise<void> {
    await Promise.all(
      [...this.profiles.keys()].map((name) => this.read(name)),
    );
  }

  /** Copies one stored secret into memory, unless this window wrote one meanwhile (its own write is newer). */
  private async read(name: string): Promise<void> {
    const before = this.writes;
    const value = await this.storage.get(PREFIX + name);
    if (this.writes !== before) return;
    if (value) this.cache.set(name, parseEntry(value));
    else this.cache.delete(name);
  }

  /** Replaces the question asked before re-binding (tests answer it; undefined restores the dialog). */
  setConfirm(confirm: ConfirmRebind | undefined): void {
    this.confirm = confirm ?? askUser;
    this.asked.clear();
  }

  /**
   * The key for a profile's request, when the profile still points where the key was stored for. A key
   * bound elsewhere is refused with an error the client sees (and the user is asked, once).
   */
  get(name: string): string | undefined {
    const entry = this.cache.get(name);
    const profile = this.profiles.get(name);
    if (!entry || !profile) return undefined;
    const target = secretIdentity(profile);
    if (!entry.boundTo) {
      // Stored by an earlier version: bound to the profile as the user's settings define it now.
      entry.boundTo = target;
      void this.storage.store(PREFIX + name, serialize(entry));
    }
    if (sameIdentity(entry.boundTo, target)) return entry.value;
    this.ask(name, entry, target);
    throw new Errors.ProfileConfig(
      `the key stored for profile "${name}" belongs to ${describeIdentity(entry.boundTo)}; it is not sent to ${describeIdentity(target)} unless you confirm in the editor (the question Claude Gateway asks, or Claude Gateway: Set Provider Secret)`,
    );
  }

  /** True when the profile has a stored key it may use where it points now. */
  has(name: string): boolean {
    const entry = this.cache.get(name);
    const profile = this.profiles.get(name);
    return !!entry && !!profile && (!entry.boundTo || sameIdentity(entry.boundTo, secretIdentity(profile)));
  }

  /** The upstream a profile's stored key belongs to, when the profile now points elsewhere. */
  boundElsewhere(name: string): SecretIdentity | undefined {
    const entry = this.cache.get(name);
    const profile = this.profiles.get(name);
    return entry?.boundTo && profile && !sameIdentity(entry.boundTo, secretIdentity(profile)) ? entry.boundTo : undefined;
  }

  /** Stores a profile's key, bound to where the profile points. */
  async set(profile: Profile, value: string): Promise<void> {
    const entry = { value, boundTo: secretIdentity(profile) };
    this.writes++;
    this.cache.set(profile.name, entry);
    for (const id of [...this.asked]) if (id.startsWith(`${profile.name}\n`)) this.asked.delete(id);
    await this.storage.store(PREFIX + profile.name, serialize(entry));
  }

  async delete(profile: string): Promise<void> {
    this.writes++;
    this.cache.delete(profile);
    await this.storage.delete(PREFIX + profile);
  }

  private ask(name: string, entry: Entry, target: SecretIdentity): void {
    const id = `${name}\n${JSON.stringify(target)}`;
    if (this.asked.has(id)) return;
    this.asked.add(id);
    const from = entry.boundTo!;
    Promise.resolve(this.confirm({ profile: name, from, to: target })).then(
      async (yes) => {
        this.answers.push(`${name} -> ${describeIdentity(target)}: ${yes ? 'sent' : 'refused'}`);
        // A no is remembered for the session; Set Provider Secret binds the key anew.
        if (!yes) return;
        this.asked.delete(id);
        // Only the key that was asked about, and only to the upstream named in the question.
        if (this.cache.get(name)?.value !== entry.value) return;
        const bound = { value: entry.value, boundTo: target };
        this.writes++;
        this.cache.set(name, bound);
        await this.storage.store(PREFIX + name, serialize(bound));
        this._onDidChange.fire(name);
      },
      () => this.asked.delete(id),
    );
  }

  dispose(): void {
    this.subscription.dispose();
    this._onDidChange.dispose();
  }
}
