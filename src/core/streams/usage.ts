import { StringDecoder } from 'node:string_decoder';

/** Token counts of one model call, as the upstream reported them. */
export interface Usage {
  input: number;
  output: number;
  /** Cache writes with the 5-minute TTL. */
  cacheWrite5m: number;
  /** Cache writes with the 1-hour TTL. */
  cacheWrite1h: number;
  cacheRead: number;
}

export function emptyUsage(): Usage {
  return { input: 0, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0 };
}

export function totalTokens(u: Usage): number {
  return u.input + u.output + u.cacheWrite5m + u.cacheWrite1h + u.cacheRead;
}

/** Anthropic's `usage` object as it appears in responses and stream events. */
export interface AnthropicUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  cache_creation?: { ephemeral_5m_input_tokens?: number | null; ephemeral_1h_input_tokens?: number | null } | null;
}

/** Bedrock Converse's `usage` (responses and the stream's `metadata` event): camelCase, cache tokens beside the input. */
export interface ConverseUsage {
  inputTokens?: number | null;
  outputTokens?: number | null;
  cacheReadInputTokens?: number | null;
  cacheWriteInputTokens?: number | null;
}

/** Bedrock's `amazon-bedrock-invocationMetrics` (the last chunk of every InvokeModelWithResponseStream, any model family). */
export interface InvocationMetrics {
  inputTokenCount?: number | null;
  outputTokenCount?: number | null;
  cacheReadInputTokenCount?: number | null;
  cacheWriteInputTokenCount?: number | null;
}

/** The generated output a delta carries: Anthropic's text, thinking and tool input; Converse's text, tool input and reasoning. */
interface OutputDelta {
  stop_reason?: string | null;
  text?: unknown;
  thinking?: unknown;
  partial_json?: unknown;
  toolUse?: { input?: unknown };
  reasoningContent?: { text?: unknown };
}

/** The events Claude Code and the SDKs produce, and the Bedrock Converse ones the gateway reads usage from. */
export interface UsageEvent {
  type?: string;
  message?: { model?: string; usage?: AnthropicUsage };
  usage?: AnthropicUsage & ConverseUsage;
  delta?: OutputDelta;
  stop_reason?: string | null;
  /** Converse: `messageStop` and a whole response carry it. */
  stopReason?: string | null;
  error?: { type?: string };
  model?: string;
  'amazon-bedrock-invocationMetrics'?: InvocationMetrics;
  /** Other families' stream chunks on Bedrock InvokeModel: Llama, Titan, Claude text completions, Mistral, Cohere, Nova. */
  generation?: unknown;
  outputText?: unknown;
  completion?: unknown;
  outputs?: Array<{ text?: unknown }>;
  text?: unknown;
  contentBlockDelta?: { delta?: { text?: unknown } };
}

/**
 * UTF-8 bytes per token for output the upstream never reported (a call that ended before its final usage). Claude's
 * tokenizer averages about 3.5-4 characters of English per token and about 3 for code and JSON; a CJK character is 3
 * bytes and about one token. So 3 bytes per token over-counts prose by a quarter and is about right for code and CJK:
 * an estimate errs towards the budget, never towards a free call.
 */
export const ESTIMATE_BYTES_PER_TOKEN = 3;

function bytesOf(v: unknown): number {
  return typeof v === 'string' ? Buffer.byteLength(v) : 0;
}

/**
 * Collects usage from the events of one response. `message_delta` usage is cumulative, so each field
 * takes the last value reported, never a sum.
 */
export class UsageCollector {
  readonly usage: Usage = emptyUsage();
  model?: string;
  stopReason?: string;
  /** The error event or error body type, when the upstream reported one. */
  errorType?: string;
  sawMessageStart = false;
  sawMessageStop = false;
  /**
   * The upstream's final usage arrived: a `message_delta`'s (cumulative), a whole body's, Converse's `metadata`, Bedrock's
   * invocation metrics or token-count headers. Without it the usage is what `message_start` said, and output is estimated.
   */
  finalUsage = false;
  /** UTF-8 bytes of generated output seen so far (text, thinking and tool-input deltas; not signatures or citations). */
  outputBytes = 0;

