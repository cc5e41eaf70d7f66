import type { Profile } from './config/validate';

/** Stands for the gateway key inside values until a formatter decides how to reference it. */
export const KEY_PLACEHOLDER = '\u0000GATEWAY_KEY\u0000';

/** Variables that point Claude Code elsewhere and must be cleared when switching (a stale one would win). */
export const CLAUDE_CODE_VARIABLES = [
  'ANTHROPIC_BASE_URL',
  'ANTHROPIC_AUTH_TOKEN',
  'ANTHROPIC_CUSTOM_HEADERS',
  'CLAUDE_CODE_USE_BEDROCK',
  'ANTHROPIC_BEDROCK_BASE_URL',
  'CLAUDE_CODE_SKIP_BEDROCK_AUTH',
  'AWS_REGION',
  'CLAUDE_CODE_USE_VERTEX',
  'ANTHROPIC_VERTEX_BASE_URL',
  'ANTHROPIC_VERTEX_PROJECT_ID',
  'CLOUD_ML_REGION',
  'CLAUDE_CODE_SKIP_VERTEX_AUTH',
  'ANTHROPIC_MODEL',
  'ANTHROPIC_DEFAULT_OPUS_MODEL',
  'ANTHROPIC_DEFAULT_SONNET_MODEL',
  'ANTHROPIC_DEFAULT_HAIKU_MODEL',
] as const;

export interface ClaudeCodeEnvOptions {
  /** `http://127.0.0.1:4747`, no trailing slash. */
  gatewayUrl: string;
  profile: Profile;
  /** Route through /profiles/<name>/ (for a profile that is not the key's pinned or active one). */
  pinInPath?: boolean;
}

/**
 * The environment that points Claude Code at the gateway for a profile (DESIGN.md, Routes). The gateway
 * key appears as KEY_PLACEHOLDER; provider credentials never appear.
 */
export function claudeCodeEnv(opts: ClaudeCodeEnvOptions): Record<string, string> {
  const { profile } = opts;
  const base = opts.pinInPath ? `${opts.gatewayUrl}/profiles/${encodeURIComponent(profile.name)}` : opts.gatewayUrl;
  const env: Record<string, string> = {};
  const clientCredentials = profile.credentials === 'client';
  if (clientCredentials) {
    // The client's own Authorization goes upstream; the gateway key travels in Proxy-Authorization.
    env.ANTHROPIC_CUSTOM_HEADERS = `Proxy-Authorization: Bearer ${KEY_PLACEHOLDER}`;
  } else {
    env.ANTHROPIC_AUTH_TOKEN = KEY_PLACEHOLDER;
  }
  if (profile.mode === 'unified' || profile.provider === 'anthropic' || profile.provider === 'litellm') {
    env.ANTHROPIC_BASE_URL = profile.mode === 'unified' ? base : `${base}/anthropic`;
  } else if (profile.provider === 'bedrock') {
    env.CLAUDE_CODE_USE_BEDROCK = '1';
    env.ANTHROPIC_BEDROCK_BASE_URL = `${base}/bedrock`;
    env.CLAUDE_CODE_SKIP_BEDROCK_AUTH = '1';
    env.AWS_REGION = profile.region ?? 'us-east-1';
  } else if (profile.provider === 'vertex') {
    env.CLAUDE_CODE_USE_VERTEX = '1';
    env.ANTHROPIC_VERTEX_BASE_URL = `${base}/vertex_ai/v1`;
    env.ANTHROPIC_VERTEX_PROJECT_ID = profile.projectId ?? '';
    env.CLOUD_ML_REGION = profile.region ?? 'global';
    if (!clientCredentials) env.CLAUDE_CODE_SKIP_VERTEX_AUTH = '1';
  }
  const m = profile.models;
  if (m?.default) env.ANTHROPIC_MODEL = m.default;
  if (m?.opus) env.ANTHROPIC_DEFAULT_OPUS_MODEL = m.opus;
  if (m?.sonnet) env.ANTHROPIC_DEFAULT_SONNET_MODEL = m.sonnet;
  if (m?.haiku) env.ANTHROPIC_DEFAULT_HAIKU_MODEL = m.haiku;
  return env;
}

/** Replaces the key placeholder with the key itself (for the editor's terminal environment, kept in memory). */
export function withKey(env: Record<string, string>, key: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) out[k] = v.split(KEY_PLACEHOLDER).join(key);
  return out;
}

export type Shell = 'sh' | 'fish' | 'powershell' | 'json';

/** How a printed environment refers to the key without containing it. */
export type KeyReference = { file: string } | { envVar: string } | { command: string } | { literal: string };

/** Formats the environment as shell lines; the key is referenced (file, variable, command), never printed, unless literal. */
export function formatEnv(env: Record<string, string>, shell: Shell, key: KeyReference): string {
  if (shell === 'json') {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(env)) {
      if (v.includes(KEY_PLACEHOLDER) && !('literal' in key)) continue;
      out[k] = 'literal' in key ? v.split(KEY_PLACEHOLDER).join(key.literal) : v;
    }
    return JSON.stringify(out, null, 2);
  }
  const lines: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    const parts = value.split(KEY_PLACEHOLDER);
    lines.push(shellLine(shell, name, parts, key));
  }
  return lines.join('\n');
}

function shellLine(shell: Exclude<Shell, 'json'>, name: string, parts: string[], key: KeyReference): string {
  const keyExpr = keyExpression(shell, key);
  switch (shell) {
    case 'sh': {
      const body = parts.map(shEscapeInDouble).join(keyExpr);
      return `export ${name}="${body}"`;
    }
    case 'fish': {
      const pieces: string[] = [];
      parts.forEach((p, i) => {
        if (p) pieces.push(`'${p.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`);
        if (i < parts.length - 1) pieces.push(keyExpr);
      });
      return `set -gx ${name} ${pieces.join('') || "''"}`;
    }
    case 'powershell': {
      const body = parts.map((p) => p.replace(/`/g, '``').replace(/"/g, '`"').replace(/\$/g, '`$')).join(keyExpr);
      return `$env:${name} = "${body}"`;
    }
  }
}

function keyExpression(shell: Exclude<Shell, 'json'>, key: KeyReference): string {
  if ('literal' in key) {
    if (shell === 'fish') return `'${key.literal}'`;
    return key.literal;
  }
  if ('file' in key) {
    if (shell === 'sh') return `$(cat ${shQuote(key.file)})`;
    if (shell === 'fish') return `(cat ${shQuote(key.file)})`;
    return `$((Get-Content -Raw '${key.file.replace(/'/g, "''")}').Trim())`;
  }
  if ('envVar' in key) {
    if (shell === 'sh') return `\${${key.envVar}}`;
    if (shell === 'fish') return `"$${key.envVar}"`;
    return `$env:${key.envVar}`;
  }
  if (shell === 'sh') return `$(${key.command})`;
  if (shell === 'fish') return `(${key.command})`;
  return `$(${key.command})`;
}

function shQuote(s: string): string {
  return /^[A-Za-z0-9_./~-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function shEscapeInDouble(s: string): string {
  return s.replace(/[\\"$`]/g, (c) => `\\${c}`);
}
