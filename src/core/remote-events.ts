import { Emitter, type Disposable, type Event } from './events';
import type { ProfileChange } from './runtime';
import type { CallView } from './usage-summary';

/** The first event of a gateway's `/events` stream: which gateway this is. */
export interface GatewayHello {
  instanceId: string;
  version: string;
  callsInFlight: number;
}

/**
 * A client of another gateway's `GET /events` (server-sent events, authenticated with an admin key): the
 * meter of an editor window that attached to the machine's gateway instead of serving its own.
 * `onDidEnd` fires once, when the stream ends or fails (the serving gateway went away).
 */
export class GatewayEventStream implements Disposable {
  private readonly abort = new AbortController();
  private ended = false;
  private readonly _onDidStartCall = new Emitter<{ id: string; profile: string; keyId: string }>();
  private readonly _onDidSettleCall = new Emitter<CallView>();
  private readonly _onDidChangeProfile = new Emitter<ProfileChange>();
  private readonly _onDidEnd = new Emitter<Error | undefined>();
  readonly onDidStartCall: Event<{ id: string; profile: string; keyId: string }> = this._onDidStartCall.event;
  readonly onDidSettleCall: Event<CallView> = this._onDidSettleCall.event;
  readonly onDidChangeProfile: Event<ProfileChange> = this._onDidChangeProfile.event;
  readonly onDidEnd: Event<Error | undefined> = this._onDidEnd.event;

  constructor(
    private readonly url: string,
    private readonly adminKey: string,
  ) {}

  /** Opens the stream; resolves with the gateway's hello, rejects when it cannot be opened. */
  async connect(timeoutMs = 3000): Promise<GatewayHello> {
    const timer = setTimeout(() => this.abort.abort(new Error('timed out opening the event stream')), timeoutMs);
    let res: Response;
    try {
      res = await fetch(`${this.url}/events`, { headers: { authorization: `Bearer ${this.adminKey}`, accept: 'text/event-stream' }, signal: this.abort.signal });
    } finally {
      clearTimeout(timer);
    }
    if (res.status !== 200 || !res.body) throw new Error(`GET /events answered ${res.status}`);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    return new Promise<GatewayHello>((resolve, reject) => {
      let hello = false;
      let buf = '';
      const dispatch = (block: string) => {
        let event = 'message';
        let data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trim();
        }
        if (!data) return;
        const payload = JSON.parse(data);
        if (event === 'hello' && !hello) {
          hello = true;
          resolve(payload as GatewayHello);
        } else if (event === 'start') this._onDidStartCall.fire(payload);
        else if (event === 'settle') this._onDidSettleCall.fire(payload as CallView);
        else if (event === 'profile') this._onDidChangeProfile.fire(payload as ProfileChange);
      };
      const pump = async () => {
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let i: number;
            while ((i = buf.indexOf('\n\n')) !== -1) {
              const block = buf.slice(0, i);
              buf = buf.slice(i + 2);
              dispatch(block);
            }
          }
          this.end(undefined);
        } catch (err) {
          this.end(err as Error);
        }
        if (!hello) reject(new Error('the event stream ended before its hello'));
      };
      void pump();
    });
  }

  private end(err: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.abort.signal.aborted) this._onDidEnd.fire(err);
  }

  dispose(): void {
    this.abort.abort();
    this.ended = true;
    this._onDidEnd.dispose();
    this._onDidChangeProfile.dispose();
    this._onDidSettleCall.dispose();
    this._onDidStartCall.dispose();
  }
}