  /** The output tokens `outputBytes` amounts to (see ESTIMATE_BYTES_PER_TOKEN). */
  get estimatedOutput(): number {
    return Math.ceil(this.outputBytes / ESTIMATE_BYTES_PER_TOKEN);
  }

  /** For a call that ended without its final usage: output is the larger of the estimate and what was reported. */
  applyEstimate(): void {
    if (this.estimatedOutput > this.usage.output) this.usage.output = this.estimatedOutput;
  }

  /**
   * Bedrock's token counts in the response headers (InvokeModel answers carry them for every model family), read when
   * the body gave no usage (Llama, Nova, Mistral, Titan bodies have none in Anthropic's shape). True when found.
   */
  fromHeaders(headers: Record<string, string | string[] | undefined>): boolean {
    const count = (name: string) => {
      const v = headers[name];
      const n = Number(Array.isArray(v) ? v[0] : v);
      return v !== undefined && Number.isFinite(n) && n >= 0 ? n : undefined;
    };
    const input = count('x-amzn-bedrock-input-token-count');
    const output = count('x-amzn-bedrock-output-token-count');
    if (input === undefined && output === undefined) return false;
    this.applyMetrics({
      inputTokenCount: input,
      outputTokenCount: output,
      cacheReadInputTokenCount: count('x-amzn-bedrock-cache-read-input-token-count'),
      cacheWriteInputTokenCount: count('x-amzn-bedrock-cache-write-input-token-count'),
    });
    return true;
  }

  /**
   * Settles the usage of a successful answer: Bedrock's token-count headers when the body gave none; then, when the
   * call ended without its final usage (a stream that stopped before it, or a body cut short), output no less than what
   * was seen, and, when no input was reported either (ConverseStream reports it only at the end), the request body's
   * size in input tokens at the same rate. Returns true when the usage is such an estimate.
   */
  finish(headers: Record<string, string | string[] | undefined>, streaming: boolean, complete: boolean, requestBytes = 0): boolean {
    if (!this.finalUsage) this.fromHeaders(headers);
    if (this.finalUsage) return false;
    if (streaming ? !this.sawMessageStart && this.outputBytes === 0 : complete || this.outputBytes === 0) return false;
    this.applyEstimate();
    const u = this.usage;
    if (u.input + u.cacheRead + u.cacheWrite5m + u.cacheWrite1h === 0) u.input = Math.ceil(requestBytes / ESTIMATE_BYTES_PER_TOKEN);
    return true;
  }

  private applyMetrics(m: InvocationMetrics): void {
    this.finalUsage = true;
    if (typeof m.inputTokenCount === 'number') this.usage.input = m.inputTokenCount;
    if (typeof m.outputTokenCount === 'number') this.usage.output = m.outputTokenCount;
    if (typeof m.cacheReadInputTokenCount === 'number') this.usage.cacheRead = m.cacheReadInputTokenCount;
    if (typeof m.cacheWriteInputTokenCount === 'number') this.usage.cacheWrite5m = m.cacheWriteInputTokenCount;
  }

