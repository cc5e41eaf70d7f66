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
  /**
   * Projects this key may charge by sending `x-claude-code-gateway-project` (besides its own `project`), or "*" for
   * any; unset, the header may only repeat the key's own project.
   */
  projects?: readonly string[] | '*';
  admin?: boolean;
  revoked?: boolean;
  /** Id of the admin key that registered this key through `/control/keys` (only such keys can be replaced or removed there). */
  registeredBy?: string;
}

/** A key as a store's feed gives it: its SHA-256 only. */
export interface FeedKey {
  id: string;
  sha256: string;
  team?: string;
  project?: string;
  profile?: string;
  admin: boolean;
  revokedAt?: string;
}

/** A store's keys and their changes (the PostgreSQL store's keys table: PgKeyStore). */
export interface KeyFeed {
  reload(): Promise<readonly FeedKey[] | undefined>;
  onDidChange(listener: (c: { kind: 'upsert'; key: FeedKey } | { kind: 'delete'; id: string } | { kind: 'reload'; keys: FeedKey[] }) => void): { dispose(): void };
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
/** The header through which a key may choose one of its projects for a call. */
export const PROJECT_HEADER = 'x-claude-code-gateway-project';
/** Characters words are made of (base64, base64url, the dots of a token), as a regex class body; "=" is padding, not part of a word's edge. */
const WORD_CHARS = 'A-Za-z0-9._~+/\\-';
const KEY_CHARS = '[A-Za-z0-9._~+/=\\-]';
/** A token inside longer text. */
const TOKEN_IN_TEXT = /ccgwt1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g;
/** Values shorter than this are not hashed for keys known only by their hash (their length is then unknown). */
const MIN_HASHED_WORD = 8;
/** No signed token is shorter: the prefix, a payload of at least 20 characters and a 43-character signature. */
const MIN_TOKEN_LENGTH = TOKEN_PREFIX.length + 20 + 1 + 43;

/** The digests of a ring's keys, and which lengths are worth hashing when looking for them in text. */
interface DigestIndex {
  digests: Set<string>;
  /** Lengths of the keys given by value: words of these lengths are hashed wherever they appear. */
  lengths: Set<number>;
  /** Some key is known only by its hash (its length unknown): whole values and Bearer credentials are hashed. */
  hashOnly: boolean;
  /** Text shorter than this cannot hold a key or a token. */
  minLength: number;
  /** The shortest key given by value: text no longer than it has no such key as a word inside it. */
  shortestKnown: number;
  /** Finds the words of those lengths in a text; undefined when no key is known by value. */
  words?: RegExp;
}

interface Entry {
  key: GatewayKey;
  digest: Buffer;
  /** The digest as a map key, for finding keys in text. */
  digestKey: string;
  /** Length of the secret when it was given by value; undefined when only its hash is known. */
  length?: number;
  /** The secret itself when it was given by value (or shown at authentication), for the audit scrubber. */
  secret?: string;
}

/** The gateway keys a gateway accepts: configured, generated and per-window keys, plus signed short-lived tokens. */
export class KeyRing {
  private entries = new Map<string, Entry>();
  /** Entries by digest, and the lengths worth hashing when looking for keys in text (rebuilt after a change). */
  private byDigest?: DigestIndex;
  private _revision = 0;
  /** Problems met while loading (e.g. a key whose variable is unset), for the operator. */
  readonly warnings: string[] = [];

  constructor(private readonly tokenSecret?: Buffer) {}

  /** Builds a ring from config `keys[]`; a key whose `${env:…}` is unset is skipped with a warning naming it. */
  static fromConfig(keys: KeyConfig[], opts: { env?: NodeJS.ProcessEnv; tokenSecret?: Buffer } = {}): KeyRing {
    const ring = new KeyRing(opts.tokenSecret);
    keys.forEach((k, i) => {
      const meta: GatewayKey = { id: k.id, team: k.team, project: k.project, projects: k.projects, profile: k.profile, admin: k.admin, revoked: k.revoked };
      if (k.sha256) {
        ring.put(meta, Buffer.from(k.sha256.toLowerCase(), 'hex'));
        return;
      }
      try {
        const value = expandEnv(k.key!, `keys[${i}].key`, `key "${k.id}"`, opts.env);
        ring.add(meta, value);
      } catch (err) {
        if (!(err instanceof MissingEnvError)) throw err;
        ring.warnings.push(`${err.message}; that key cannot authenticate until it is set (signed tokens for it still work)`);
        // Keep the key's identity for tokens; a random digest that nothing can match stands in for the secret.
        ring.put(meta, randomBytes(32), 0);
      }
    });
    return ring;
  }

  /** Adds (or replaces) a key by its secret value. */
  add(key: GatewayKey, secret: string): void {
    this.put({ ...key }, sha256(secret), secret.length, secret);
  }

