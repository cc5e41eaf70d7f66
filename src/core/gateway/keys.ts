import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { KeyConfig } from '../config/schema';
import { expandEnv, MissingEnvError } from '../config/expand';
import { Errors } from '../errors';

/** Who a request is from, once its gateway key is recognised. */
export interface GatewayKey {
  id: string;
  team?: string;
  project?: string;
  /** Profile this key is pinned to; requests without a /profiles/<name>/ prefix use it. */
  profile?: string;
  admin?: boolean;
  revoked?: boolean;
  /** Id of the admin key that registered this key through `/control/keys` (only such keys can be replaced or removed there). */
  registeredBy?: string;
}

/** Which request header carried the gateway key; it is removed before forwarding. */
export type KeyHeader = 'proxy-authorization' | 'authorization' | 'x-api-key';

export interface Authenticated {
  key: GatewayKey;
  header: KeyHeader;
  /** Set when the credential was a signed token rather than the key itself. */
  tokenExpiresAt?: number;
}

const TOKEN_PREFIX = 'ccgwt1.';

interface Entry {
  key: GatewayKey;
  digest: Buffer;
}

/** The gateway keys a gateway accepts: configured, generated and per-window keys, plus signed short-lived tokens. */
export class KeyRing {
  private entries = new Map<string, Entry>();
  /** Problems met while loading (e.g. a key whose variable is unset), for the operator. */
  readonly warnings: string[] = [];

  constructor(private readonly tokenSecret?: Buffer) {}

  /** Builds a ring from config `keys[]`; a key whose `${env:…}` is unset is skipped with a warning naming it. */
  static fromConfig(keys: KeyConfig[], opts: { env?: NodeJS.ProcessEnv; tokenSecret?: Buffer } = {}): KeyRing {
    const ring = new KeyRing(opts.tokenSecret);
    keys.forEach((k, i) => {
      const meta: GatewayKey = { id: k.id, team: k.team, project: k.project, profile: k.profile, admin: k.admin, revoked: k.revoked };
      if (k.sha256) {
        ring.entries.set(k.id, { key: meta, digest: Buffer.from(k.sha256.toLowerCase(), 'hex') });
        return;
      }
      try {
        const value = expandEnv(k.key!, `keys[${i}].key`, `key "${k.id}"`, opts.env);
        ring.add(meta, value);
      } catch (err) {
        if (!(err instanceof MissingEnvError)) throw err;
        ring.warnings.push(`${err.message}; that key cannot authenticate until it is set (signed tokens for it still work)`);
        // Keep the key's identity for tokens; a random digest that nothing can match stands in for the secret.
        ring.entries.set(k.id, { key: meta, digest: randomBytes(32) });
      }
    });
    return ring;
  }

  /** Adds (or replaces) a key by its secret value. */
  add(key: GatewayKey, secret: string): void {
    this.entries.set(key.id, { key: { ...key }, digest: sha256(secret) });
  }

  remove(id: string): void {
    this.entries.delete(id);
  }

  get(id: string): GatewayKey | undefined {
    return this.entries.get(id)?.key;
  }

  /** Pins a key to a profile (the extension's Switch Provider acts on its window's key this way). */
  pin(id: string, profile: string | undefined): void {
    const e = this.entries.get(id);
    if (e) e.key.profile = profile;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Finds the gateway key in a request's headers. Proxy-Authorization is read first: with client
   * credentials, Authorization and x-api-key carry the user's own provider credentials.
   */
  authenticate(headers: Record<string, string | string[] | undefined>): Authenticated {
    let sawCredential = false;
    let expired: number | undefined;
    for (const header of ['proxy-authorization', 'authorization', 'x-api-key'] as const) {
      const raw = headers[header];
      if (typeof raw !== 'string' || raw === '') continue;
      const value = header === 'x-api-key' ? raw.trim() : bearer(raw);
      if (!value) continue;
      sawCredential = true;
      if (value.startsWith(TOKEN_PREFIX)) {
        const t = this.verifyToken(value);
        if (t === 'expired') {
          expired = expired ?? Date.now();
          continue;
        }
        if (t) {
          const key = this.entries.get(t.id)?.key;
          if (key) return this.admit(key, header, t.exp * 1000);
        }
        continue;
      }
      const key = this.match(value);
      if (key) return this.admit(key, header);
    }
    if (expired !== undefined) throw new Errors.ExpiredToken(new Date(expired).toISOString());
    if (!sawCredential) throw new Errors.NoCredential();
    throw new Errors.UnknownKey();
  }

  private admit(key: GatewayKey, header: KeyHeader, tokenExpiresAt?: number): Authenticated {
    if (key.revoked) throw Object.assign(new Errors.RevokedKey(key.id), { keyId: key.id });
    return { key, header, tokenExpiresAt };
  }

  /** Compares the presented secret with every key's digest in constant time (no early exit). */
  private match(secret: string): GatewayKey | undefined {
    const digest = sha256(secret);
    let found: GatewayKey | undefined;
    for (const e of this.entries.values()) {
      if (timingSafeEqual(digest, e.digest) && !found) found = e.key;
    }
    return found;
  }

  /** Issues a signed token for a key id, valid for `ttlMs`. */
  issueToken(id: string, ttlMs: number, now = Date.now()): string {
    if (!this.tokenSecret) throw new Error('no token secret configured');
    if (!this.entries.has(id)) throw new Error(`no key with id "${id}"`);
    const payload = Buffer.from(JSON.stringify({ k: id, exp: Math.floor((now + ttlMs) / 1000) })).toString('base64url');
    return `${TOKEN_PREFIX}${payload}.${this.sign(payload)}`;
  }

  private verifyToken(token: string): { id: string; exp: number } | 'expired' | undefined {
    if (!this.tokenSecret) return undefined;
    const [payload, sig] = token.slice(TOKEN_PREFIX.length).split('.');
    if (!payload || !sig) return undefined;
    const expected = Buffer.from(this.sign(payload));
    const given = Buffer.from(sig);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
    let data: { k?: unknown; exp?: unknown };
    try {
      data = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    if (typeof data.k !== 'string' || typeof data.exp !== 'number') return undefined;
    if (data.exp * 1000 <= Date.now()) return 'expired';
    return { id: data.k, exp: data.exp };
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.tokenSecret!).update(payload).digest('base64url');
  }
}

function bearer(value: string): string | undefined {
  const m = /^Bearer\s+(.+)$/i.exec(value.trim());
  return m ? m[1].trim() : undefined;
}

export function sha256(value: string): Buffer {
  // One-shot hash (Node ≥ 20.12): no Hash object per call.
  return hash('sha256', value, 'buffer');
}

/** A new random gateway key, recognisable by its prefix in leak scans. */
export function generateKey(): string {
  return `ccgw-${randomBytes(24).toString('base64url')}`;
}
