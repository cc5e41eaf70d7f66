import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Profile } from './config/validate';

/** Whether a profile has what it needs to reach its provider, as far as can be told without calling it. */
export interface Readiness {
  ready: boolean;
  /** "API key in secret storage", "AWS profile sso-dev", or what is missing. */
  detail: string;
  /** True when storing a secret for the profile would make it ready. */
  needsSecret: boolean;
}

const ENV_REF = /^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$/;

function exists(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function envRef(value: string | undefined, env: NodeJS.ProcessEnv): { ok: boolean; name?: string } {
  if (value === undefined) return { ok: false };
  const m = ENV_REF.exec(value);
  if (!m) return { ok: true };
  return { ok: !!env[m[1]], name: m[1] };
}

/** Profiles whose upstream key can live in the editor's secret storage. */
export function takesSecret(p: Profile): boolean {
  return (p.provider === 'anthropic' && p.credentials !== 'client') || p.provider === 'litellm' || p.provider === 'bedrock';
}

/**
 * Checks a profile's credentials the way the gateway will look for them: a stored secret, `${env:…}`
 * references, key files, helpers, the AWS shared config and Google Application Default Credentials.
 */
export function profileReadiness(p: Profile, hasSecret: boolean, env: NodeJS.ProcessEnv = process.env, home = os.homedir()): Readiness {
  if (p.unusable) return { ready: false, detail: p.unusable, needsSecret: false };
  if (hasSecret && takesSecret(p)) return { ready: true, detail: p.provider === 'bedrock' ? 'Bedrock API key in secret storage' : 'API key in secret storage', needsSecret: false };
  switch (p.provider) {
    case 'anthropic':
    case 'litellm': {
      if (p.provider === 'anthropic' && p.credentials === 'client') return { ready: true, detail: "Claude Code's own login passes through", needsSecret: false };
      if (p.apiKey !== undefined) {
        const r = envRef(p.apiKey, env);
        return r.ok ? { ready: true, detail: r.name ? `API key from $${r.name}` : 'API key in settings', needsSecret: false } : { ready: false, detail: `$${r.name} is not set`, needsSecret: true };
      }
      if (p.apiKeyFile) return exists(p.apiKeyFile) ? { ready: true, detail: `API key file ${p.apiKeyFile}`, needsSecret: false } : { ready: false, detail: `key file ${p.apiKeyFile} not found`, needsSecret: true };
      if (p.apiKeyHelper) return { ready: true, detail: 'API key from apiKeyHelper', needsSecret: false };
      return { ready: false, detail: 'no API key: set the secret', needsSecret: true };
    }
    case 'bedrock': {
      if (p.bearerToken !== undefined) {
        const r = envRef(p.bearerToken, env);
        if (r.ok) return { ready: true, detail: r.name ? `Bedrock API key from $${r.name}` : 'Bedrock API key', needsSecret: false };
      }
      if (p.awsProfile) return { ready: true, detail: `AWS profile ${p.awsProfile}`, needsSecret: false };
      if (env.AWS_BEARER_TOKEN_BEDROCK) return { ready: true, detail: 'Bedrock API key from $AWS_BEARER_TOKEN_BEDROCK', needsSecret: false };
      if (env.AWS_ACCESS_KEY_ID) return { ready: true, detail: 'AWS keys from the environment', needsSecret: false };
      if (env.AWS_PROFILE) return { ready: true, detail: `AWS profile ${env.AWS_PROFILE}`, needsSecret: false };
      if (env.AWS_WEB_IDENTITY_TOKEN_FILE || env.AWS_CONTAINER_CREDENTIALS_FULL_URI || env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI) {
        return { ready: true, detail: 'AWS workload credentials', needsSecret: false };
      }
      const shared = [env.AWS_SHARED_CREDENTIALS_FILE ?? path.join(home, '.aws', 'credentials'), env.AWS_CONFIG_FILE ?? path.join(home, '.aws', 'config')];
      if (shared.some(exists)) return { ready: true, detail: 'AWS shared config (default profile)', needsSecret: false };
      return { ready: false, detail: 'no AWS credentials found: set a Bedrock API key or configure the AWS CLI', needsSecret: true };
    }
    case 'vertex': {
      if (p.credentials === 'client') return { ready: true, detail: "Claude Code's own Google credentials pass through", needsSecret: false };
      if (p.keyFile) return exists(p.keyFile) ? { ready: true, detail: `key file ${p.keyFile}`, needsSecret: false } : { ready: false, detail: `key file ${p.keyFile} not found`, needsSecret: false };
      if (env.GOOGLE_APPLICATION_CREDENTIALS) return { ready: true, detail: 'Google credentials from $GOOGLE_APPLICATION_CREDENTIALS', needsSecret: false };
      const adc = path.join(env.CLOUDSDK_CONFIG ?? path.join(home, '.config', 'gcloud'), 'application_default_credentials.json');
      if (exists(adc)) return { ready: true, detail: 'Google Application Default Credentials', needsSecret: false };
      return { ready: false, detail: 'no Google credentials: run `gcloud auth application-default login` or set keyFile', needsSecret: false };
    }
  }
}

/** Where a profile points, for pickers: region, project or base URL. */
export function profileWhere(p: Profile): string {
  if (p.provider === 'bedrock') return p.endpoint ?? p.region ?? '';
  if (p.provider === 'vertex') return `${p.projectId ?? ''} · ${p.region ?? ''}`;
  return p.baseUrl ?? 'api.anthropic.com';
}
