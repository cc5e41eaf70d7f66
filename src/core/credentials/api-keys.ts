import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import type { Profile } from '../config/validate';
import { expandEnv, MissingEnvError } from '../config/expand';
import { Errors } from '../errors';
import { HeldSecrets } from './held-secrets';

/** Secrets held outside the config (the extension's SecretStorage), looked up by profile name. */
export interface SecretSource {
  get(profile: string): string | undefined;
}

const DEFAULT_HELPER_TTL_MS = 5 * 60_000;
const HELPER_TIMEOUT_MS = 30_000;

interface CachedKey {
  value: string;
  expiresAt: number;
}

/**
 * Resolves the API key an Anthropic or LiteLLM profile sends upstream: an external secret, `apiKey`
 * (with `${env:…}`), `apiKeyFile`, or the output of `apiKeyHelper`, cached for its TTL.
 */
export class ApiKeyResolver {
  private cache = new Map<string, CachedKey>();
  private running = new Map<string, Promise<string>>();

  constructor(
    private readonly secrets?: SecretSource,
    private readonly env: NodeJS.ProcessEnv = process.env,
    /** Where every key this resolver hands out is recorded, for the audit scrubber. */
    readonly held = new HeldSecrets(),
  ) {}

  /** True when the key can change on a retry (a helper), so a 401 is worth one more try. */
  canRefresh(profile: Profile): boolean {
    return profile.apiKeyHelper !== undefined && !this.secrets?.get(profile.name);
  }

  /** The secret held outside the config for a profile (the editor's SecretStorage), if any. */
  stored(profile: Profile): string | undefined {
    const value = this.secrets?.get(profile.name) || undefined;
    this.held.add(value);
    return value;
  }

  async get(profile: Profile): Promise<string> {
    const key = await this.resolve(profile);
    this.held.add(key);
    return key;
  }

  private async resolve(profile: Profile): Promise<string> {
    const external = this.secrets?.get(profile.name);
    if (external) return external;
    const usedBy = `profile "${profile.name}"`;
    try {
      if (profile.apiKey !== undefined) return expandEnv(profile.apiKey, `${profile.jsonPath}.apiKey`, usedBy, this.env);
    } catch (err) {
      if (err instanceof MissingEnvError) throw new Errors.ProfileConfig(`${err.message}. Set it where the gateway runs, or store the key as this profile's secret.`);
      throw err;
    }
    if (profile.apiKeyFile !== undefined) return this.readKeyFile(profile);
    if (profile.apiKeyHelper !== undefined) return this.fromHelper(profile);
    throw new Errors.ProfileConfig(
      `profile "${profile.name}" has no API key: set apiKey (e.g. "\${env:ANTHROPIC_API_KEY}"), apiKeyFile or apiKeyHelper, or store a secret for it in the editor (Claude Gateway: Set Provider Secret).`,
    );
  }

  /** Forgets a cached helper key so the next get() runs the helper again. */
  invalidate(profile: Profile): void {
    this.cache.delete(profile.name);
  }

  private readKeyFile(profile: Profile): string {
    try {
      const value = fs.readFileSync(profile.apiKeyFile!, 'utf8').trim();
      if (value) return value;
      throw new Errors.ProfileConfig(`${profile.jsonPath}.apiKeyFile: ${profile.apiKeyFile} is empty`);
    } catch (err) {
      if ((err as { code?: string }).code === 'CCGW_PROFILE_CONFIG') throw err;
      throw new Errors.ProfileConfig(`${profile.jsonPath}.apiKeyFile: cannot read ${profile.apiKeyFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }

  private fromHelper(profile: Profile): Promise<string> {
    const cached = this.cache.get(profile.name);
    if (cached && cached.expiresAt > Date.now()) return Promise.resolve(cached.value);
    const inFlight = this.running.get(profile.name);
    if (inFlight) return inFlight;
    const run = runHelper(profile, this.env, this.held)
      .then((value) => {
        const ttl = profile.apiKeyHelperTtlMs ?? DEFAULT_HELPER_TTL_MS;
        this.cache.set(profile.name, { value, expiresAt: Date.now() + ttl });
        return value;
      })
      .finally(() => this.running.delete(profile.name));
    this.running.set(profile.name, run);
    return run;
  }
}

/**
 * Runs the helper command as the user wrote it (through /bin/sh, like Claude Code's own apiKeyHelper);
 * nothing from requests or other config values is interpolated into it.
 */
function runHelper(profile: Profile, env: NodeJS.ProcessEnv, held: Iterable<string>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      '/bin/sh',
      ['-c', profile.apiKeyHelper!],
      { env, timeout: HELPER_TIMEOUT_MS, maxBuffer: 64 * 1024, windowsHide: true },
      (err, stdout, stderr) => {
        if (err) {
          const why = (err as NodeJS.ErrnoException & { killed?: boolean }).killed
            ? `timed out after ${HELPER_TIMEOUT_MS / 1000} s`
            : `exited with ${typeof err.code === 'number' ? `status ${err.code}` : err.code ?? 'an error'}${firstLine(stderr, held)}`;
          reject(new Errors.HelperFailed(profile.name, why));
          return;
        }
        const value = stdout.trim();
        if (!value) reject(new Errors.HelperFailed(profile.name, 'it printed nothing'));
        else resolve(value);
      },
    );
  });
}

/** The helper's first line of stderr for the error message, without any secret the gateway holds (it may print a key). */
function firstLine(stderr: string, held: Iterable<string>): string {
  let line = stderr.split('\n').find((l) => l.trim())?.trim();
  if (!line) return '';
  for (const secret of held) if (line.includes(secret)) line = line.split(secret).join('[redacted]');
  return ` (${line.slice(0, 200)})`;
}