  /**
   * Applies one Anthropic event (`message_start`, `message_delta`, `message_stop`, `error`) or a whole message, or one
   * Bedrock ConverseStream event (`messageStart`, `contentBlockDelta`, `messageStop`, `metadata`), or another model
   * family's Bedrock stream chunk.
   */
  onEvent(event: UsageEvent): void {
    switch (event.type) {
      case 'message_start':
        this.sawMessageStart = true;
        if (event.message?.model) this.model = event.message.model;
        if (event.message?.usage) this.apply(event.message.usage);
        break;
      case 'content_block_delta': {
        const d = event.delta;
        if (d) this.outputBytes += bytesOf(d.text) + bytesOf(d.thinking) + bytesOf(d.partial_json);
        break;
      }
      case 'contentBlockDelta': {
        const d = event.delta;
        if (d) this.outputBytes += bytesOf(d.text) + bytesOf(d.toolUse?.input) + bytesOf(d.reasoningContent?.text);
        break;
      }
      case 'message_delta':
        if (event.usage) {
          this.apply(event.usage);
          this.finalUsage = true;
        }
        if (event.delta?.stop_reason) this.stopReason = event.delta.stop_reason;
        break;
      case 'message_stop':
        this.sawMessageStop = true;
        break;
      case 'message':
        // A non-streaming response body.
        this.sawMessageStart = this.sawMessageStop = true;
        if (event.model) this.model = event.model;
        if (event.usage) {
          this.apply(event.usage);
          this.finalUsage = true;
        }
        if (event.stop_reason) this.stopReason = event.stop_reason;
        else if (event.stopReason) this.stopReason = event.stopReason;
        break;
      case 'messageStart':
        this.sawMessageStart = true;
        break;
      case 'messageStop':
        this.sawMessageStop = true;
        if (event.stopReason) this.stopReason = event.stopReason;
        break;
      case 'metadata':
        if (event.usage) {
          this.apply(event.usage);
          this.finalUsage = true;
        }
        break;
      case 'error':
        this.errorType = event.error?.type ?? 'error';
        break;
      case undefined:
        // Another family's chunk on Bedrock (no Anthropic `type`): its generated text, by the family's field name.
        this.outputBytes +=
          bytesOf(event.generation) + bytesOf(event.outputText) + bytesOf(event.completion) + bytesOf(event.text) + bytesOf(event.contentBlockDelta?.delta?.text);
        if (Array.isArray(event.outputs)) for (const o of event.outputs) this.outputBytes += bytesOf(o?.text);
        break;
    }
    // The last chunk of a Bedrock stream, any family; for Claude, message_delta's usage came first and is more precise.
    const metrics = event['amazon-bedrock-invocationMetrics'];
    if (metrics && !this.finalUsage) this.applyMetrics(metrics);
  }

  private apply(u: AnthropicUsage & ConverseUsage): void {
    if (u.input_tokens === undefined && typeof u.inputTokens === 'number') {
      // Converse reports one cache-write figure; Bedrock's cache checkpoints take the default 5-minute TTL.
      this.usage.input = u.inputTokens;
      if (typeof u.outputTokens === 'number') this.usage.output = u.outputTokens;
      if (typeof u.cacheReadInputTokens === 'number') this.usage.cacheRead = u.cacheReadInputTokens;
      if (typeof u.cacheWriteInputTokens === 'number') this.usage.cacheWrite5m = u.cacheWriteInputTokens;
      return;
    }
    if (typeof u.input_tokens === 'number') this.usage.input = u.input_tokens;
    if (typeof u.output_tokens === 'number') this.usage.output = u.output_tokens;
    if (typeof u.cache_read_input_tokens === 'number') this.usage.cacheRead = u.cache_read_input_tokens;
    const split = u.cache_creation;
    if (split && (typeof split.ephemeral_5m_input_tokens === 'number' || typeof split.ephemeral_1h_input_tokens === 'number')) {
      const w5 = split.ephemeral_5m_input_tokens ?? 0;
      const w1 = split.ephemeral_1h_input_tokens ?? 0;
      // A total larger than the split (an upstream that fills only part of it): the rest took the default 5-minute TTL.
      const total = typeof u.cache_creation_input_tokens === 'number' ? u.cache_creation_input_tokens : w5 + w1;
      this.usage.cacheWrite5m = w5 + Math.max(0, total - w5 - w1);
      this.usage.cacheWrite1h = w1;
    } else if (typeof u.cache_creation_input_tokens === 'number') {
      // Without the split (a later message_delta often omits it), keep the 1-hour part already known;
      // the rest took Anthropic's default TTL (5 minutes).
      const total = u.cache_creation_input_tokens;
      const w1 = Math.min(this.usage.cacheWrite1h, total);
      this.usage.cacheWrite5m = total - w1;
      this.usage.cacheWrite1h = w1;
    }
  }
}

