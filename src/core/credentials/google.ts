import type { GoogleAuth } from 'google-auth-library';
import type { Profile } from '../config/validate';
import { Errors } from '../errors';
import { REFRESH_MARGIN_MS, withTimeout } from './aws';

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

  /** `timeoutMs`: how long one token request may take (a token endpoint or metadata server that hangs). */
  constructor(private readonly timeoutMs = 30_000) {}

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
    let auth = this.auths.get(id);
    // projectId is known from the profile: no Resource Manager lookup before the first token.
    if (!auth) {
      // Loaded on first use: a gateway without Vertex profiles never pays for google-auth-library.
      const { GoogleAuth: Auth } = await import('google-auth-library');
      this.auths.set(id, (auth = new Auth({ scopes: [CLOUD_PLATFORM_SCOPE], keyFile: profile.keyFile, projectId: profile.projectId })));
    }
    try {
      const { client, token } = await withTimeout(
        auth.getClient().then(async (client) => ({ client, token: (await client.getAccessToken()).token })),
        this.timeoutMs,
        `the token endpoint gave no answer within ${this.timeoutMs} ms`,
      );
      if (!token) throw new Error('the credentials produced no access token');
      const expiry = client.credentials.expiry_date ?? Date.now() + 3_600_000;
      // Vertex would answer 401 to it; say where the problem is instead.
      if (expiry <= Date.now()) throw new Error(`the token endpoint returned an access token that had already expired (at ${new Date(expiry).toISOString()})`);
      this.cache.set(id, { token, refreshAt: expiry - REFRESH_MARGIN_MS });
      return token;
    } catch (err) {
      // A failed source may succeed later (after `gcloud auth application-default login`): start afresh next time.
      this.auths.delete(id);
      throw new Errors.CredentialsFailed(googleFailureMessage(profile, err));
    }
  }
}

function cacheKey(p: Profile): string {
  return `${p.name}\u0000${p.keyFile ?? ''}`;
}

/** The library's reason in one line, plus what the user can run to fix it. */
export function googleFailureMessage(profile: Profile, err: unknown): string {
  const e = err as { message?: string; response?: { data?: { error_description?: string; error?: string } } };
  const data = e.response?.data;
  const reason = (data?.error_description ?? data?.error ?? String(e.message ?? err)).split('\n')[0].slice(0, 300);
  const fix = profile.keyFile
    ? `check the service-account key file ${profile.keyFile} (is the key still active?)`
    : 'run `gcloud auth application-default login` where the gateway runs, set GOOGLE_APPLICATION_CREDENTIALS, or set "keyFile" on the profile';
  return `Google credentials for profile "${profile.name}" could not be obtained: ${reason}. To fix: ${fix}.`;
}

const sources = new WeakMap<object, GoogleTokenSource>();

/** The token source of a gateway runtime (one per runtime, created on first use). */
export function googleTokensFor(runtime: { config?: { upstream?: { credentialsTimeoutMs?: number } } }): GoogleTokenSource {
  let s = sources.get(runtime);
  if (!s) sources.set(runtime, (s = new GoogleTokenSource(runtime.config?.upstream?.credentialsTimeoutMs)));
  return s;
}
