/** Resolved secrets kept for the audit scrubber; beyond this many the oldest are forgotten (a helper that rotates often). */
const MAX_HELD = 1000;
/** Shorter values are not secrets worth removing (and would remove ordinary words). */
const MIN_SECRET_LENGTH = 8;

/**
 * Every secret the gateway's credential resolvers have handed out at run time (an apiKeyFile's contents, an apiKeyHelper's
 * output, a key from the editor's secret storage, AWS secret keys and session tokens, Google access and refresh tokens and
 * service-account private keys), so the audit scrubber removes them wherever a request body repeats them. Resolvers add
 * what they resolve; the scrubber reads `revision` to know when to look again.
 */
export class HeldSecrets {
  private readonly values = new Set<string>();
  private _revision = 0;

  /** Changes whenever a secret is added. */
  get revision(): number {
    return this._revision;
  }

  add(value: string | null | undefined): void {
    if (typeof value !== 'string') return;
    const v = value.trim();
    if (v.length < MIN_SECRET_LENGTH || this.values.has(v)) return;
    if (this.values.size >= MAX_HELD) this.values.delete(this.values.values().next().value!);
    this.values.add(v);
    this._revision++;
  }

  /**
   * A PEM private key, as its base64 lines: however a body quotes the key (newlines raw, escaped once as in the key
   * file's JSON, or twice inside a tool result), every line is found and removed.
   */
  addPem(pem: string | null | undefined): void {
    if (typeof pem !== 'string') return;
    for (const line of pem.split(/\\n|\r?\n/)) if (!line.startsWith('-----')) this.add(line);
  }

  [Symbol.iterator](): IterableIterator<string> {
    return this.values.values();
  }
}
