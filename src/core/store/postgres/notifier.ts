import { Client, type ClientConfig } from 'pg';
import { Emitter, type Disposable, type Event } from '../../events';
import { backoff, ident } from './sql';

/** One notification heard on a channel. */
export interface Notice {
  channel: string;
  payload: string;
}

/** Checks the listening connection this often; a check that gets no answer in as long reconnects. */
export const HEARTBEAT_MS = 5000;

/**
 * One dedicated connection that LISTENs on the store's channels (a pooled connection cannot: LISTEN belongs to its
 * session). It reconnects by itself with backoff when the connection breaks or a heartbeat goes unanswered, and fires
 * `onDidConnect` with `reconnect: true` once it listens again: notifications sent while it was away are lost, so
 * whoever follows a table re-reads it then.
 */
export class PgNotifier implements Disposable {
  private client?: Client;
  private closed = false;
  private attempt = 0;
  private retryTimer?: NodeJS.Timeout;
  private heartbeat?: NodeJS.Timeout;
  private connecting?: Promise<void>;
  private everConnected = false;
  private readonly notices = new Emitter<Notice>();
  private readonly connects = new Emitter<{ reconnect: boolean }>();
  /** Set while the connection is down: why. */
  failure?: { code: string; message: string };
  readonly onNotice: Event<Notice> = this.notices.event;
  readonly onDidConnect: Event<{ reconnect: boolean }> = this.connects.event;

  constructor(
    private readonly config: ClientConfig,
    private readonly channels: readonly string[],
  ) {}

  /** Connects and listens; rejects when the first connection fails (later breaks are retried for ever). */
  start(): Promise<void> {
    return this.connect(true);
  }

  get listening(): boolean {
    return this.client !== undefined && !this.connecting;
  }

  private connect(first = false): Promise<void> {
    if (this.connecting) return this.connecting;
    const run = async () => {
      const client = new Client({ ...this.config, keepAlive: true });
      client.on('error', (err) => this.lost(client, err));
      client.on('end', () => this.lost(client, new Error('the listening connection ended')));
      client.on('notification', (n) => {
        if (n.channel && this.channels.includes(n.channel)) this.notices.fire({ channel: n.channel, payload: n.payload ?? '' });
      });
      try {
        await client.connect();
        for (const c of this.channels) await client.query(`LISTEN ${ident(c)}`);
      } catch (err) {
        client.removeAllListeners('end');
        client.end().catch(() => undefined);
        throw err;
      }
      if (this.closed) {
        await client.end().catch(() => undefined);
        return;
      }
      this.client = client;
      this.attempt = 0;
      this.failure = undefined;
      this.startHeartbeat(client);
      const reconnect = this.everConnected;
      this.everConnected = true;
      this.connecting = undefined;
      this.connects.fire({ reconnect });
    };
    this.connecting = run().catch((err) => {
      this.connecting = undefined;
      this.fail(err);
      if (first) throw err;
      this.scheduleRetry();
    });
    return this.connecting;
  }

  /** The connection broke: forget it and try again after a backoff. */
  private lost(client: Client, err: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.stopHeartbeat();
    client.removeAllListeners('end');
    client.end().catch(() => undefined);
    if (this.closed) return;
    this.fail(err);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, backoff(this.attempt++));
    this.retryTimer.unref();
  }

  private startHeartbeat(client: Client): void {
    this.stopHeartbeat();
    this.heartbeat = setInterval(() => {
      const timeout = setTimeout(() => this.lost(client, new Error(`the listening connection did not answer within ${HEARTBEAT_MS} ms`)), HEARTBEAT_MS);
      timeout.unref();
      client.query('SELECT 1').then(
        () => clearTimeout(timeout),
        (err: Error) => {
          clearTimeout(timeout);
          this.lost(client, err);
        },
      );
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private fail(err: unknown): void {
    const e = err as { code?: string; message?: string };
    this.failure = { code: e.code ?? 'ECONNECTION', message: `the store's notification connection is down (${e.code ?? e.message})` };
  }

  dispose(): void {
    void this.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.stopHeartbeat();
    const c = this.client;
    this.client = undefined;
    this.notices.dispose();
    this.connects.dispose();
    if (c) {
      c.removeAllListeners('end');
      await c.end().catch(() => undefined);
    }
  }
}