/** Something that observes a response body chunk by chunk and reports usage at the end. */
export interface UsageTap {
  readonly collector: UsageCollector;
  write(chunk: Buffer): void;
  end(): void;
}

const INTERESTING = /"type"\s*:\s*"(message_start|message_delta|message_stop|error)"/;
const CANONICAL = 'data: {"type":"';
// A quote is escaped inside a JSON string, so `"type":"content_block_delta"` (quotes unescaped) is the event's own type.
const DELTA = /"type"\s*:\s*"content_block_delta"/;
// The member holding a delta's generated output (text_delta, thinking_delta, input_json_delta); the rest carry none.
const DELTA_VALUE = /"(?:text|thinking|partial_json)"\s*:\s*"/;

/**
 * UTF-8 bytes of the generated output in one `content_block_delta` data line, read without parsing it (most lines of a
 * stream are deltas; JSON.parse on each would be most of the tap's cost): the string value of its `text`, `thinking` or
 * `partial_json` member, as escaped on the wire. Fuzzed against JSON.parse in test/unit/usage-taps.test.ts.
 */
export function deltaOutputBytes(line: string): number {
  const m = DELTA_VALUE.exec(line);
  if (!m) return 0;
  const start = m.index + m[0].length;
  let end = line.length;
  for (let i = start; ; ) {
    const q = line.indexOf('"', i);
    if (q === -1) break;
    let backslashes = 0;
    while (q - backslashes - 1 >= start && line.charCodeAt(q - backslashes - 1) === 92) backslashes++;
    if (backslashes % 2 === 0) {
      end = q;
      break;
    }
    i = q + 1;
  }
  return Buffer.byteLength(line.slice(start, end));
}

/**
 * Reads Anthropic SSE (`event:`/`data:` lines) incrementally, parsing only the events that carry usage, and counting the
 * output of the deltas (for a stream that ends before its final usage).
 */
export class SseUsageTap implements UsageTap {
  readonly collector = new UsageCollector();
  private rest = '';
  /** A delta line too long to hold was dropped: the rest of it, up to its newline, is counted as output. */
  private countingRest = false;
  // A multi-byte character can straddle two chunks.
  private readonly decoder = new StringDecoder('utf8');

  write(chunk: Buffer): void {
    const text = this.rest + this.decoder.write(chunk);
    let start = 0;
    let nl: number;
    while ((nl = text.indexOf('\n', start)) !== -1) {
      if (this.countingRest) {
        this.collector.outputBytes += Buffer.byteLength(text.slice(start, nl));
        this.countingRest = false;
      } else this.line(text.slice(start, nl));
      start = nl + 1;
    }
    this.rest = text.slice(start);
    // A data line can be long (a big delta); keep the remainder only while it could be an event we need.
    if (this.rest.length > 1 << 20 && !INTERESTING.test(this.rest)) {
      if (this.countingRest || DELTA.test(this.rest)) {
        this.collector.outputBytes += this.countingRest ? Buffer.byteLength(this.rest) : deltaOutputBytes(this.rest);
        this.countingRest = true;
      }
      this.rest = '';
    }
  }

  end(): void {
    this.rest += this.decoder.end();
    if (this.countingRest) this.collector.outputBytes += Buffer.byteLength(this.rest);
    else if (this.rest) this.line(this.rest);
    this.rest = '';
    this.countingRest = false;
  }

