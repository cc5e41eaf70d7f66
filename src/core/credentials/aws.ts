import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import type { Profile } from '../config/validate';
import { Errors } from '../errors';
import type { HeldSecrets } from './held-secrets';

/** Credentials are refreshed this long before they expire, so a request in flight never carries expired ones. */
export const REFRESH_MARGIN_MS = 5 * 60_000;

interface Cached {
  credentials: AwsCredentialIdentity;
  /** When to resolve again (expiry minus the margin); Infinity for static keys. */
  refreshAt: number;
}

/**
 * AWS credentials for Bedrock profiles, from the AWS SDK's own providers: the default Node chain, or
 * `fromIni` for a named `awsProfile` (shared files, SSO, credential_process, assume-role). Cached per
 * profile until five minutes before expiry; concurrent requests during a refresh share one resolution.
 */
export class AwsCredentialSource {
  private cache = new Map<string, Cached>();
  private running = new Map<string, Promise<AwsCredentialIdentity>>();

  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    /** How long one resolution may take (an SSO refresh, a credential_process that hangs). */
    private readonly timeoutMs = 30_000,
    /** Where the secret keys and session tokens resolved are recorded, for the audit scrubber. */
    private readonly held?: HeldSecrets,
  ) {}

  async get(profile: Profile): Promise<AwsCredentialIdentity> {
    const id = cacheKey(profile);
    const cached = this.cache.get(id);
    if (cached && cached.refreshAt > Date.now()) return cached.credentials;
    const inFlight = this.running.get(id);
    if (inFlight) return inFlight;
    const run = this.resolve(profile)
      .then((credentials) => {
        const expiry = credentials.expiration?.getTime();
        this.cache.set(id, { credentials, refreshAt: expiry === undefined ? Infinity : expiry - REFRESH_MARGIN_MS });
        return credentials;
      })
      .finally(() => this.running.delete(id));
    this.running.set(id, run);
    return run;
  }

  /** Forgets a profile's credentials (after an upstream 403 that fresh credentials may cure). */
  invalidate(profile: Profile): void {
    this.cache.delete(cacheKey(profile));
  }

  private async resolve(profile: Profile): Promise<AwsCredentialIdentity> {
    const files = {
      filepath: this.env.AWS_SHARED_CREDENTIALS_FILE,
      configFilepath: this.env.AWS_CONFIG_FILE,
    };
    // Loaded on first use: a gateway without Bedrock profiles never pays the AWS SDK's memory and start-up.
    const { fromIni, fromNodeProviderChain } = await import('@aws-sdk/credential-providers');
    // A fresh provider each time: the SDK's providers re-read files and re-run credential_process on each call.
    const provider: AwsCredentialIdentityProvider = profile.awsProfile
      ? fromIni({ profile: profile.awsProfile, ...files, ignoreCache: true })
      : fromNodeProviderChain({ ...files, ignoreCache: true });
    try {
      const credentials = await withTimeout(provider(), this.timeoutMs, `the AWS credential chain gave no answer within ${this.timeoutMs} ms`);
      const expiry = credentials.expiration?.getTime();
      // Signing with them would only earn an ExpiredTokenException from AWS, with no hint of where they came from.
      if (expiry !== undefined && expiry <= Date.now()) throw new Error(`the credentials it returned had already expired (at ${credentials.expiration!.toISOString()})`);
      this.held?.add(credentials.secretAccessKey);
      this.held?.add(credentials.sessionToken);
      return credentials;
    } catch (err) {
      throw new Errors.CredentialsFailed(awsFailureMessage(profile, err));
    }
  }
}

function cacheKey(p: Profile): string {
  return `${p.name}\u0000${p.awsProfile ?? ''}`;
}

/** The SDK's reason in one line, plus what the user can run to fix it. */
export function awsFailureMessage(profile: Profile, err: unknown): string {
  const reason = String((err as Error)?.message ?? err)
    .split('\n')[0]
    .slice(0, 300);
  const named = profile.awsProfile;
  const sso = /sso|token.*(expired|refresh)/i.test(reason);
  const fix = named
    ? sso
      ? `run \`aws sso login --profile ${named}\``
      : `check the "${named}" profile in ~/.aws/config and ~/.aws/credentials (\`aws configure --profile ${named}\`, or \`aws sso login --profile ${named}\` for SSO)`
    : 'configure credentials where the gateway runs (`aws configure`, `aws sso login`, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or set "awsProfile" on the profile';
  return `AWS credentials for profile "${profile.name}"${named ? ` (AWS profile "${named}")` : ''} could not be resolved: ${reason}. To fix: ${fix}.`;
}

/** Rejects with `message` when `work` takes longer than `ms` (the work itself is left to finish or fail on its own). */
export function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref();
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

const sources = new WeakMap<object, AwsCredentialSource>();

/** The credential source of a gateway runtime (one per runtime, created on first use). */
export function awsCredentialsFor(runtime: { env: NodeJS.ProcessEnv; config?: { upstream?: { credentialsTimeoutMs?: number } }; heldSecrets?: HeldSecrets }): AwsCredentialSource {
  let s = sources.get(runtime);
  if (!s) sources.set(runtime, (s = new AwsCredentialSource(runtime.env, runtime.config?.upstream?.credentialsTimeoutMs, runtime.heldSecrets)));
  return s;
}
