import { randomUUID } from 'node:crypto';
import type { Agent, Dispatcher } from 'undici';
import { Accounting } from './accounting/accountant';
import type { BudgetStatus } from './accounting/budgets';
import type { Period } from './accounting/windows';
import type { GatewayConfig, Profile } from './config/validate';
import { ApiKeyResolver, type SecretSource } from './credentials/api-keys';
import { HeldSecrets } from './credentials/held-secrets';
import { Emitter, type Disposable, type Event } from './events';
import { Errors } from './errors';
import { settledCall, type Accountant, type Admission, type CallInfo, type CallOutcome, type SettledCall } from './gateway/call';
import { createUpstreamAgent } from './gateway/forward';
import { KeyRing, type GatewayKey } from './gateway/keys';
import type { GatewayStore } from './store/store';

/** Change of the profile a key (or the gateway default) resolves to. */
export interface ProfileChange {
  /** The key whose pin changed, or undefined when `activeProfile` changed. */
  keyId?: string;
  profile: string;
}

export interface RuntimeOptions {
  config: GatewayConfig;
  keys: KeyRing;
  /** Provider secrets kept outside the config (the extension's SecretStorage). */
  secrets?: SecretSource;
  env?: NodeJS.ProcessEnv;
  /** Defaults to the real accountant (budgets, rate limits, audit log under `config.audit.dir`, or in `store`). */
  accountant?: Accountant | ((runtime: GatewayRuntime) => Accountant);
  /** The store the default accountant uses: files under `config.audit.dir` when not given (see openPostgresStore). */
  store?: GatewayStore;
  /** This gateway's instance id (a PostgreSQL store opened before the runtime names its audit chain and leases with it). */
  instanceId?: string;
  version?: string;
}

/**
 * The gateway's state shared by the HTTP app, the CLI and the extension: configuration, keys,
 * credential resolvers, the upstream HTTP client, accounting and the events the editor listens to.
 */
export class GatewayRuntime implements Disposable {
  readonly instanceId: string;
  readonly keys: KeyRing;
  readonly apiKeys: ApiKeyResolver;
  /** Every provider secret the credential resolvers have handed out, for the audit scrubber. */
  readonly heldSecrets = new HeldSecrets();
  /** The upstream HTTP client (the keep-alive agent, with the configured time limits when there are any). */
  readonly agent: Dispatcher;
  private readonly pool: Agent;
  readonly env: NodeJS.ProcessEnv;
  readonly version: string;
  accountant: Accountant;
  private _config: GatewayConfig;
  private profilesByName = new Map<string, Profile>();
  private inFlight = 0;

  private readonly _onDidStartCall = new Emitter<CallInfo>();
  private readonly _onDidSettleCall = new Emitter<SettledCall>();
  private readonly _onDidChangeProfile = new Emitter<ProfileChange>();
  private readonly _onDidChangeConfig = new Emitter<GatewayConfig>();
  private readonly _onDidChangeBudgets = new Emitter<BudgetStatus[]>();
  /** A model call was admitted and is in flight. */
  readonly onDidStartCall: Event<CallInfo> = this._onDidStartCall.event;
  /** A model call settled: usage, cost and status are known. */
  readonly onDidSettleCall: Event<SettledCall> = this._onDidSettleCall.event;
  readonly onDidChangeProfile: Event<ProfileChange> = this._onDidChangeProfile.event;
  readonly onDidChangeConfig: Event<GatewayConfig> = this._onDidChangeConfig.event;
  /** Budget spend or limits changed (a priced call settled, an override, a config reload): every budget's state. */
  readonly onDidChangeBudgets: Event<BudgetStatus[]> = this._onDidChangeBudgets.event;

  constructor(opts: RuntimeOptions) {
    this.instanceId = opts.instanceId ?? randomUUID();
    this._config = opts.config;
    this.indexProfiles();
    this.keys = opts.keys;
    this.env = opts.env ?? process.env;
    this.apiKeys = new ApiKeyResolver(opts.secrets, this.env, this.heldSecrets);
    this.pool = createUpstreamAgent();
    this.agent = withTimeouts(this.pool, opts.config.upstream?.timeoutMs);
    this.version = opts.version ?? '0.0.0';
    const accountant = opts.accountant ?? ((rt: GatewayRuntime) => new Accounting(rt, opts.store));
    this.accountant = typeof accountant === 'function' ? accountant(this) : accountant;
    // The accountant's own events, re-exposed: it never calls back into the runtime.
    this.accountant.onDidSettleCall?.((c) => this._onDidSettleCall.fire(c));
    this.accountant.onDidChangeBudgets?.((b) => this._onDidChangeBudgets.fire(b));
  }

  get config(): GatewayConfig {
    return this._config;
  }

  /** Calls currently streaming or waiting on an upstream. */
  get callsInFlight(): number {
    return this.inFlight;
  }

