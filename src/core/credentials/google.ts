import type { AuthClient, GoogleAuth } from 'google-auth-library';
import type { Profile } from '../config/validate';
import { Errors } from '../errors';
import { REFRESH_MARGIN_MS, withTimeout } from './aws';
import type { HeldSecrets } from './held-secrets';

export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

interface Cached {
  token: string;
  refreshAt: number;
}

/**
 * OAuth2 access tokens for Vertex profiles from google-auth-library (`GoogleAuth` with the cloud-platform
 * scope): the profile's `keyFile`, else Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS,
 * gcloud's ADC file, workload identity, the metadata server). Cached until five minutes before expiry;
 * concurrent requests during a refresh share one token request.
 */
export class GoogleTokenSource {
  private auths = new Map<string, GoogleAuth>();
  private cache = new Map<string, Cached>();
  private running = new Map<string, Promise<string>>();

  /**
   * `timeoutMs`: how long one token request may take (a token endpoint or metadata server that hangs); `held` records the
   * access tokens and the credentials behind them (a service account's private key, a user's refresh token and client
   * secret) for the audit scrubber.
   */
  constructor(
    private readonly timeoutMs = 30_000,
    private readonly held?: HeldSecrets,
  ) {}

  async get(profile: Profile): Promise<string> {
    const id = cacheKey(profile);
    const cached = this.cache.get(id);
    if (cached && cached.refreshAt > Date.now()) return cached.token;
    const inFlight = this.running.get(id);
    if (inFlight) return inFlight;
    const run = this.fetch(profile, id).finally(() => this.running.delete(id));
    this.running.set(id, run);
    return run;
  }

  /** Forgets a cached token (after a 401 from Vertex). */
  invalidate(profile: Profile): void {
    this.cache.delete(cacheKey(profile));
  }

  private async fetch(profile: Profile, id: string): Promise<string> {
    // Loaded on first use: a gateway without Vertex profiles never pays for google-auth-library.
    const { GoogleAuth: Auth, Compute, gcpMetadata } = await import('google-auth-library');
    let auth = this.auths.get(id);
    // projectId is known from the profile: no Resource Manager lookup before the first token.
    if (!auth) this.auths.set(id, (auth = new Auth({ scopes: [CLOUD_PLATFORM_SCOPE], keyFile: profile.keyFile, projectId: profile.projectId })));
    let client: AuthClient | undefined;
    try {
      const token = await withTimeout(
        auth.getClient().then(async (c) => {
          client = c;
          this.holdClientSecrets(c);
          return (await c.getAccessToken()).token;
        }),
        this.timeoutMs,
        `the token endpoint gave no answer within ${this.timeoutMs} ms`,
      );
      if (!token) throw new Error('the credentials produced no access token');
      const expiry = client!.credentials.expiry_date ?? Date.now() + 3_600_000;
      // Vertex would answer 401 to it; say where the problem is instead.
      if (expiry <= Date.now()) throw new Error(`the token endpoint returned an access token that had already expired (at ${new Date(expiry).toISOString()})`);
      this.held?.add(token);
      this.cache.set(id, { token, refreshAt: expiry - REFRESH_MARGIN_MS });
      return token;
    } catch (err) {
      // A failed source may succeed later (after `gcloud auth application-default login`): start afresh next time.
      this.auths.delete(id);
      // gcp-metadata remembers a failed metadata-server ping for the life of the process, so a VM whose metadata
      // server was down at the first request would never get a token; forget it so the next request pings again.
      gcpMetadata.resetIsAvailableCache();
      // Application Default Credentials: name the metadata server when it was the source, or when no source was found.
      const source = profile.keyFile ? undefined : client instanceof Compute ? 'metadata server' : client ? undefined : 'none found';
      throw new Errors.CredentialsFailed(googleFailureMessage(profile, err, source));
    }
  }

  /** The long-lived secrets of a client: a service account's private key (JWT), a user's refresh token and client secret. */
  private holdClientSecrets(client: AuthClient): void {
    if (!this.held) return;
    const c = client as AuthClient & { key?: string; _clientSecret?: string };
    this.held.addPem(c.key);
    this.held.add(c.credentials?.refresh_token);
    this.held.add(c._clientSecret);
  }
}

/** Where gcp-metadata sends its requests: GCE_METADATA_IP, else GCE_METADATA_HOST, else the link-local address. */
function metadataServerUrl(): string {
  const host = process.env.GCE_METADATA_IP || process.env.GCE_METADATA_HOST || '169.254.169.254';
  return /^https?:\/\//.test(host) ? host : `http://${host}`;
}

function cacheKey(p: Profile): string {
  return `${p.name}\u0000${p.keyFile ?? ''}`;
}

/**
 * The library's reason in one line, plus what the user can run to fix it. `adc` says what Application Default
 * Credentials came to: the metadata server (Google Cloud compute) failed, or no source was found (or finding one hung).
 */
export function googleFailureMessage(profile: Profile, err: unknown, adc?: 'metadata server' | 'none found'): string {
  const e = err as { message?: string; response?: { status?: number; data?: { error_description?: string; error?: string } } };
  const data = e.response?.data;
  // One line, without the library's closing full stop (the message adds its own).
  let reason = (data?.error_description ?? data?.error ?? String(e.message ?? err)).split('\n')[0].slice(0, 300).replace(/\.+$/, '');
  const status = e.response?.status;
  if (status && !reason.includes(String(status))) reason += ` (HTTP ${status})`;
  const metadata = `check that the metadata server at ${metadataServerUrl()} answers and that the instance or service runs as a service account with the cloud-platform scope`;
  if (adc === 'metadata server') {
    return `Google credentials for profile "${profile.name}" could not be obtained from the metadata server at ${metadataServerUrl()}: ${reason}. To fix: ${metadata}.`;
  }
  let fix = profile.keyFile
    ? `check the service-account key file ${profile.keyFile} (is the key still active?)`
    : 'run `gcloud auth application-default login` where the gateway runs, set GOOGLE_APPLICATION_CREDENTIALS, or set "keyFile" on the profile';
  if (adc === 'none found') fix += `; on Google Cloud compute (GCE, GKE, Cloud Run), ${metadata}`;
  return `Google credentials for profile "${profile.name}" could not be obtained: ${reason}. To fix: ${fix}.`;
}

const sources = new WeakMap<object, GoogleTokenSource>();

/** The token source of a gateway runtime (one per runtime, created on first use). */
export function googleTokensFor(runtime: { config?: { upstream?: { credentialsTimeoutMs?: number } }; heldSecrets?: HeldSecrets }): GoogleTokenSource {
  let s = sources.get(runtime);
  if (!s) sources.set(runtime, (s = new GoogleTokenSource(runtime.config?.upstream?.credentialsTimeoutMs, runtime.heldSecrets)));
  return s;
}
