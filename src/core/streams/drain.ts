/**
 * How long, and how many bytes, the upstream is read on after its client has gone, so that the call is charged the
 * upstream's own final usage (`message_delta`, a body's `usage`) rather than an estimate: an answer that was nearly done
 * (the common case, and a client that hangs up just before the final usage on purpose) ends well within it. Past the
 * bound the upstream request is aborted (generation stops) and the call is charged an estimate of what it streamed.
 * Anthropic bills what it generated, so the bound also caps what an abandoned call keeps spending: ~2 s of output.
 */
export const DRAIN_AFTER_CLIENT_MS = 2000;
export const DRAIN_AFTER_CLIENT_BYTES = 8 << 20;

/**
 * Reads an upstream body on after its client has gone (see DRAIN_AFTER_CLIENT_MS): chunks still go to the usage tap;
 * at the time or byte bound, `stop` aborts the upstream.
 */
export class ClientGoneDrain {
  gone = false;
  private bytes = 0;
  private timer?: NodeJS.Timeout;

  constructor(private readonly stop: () => void) {}

  /** The client left: resume a body paused for its backpressure, and arm the time bound. */
  start(body: { resume(): unknown }): void {
    this.gone = true;
    this.timer = setTimeout(this.stop, DRAIN_AFTER_CLIENT_MS);
    body.resume();
  }

  /** Counts a chunk read after the client left; stops the drain past the byte bound. */
  take(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes > DRAIN_AFTER_CLIENT_BYTES) this.stop();
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}