  /** Adds (or replaces) a key known only by its SHA-256 (64 hex characters), as a store keeps it. */
  addDigest(key: GatewayKey, sha256Hex: string): void {
    if (!/^[0-9a-fA-F]{64}$/.test(sha256Hex)) throw new Error(`key "${key.id}": its SHA-256 must be 64 hex characters`);
    this.put({ ...key }, Buffer.from(sha256Hex.toLowerCase(), 'hex'));
  }

  remove(id: string): void {
    this.entries.delete(id);
    this.changed();
  }

  /**
   * Loads a store's keys into the ring and follows its change feed (a key created, revoked or deleted on any replica),
   * until the returned handle is disposed. Keys from the config win over a store key with the same id; only keys
   * this feed added are ever removed by it. Resolves once the first load is in.
   */
  async follow(feed: KeyFeed): Promise<{ dispose(): void }> {
    const fromStore = new Set<string>();
    const upsert = (k: FeedKey) => {
      if (this.entries.has(k.id) && !fromStore.has(k.id)) return;
      fromStore.add(k.id);
      this.addDigest({ id: k.id, team: k.team, project: k.project, profile: k.profile, admin: k.admin, revoked: k.revokedAt !== undefined }, k.sha256);
    };
    const drop = (id: string) => {
      if (fromStore.delete(id)) this.remove(id);
    };
    const load = (keys: readonly FeedKey[]) => {
      const ids = new Set(keys.map((k) => k.id));
      for (const id of [...fromStore]) if (!ids.has(id)) drop(id);
      for (const k of keys) upsert(k);
    };
    const subscription = feed.onDidChange((c) => {
      if (c.kind === 'upsert') upsert(c.key);
      else if (c.kind === 'delete') drop(c.id);
      else load(c.keys);
    });
    const first = await feed.reload();
    if (first) load(first);
    return subscription;
  }

  private put(key: GatewayKey, digest: Buffer, length?: number, secret?: string): void {
    this.entries.set(key.id, { key, digest, digestKey: digest.toString('base64'), length, secret });
    this.changed();
  }

  private changed(): void {
    this.byDigest = undefined;
    this._revision++;
  }

  /** Changes whenever a key is added, replaced, removed or shows its secret. */
  get revision(): number {
    return this._revision;
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
    let found: Entry | undefined;
    for (const e of this.entries.values()) {
      if (timingSafeEqual(digest, e.digest) && !found) found = e;
    }
    if (found && found.length === undefined) {
      // A key configured by its hash has just shown itself: from now on it is found inside longer values too.
      found.length = secret.length;
      found.secret = secret;
      this.changed();
    }
    return found?.key;
  }

  /** Issues a signed token for a key id, valid for `ttlMs`. */
  issueToken(id: string, ttlMs: number, now = Date.now()): string {
    if (!this.tokenSecret) throw new Error('no token secret configured');
    if (!this.entries.has(id)) throw new Error(`no key with id "${id}"`);
    const payload = Buffer.from(JSON.stringify({ k: id, exp: Math.floor((now + ttlMs) / 1000) })).toString('base64url');
    return `${TOKEN_PREFIX}${payload}.${this.sign(payload)}`;
  }