  /** Replaces the configuration (settings changed); in-flight calls keep the profile they started with. */
  updateConfig(config: GatewayConfig): void {
    this._config = config;
    this.indexProfiles();
    this._onDidChangeConfig.fire(config);
  }

  profile(name: string): Profile | undefined {
    return this.profilesByName.get(name);
  }

  /** Resolves the profile for a request: the path's pin, else the key's pin, else `activeProfile`. */
  resolveProfile(pathProfile: string | undefined, key: GatewayKey | undefined): Profile {
    const name = pathProfile ?? (key?.profile && this.profilesByName.has(key.profile) ? key.profile : this._config.activeProfile);
    const profile = this.profilesByName.get(name);
    if (!profile) throw new Errors.UnknownProfile(name, [...this.profilesByName.keys()].join(', '));
    if (profile.unusable) throw new Errors.ProfileConfig(profile.unusable);
    return profile;
  }

  /** Sets the gateway's default profile (the CLI's config, or a window without its own key). */
  setActiveProfile(name: string): void {
    if (!this.profilesByName.has(name)) throw new Errors.UnknownProfile(name, [...this.profilesByName.keys()].join(', '));
    this._config = { ...this._config, activeProfile: name };
    this._onDidChangeProfile.fire({ profile: name });
  }

  /** Pins a key to a profile: its next request goes there. */
  pinKey(keyId: string, name: string): void {
    if (!this.profilesByName.has(name)) throw new Errors.UnknownProfile(name, [...this.profilesByName.keys()].join(', '));
    this.keys.pin(keyId, name);
    this._onDidChangeProfile.fire({ keyId, profile: name });
  }

  /** Admits a call through the accountant and tracks it until it settles; a Promise only when the accountant's is. */
  admit(call: CallInfo): Admission | Promise<Admission> {
    const admission = this.accountant.admit(call);
    return admission instanceof Promise ? admission.then((a) => this.track(call, a)) : this.track(call, admission);
  }

  private track(call: CallInfo, admission: Admission): Admission {
    this.inFlight++;
    this._onDidStartCall.fire(call);
    let settled = false;
    return {
      headers: admission.headers,
      settle: (outcome: CallOutcome) => {
        if (settled) return;
        settled = true;
        this.inFlight--;
        admission.settle(outcome);
      },
    };
  }

  /** Publishes a settled call to listeners (used by accountants without events of their own). */
  publishSettled(call: SettledCall): void {
    this._onDidSettleCall.fire(call);
  }

  /** Someone listens to budget changes (computing every budget's state per call is wasted otherwise). */
  get budgetsWatched(): boolean {
    return this._onDidChangeBudgets.hasListeners;
  }

  /** Publishes budget state to listeners (used by accountants). */
  publishBudgets(budgets: BudgetStatus[]): void {
    this._onDidChangeBudgets.fire(budgets);
  }

  /** Every budget's state now (empty without budgets). */
  budgets(): BudgetStatus[] {
    return this.accountant.budgets?.() ?? [];
  }

  /** Overrides one budget's limit, or clears the override with `usd` undefined; audited as done by key `by`. False when the accountant has no such budget. */
  overrideBudget(scope: string, period: Period, usd: number | undefined, by: string): boolean | Promise<boolean> {
    return this.accountant.overrideBudget?.(scope, period, usd, by) ?? false;
  }

  private indexProfiles(): void {
    this.profilesByName = new Map(this._config.profiles.map((p) => [p.name, p]));
  }

  /** Records the stop event, closes the store and the upstream client; resolves once the store has written what it queued. Safe to call twice. */
  close(): Promise<void> {
    const closing = this.accountant.close?.();
    this.dispose();
    return closing ?? Promise.resolve();
  }

  /** Records the stop event, closes the audit log and the upstream client. Safe to call twice. */
  dispose(): void {
    this.accountant.dispose?.();
    this._onDidChangeBudgets.dispose();
    this._onDidChangeConfig.dispose();
    this._onDidChangeProfile.dispose();
    this._onDidSettleCall.dispose();
    this._onDidStartCall.dispose();
    void this.pool.close();
  }
}

/**
 * The agent with `upstream.timeoutMs` as its headers and body (silence) timeouts, set per request so the agent's own
 * pools stay shared. A stalled stream then ends with UND_ERR_BODY_TIMEOUT (the call is recorded as cut), slow headers
 * with a 504.
 */
function withTimeouts(agent: Agent, timeoutMs: number | undefined): Dispatcher {
  if (!timeoutMs) return agent;
  return agent.compose((dispatch) => (opts, handler) => dispatch(Object.assign({}, opts, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs }), handler));
}

/** Admits everything and publishes settled calls unpriced: no budgets, limits or audit log (benchmarks' baseline). */
export class EventOnlyAccountant implements Accountant {
  constructor(private readonly runtime: GatewayRuntime) {}

  admit(call: CallInfo): Admission {
    return {
      settle: (outcome) => this.runtime.publishSettled(settledCall(call, outcome, 0, false)),
    };
  }
}