  private line(line: string): void {
    if (!line.startsWith('data:')) return;
    if (line.startsWith(CANONICAL)) {
      // Anthropic's own spelling: the event's type starts at a fixed place, so its first letter sorts the line without a
      // regex (a stream is mostly deltas): content_block_*, message_* (all carry usage or the stop) and error; ping.
      const first = line.charCodeAt(CANONICAL.length);
      if (first === 99 /* c */) {
        if (line.startsWith('content_block_delta"', CANONICAL.length)) this.collector.outputBytes += deltaOutputBytes(line);
        return;
      }
      if (first !== 109 /* m */ && first !== 101 /* e */) return;
    } else if (DELTA.test(line)) {
      this.collector.outputBytes += deltaOutputBytes(line);
      return;
    } else if (!INTERESTING.test(line)) return;
    try {
      this.collector.onEvent(JSON.parse(line.slice(5)));
    } catch {
      // Not JSON: nothing to count.
    }
  }
}

/** Reads a non-streaming JSON body (a message or an error) once it is complete. */
export class JsonUsageTap implements UsageTap {
  readonly collector = new UsageCollector();
  private chunks: Buffer[] = [];
  private size = 0;
  /** Beyond the limit: the first and the last EDGE bytes, where a Messages response keeps `model` and `usage`. */
  private head?: Buffer;
  private tail = Buffer.alloc(0);

  constructor(private readonly limit = 8 << 20) {}

  write(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size <= this.limit) {
      this.chunks.push(chunk);
      return;
    }
    if (!this.head) {
      const all = Buffer.concat([...this.chunks, chunk]);
      this.chunks = [];
      this.head = all.subarray(0, EDGE);
      this.tail = Buffer.from(all.subarray(Math.max(EDGE, all.length - EDGE)));
      return;
    }
    this.tail = Buffer.concat([this.tail, chunk]);
    if (this.tail.length > EDGE) this.tail = Buffer.from(this.tail.subarray(this.tail.length - EDGE));
  }

  end(): void {
    // A body cut short has no usage: its bytes are all the output there is to see, should the call be estimated.
    this.collector.outputBytes = this.size;
    if (this.head) {
      this.endHuge();
      return;
    }
    if (!this.chunks.length) return;
    try {
      const body = JSON.parse(Buffer.concat(this.chunks).toString('utf8'));
      if (body && typeof body === 'object') {
        if (body.type === 'error') this.collector.onEvent(body);
        else if (body.usage) {
          // Our own parse, so it is relabelled in place (a spread copy of the whole answer costs more than it reads).
          body.type = 'message';
          this.collector.onEvent(body);
        }
      }
    } catch {
      // Not JSON: nothing to count.
    }
    this.chunks = [];
  }

  /** A body too large to parse whole (a huge answer must still be priced): `usage` from its tail, `model` from its head. */
  private endHuge(): void {
    const tail = this.tail.toString('utf8');
    const at = tail.lastIndexOf('"usage"');
    const open = at === -1 ? -1 : tail.indexOf('{', at);
    if (open === -1) return;
    let depth = 0;
    for (let i = open; i < tail.length; i++) {
      if (tail[i] === '{') depth++;
      else if (tail[i] === '}' && --depth === 0) {
        try {
          const usage = JSON.parse(tail.slice(open, i + 1)) as AnthropicUsage & ConverseUsage;
          const model = /"model"\s*:\s*"([^"]{1,200})"/.exec(this.head!.toString('utf8'))?.[1];
          const stop = /"stop(?:_r|R)eason"\s*:\s*"([A-Za-z_]{1,50})"/.exec(tail)?.[1];
          this.collector.onEvent({ type: 'message', usage, model, stop_reason: stop });
        } catch {
          // Not a usage object after all: nothing to count.
        }
        return;
      }
    }
  }
}

const EDGE = 64 << 10;

/** Picks the tap for a response by its content type. */
export function tapFor(contentType: string | undefined): UsageTap {
  if (contentType?.includes('text/event-stream')) return new SseUsageTap();
  return new JsonUsageTap();
}