  private verifyToken(token: string): { id: string; exp: number } | 'expired' | undefined {
    const payload = this.signedPayload(token);
    if (payload === undefined) return undefined;
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

  /** The payload of a token this ring signed (expired or not), else undefined. */
  private signedPayload(token: string): string | undefined {
    if (!this.tokenSecret) return undefined;
    const parts = token.slice(TOKEN_PREFIX.length).split('.');
    if (parts.length !== 2 || !parts[0] || !parts[1]) return undefined;
    const expected = Buffer.from(this.sign(parts[0]));
    const given = Buffer.from(parts[1]);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
    return parts[0];
  }

  /**
   * The gateway credentials in `text`: keys of this ring and tokens it signed (expired ones too), found as the whole
   * value, as a Bearer credential, or as a word inside it. Only candidates of a length some key has are hashed, so text
   * without a credential costs little. A key configured by its hash has no known length until it first authenticates:
   * until then it is looked for as the whole value or the Bearer credential (where clients send keys), not inside words.
   */
  credentialsIn(text: string): string[] {
    const found = new Set<string>();
    this.scan(text, (c) => {
      found.add(c);
      return false;
    });
    return [...found];
  }

  /** True when `text` carries a gateway key or a token this ring signed (see credentialsIn). */
  carriesCredential(text: string): boolean {
    let hit = false;
    this.scan(text, () => {
      hit = true;
      return true;
    });
    return hit;
  }

  /** Secrets the ring holds in the clear (the token secret, the keys it knows by value), for the audit scrubber. */
  heldSecrets(): string[] {
    const out = this.tokenSecret ? [this.tokenSecret.toString('utf8')] : [];
    for (const e of this.entries.values()) if (e.secret !== undefined) out.push(e.secret);
    return out;
  }

  /** The tokens this ring signed (expired ones too) in a text of any size (one substring search when there is none). */
  tokensIn(text: string): string[] {
    if (!this.tokenSecret || !text.includes(TOKEN_PREFIX)) return [];
    const found = new Set<string>();
    for (const m of text.matchAll(TOKEN_IN_TEXT)) if (this.signedPayload(m[0]) !== undefined) found.add(m[0]);
    return [...found];
  }

  /** Calls `hit` with each credential found in `text` until it returns true. */
  private scan(text: string, hit: (credential: string) => boolean): void {
    const index = this.digestIndex();
    if (text.length < index.minLength) return;
    const tokens = this.tokenSecret !== undefined && text.length >= MIN_TOKEN_LENGTH && text.includes(TOKEN_PREFIX);
    if (index.digests.size === 0 && !tokens) return;
    const check = (candidate: string): boolean => {
      if (tokens && candidate.startsWith(TOKEN_PREFIX)) return this.signedPayload(candidate) !== undefined && hit(candidate);
      const worth = index.lengths.has(candidate.length) || (index.hashOnly && candidate.length >= MIN_HASHED_WORD);
      return worth && index.digests.has(hash('sha256', candidate, 'base64')) && hit(candidate);
    };
    const whole = text.trim();
    if (check(whole)) return;
    const credential = bearer(whole);
    if (credential !== undefined && check(credential)) return;
    if (whole.length <= index.shortestKnown && !tokens) return;
    if (tokens) {
      for (const m of whole.matchAll(TOKEN_IN_TEXT)) if (m[0] !== whole && m[0] !== credential && this.signedPayload(m[0]) !== undefined && hit(m[0])) return;
    }
    // Words of a key's length, found by one regex over the text (a body can be megabytes: no per-word work in JS).
    const words = index.words;
    if (!words || whole.length <= index.shortestKnown) return;
    words.lastIndex = 0;
    for (let m = words.exec(whole); m !== null; m = words.exec(whole)) {
      const word = m[0];
      if (word !== credential && index.digests.has(hash('sha256', word, 'base64')) && hit(word)) return;
      // Not a key: the next candidate may start inside it (a JSON escape's letter glued to a key of another length).
      words.lastIndex = m.index + 1;
    }
  }

  private digestIndex(): DigestIndex {
    if (this.byDigest) return this.byDigest;
    const digests = new Set<string>();
    const lengths = new Set<number>();
    let hashOnly = false;
    for (const e of this.entries.values()) {
      if (e.length === 0) continue;
      digests.add(e.digestKey);
      if (e.length === undefined) hashOnly = true;
      else lengths.add(e.length);
    }
    const known = [...lengths];
    const minLength = Math.min(hashOnly ? MIN_HASHED_WORD : Infinity, ...known, this.tokenSecret ? MIN_TOKEN_LENGTH : Infinity);
    // A word: key characters (and "=" padding) between characters that are not; a word may also follow a JSON escape (\n, \u000a).
    const alternatives = known.sort((x, y) => y - x).map((n) => `${KEY_CHARS}{${n}}`);
    const words = alternatives.length ? new RegExp(`(?<=^|[^${WORD_CHARS}]|\\\\[A-Za-z]|\\\\u[0-9A-Fa-f]{4})(?:${alternatives.join('|')})(?![${WORD_CHARS}])`, 'g') : undefined;
    this.byDigest = { digests, lengths, hashOnly, minLength, shortestKnown: Math.min(...known), words };
    return this.byDigest;
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.tokenSecret!).update(payload).digest('base64url');
  }
}

/**
 * The project a call is charged to: the key's own `project`, or the one the project header names when the key may
 * charge it (its own project, one of its `projects`, or any with `"*"`). Any other name is refused with a 403 naming
 * the header and the projects the key may use, so no key charges a budget it does not belong to.
 */
export function projectFor(key: GatewayKey, requested: string | undefined): string | undefined {
  if (requested === undefined || requested === key.project) return key.project;
  const allowed = key.projects;
  if (allowed === '*' || allowed?.includes(requested)) return requested;
  const mine = [...(key.project ? [key.project] : []), ...(allowed ?? [])];
  throw new Errors.Forbidden(
    `The ${PROJECT_HEADER} header names project ${JSON.stringify(requested.slice(0, 100))}, which key "${key.id}" may not charge; ${
      mine.length ? `it may use ${mine.map((p) => `"${p}"`).join(', ')}` : `it may not choose a project (list them in the key's "projects" to allow it)`
    }.`,
  );
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
