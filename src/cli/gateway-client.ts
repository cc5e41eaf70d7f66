import { LOCAL_KEY_ID } from '../core/gateway/local-secrets';
import { cliKeyRing, loadCliConfig, localGatewayUrl, selfCommand, type CliContext } from './context';
import { UsageError } from './serve';
import { VERSION } from './version';

/** How long the token a command signs for itself stays valid: long enough for one request, useless after. */
const TOKEN_TTL_MS = 60_000;
const REQUEST_TIMEOUT_MS = 10_000;

export interface GatewayClientOptions {
  config?: string;
  url?: string;
  key?: string;
}

/**
 * A CLI command's connection to a running gateway: its address (`listen` in the config, or `--url`) and a
 * short-lived token for one of the config's keys, signed with the data directory's token secret exactly as
 * `claude-code-gateway token` does. The key itself is never read, sent or printed.
 */
export class GatewayClient {
  readonly url: string;
  readonly keyId: string;
  private readonly credential: string;
  /** Where the address came from, for messages. */
  private readonly urlSource: string;

  constructor(
    private readonly ctx: CliContext,
    opts: GatewayClientOptions,
  ) {
    const { config } = ctx;
    this.url = (opts.url ?? localGatewayUrl(config)).replace(/\/+$/, '');
    this.urlSource = opts.url === undefined ? `"listen" in ${ctx.file}` : '--url';
    if (opts.url === undefined && config.listen.port === 0) {
      throw new UsageError(`"listen.port" in ${ctx.file} is 0 (a free port picked at start), so the gateway's address is unknown: pass --url with the address \`serve\` printed`);
    }
    if (!URL.canParse(this.url) || !/^https?:$/.test(new URL(this.url).protocol)) throw new UsageError(`--url: expected the gateway's address like http://127.0.0.1:4747, got "${opts.url}"`);
    const ring = cliKeyRing(config, { createLocalKey: config.keys.length === 0 });
    const usable = config.keys.filter((k) => !k.revoked);
    const id = opts.key ?? (config.keys.length ? (usable.find((k) => k.admin) ?? usable[0])?.id : LOCAL_KEY_ID);
    if (!id) throw new UsageError(`every key in ${ctx.file} is revoked`);
    if (!ring.get(id)) throw new UsageError(`--key: no key with id "${id}" (keys: ${config.keys.map((k) => k.id).join(', ') || LOCAL_KEY_ID})`);
    if (ring.get(id)?.revoked) throw new UsageError(`--key: key "${id}" is revoked`);
    this.keyId = id;
    this.credential = ring.issueToken(id, TOKEN_TTL_MS);
  }

  static fromOptions(opts: GatewayClientOptions): GatewayClient {
    return new GatewayClient(loadCliConfig(opts.config), opts);
  }

  /** The keys of the config that may use admin routes, for hints. */
  get adminKeys(): string[] {
    const { keys } = this.ctx.config;
    return keys.length ? keys.filter((k) => k.admin && !k.revoked).map((k) => k.id) : [LOCAL_KEY_ID];
  }

  /**
   * One JSON request. A refused request becomes an error that says what to do: `UsageError` (exit 2) when the
   * gateway says the request itself is wrong, a plain `Error` (exit 1) when it cannot be done as asked.
   */
  async request<T>(method: 'GET' | 'POST', route: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${route}`, {
        method,
        headers: { authorization: `Bearer ${this.credential}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      throw new Error(this.notRunning(err));
    }
    const text = await res.text();
    let json: { error?: { message?: string } } | undefined;
    try {
      json = JSON.parse(text);
    } catch {
      // Not JSON: not our gateway (handled below).
    }
    const code = res.headers.get('x-gateway-error');
    if (res.ok && json && !code) return json as T;
    if (!code) {
      throw new Error(`${this.url} answered ${method} ${route} with HTTP ${res.status}, not as Claude Code Gateway does; ${this.urlSource} must be the gateway's address.`);
    }
    const message = json?.error?.message ?? `HTTP ${res.status}`;
    switch (code) {
      case 'CCGW_NO_CREDENTIAL':
      case 'CCGW_UNKNOWN_KEY':
      case 'CCGW_EXPIRED_TOKEN':
        throw new Error(
          `the gateway at ${this.url} does not accept key "${this.keyId}": this command signs a short-lived token with the secret in ${this.ctx.config.dataDir}, so it must be given the config the gateway was started with (--config; now ${this.ctx.file}).`,
        );
      case 'CCGW_REVOKED_KEY':
        throw new Error(`the gateway at ${this.url} says key "${this.keyId}" is revoked; pick another with --key.`);
      case 'CCGW_FORBIDDEN':
        throw new Error(`the gateway at ${this.url} refused: ${message} ${this.adminHint()}`);
      case 'CCGW_INVALID_REQUEST':
      case 'CCGW_UNKNOWN_BUDGET':
        throw new UsageError(message);
      case 'CCGW_NOT_FOUND':
        throw new Error(`the gateway at ${this.url} has no ${method} ${route}: it runs an older version than this command (${VERSION}); restart it with this version.`);
      default:
        throw new Error(`the gateway at ${this.url} answered HTTP ${res.status}: ${message}`);
    }
  }

  private adminHint(): string {
    const admins = this.adminKeys.filter((id) => id !== this.keyId);
    return admins.length ? `Use an admin key: --key ${admins.join(' or --key ')}.` : `No key in ${this.ctx.file} has "admin": true; add it to the key that should manage budgets.`;
  }

  private notRunning(err: unknown): string {
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : (e.cause?.code ?? e.message);
    const start = this.urlSource === '--url' ? 'start it there, or correct --url' : `start it with \`${selfCommand(this.ctx, 'serve')}\`, or pass --url if it listens elsewhere`;
    return `no gateway is running at ${this.url} (${this.urlSource}; ${why}): ${start}.`;
  }
}
