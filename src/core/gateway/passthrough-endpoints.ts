import { Errors } from '../errors';

/** How the gateway treats one Anthropic API endpoint on the passthrough route. */
export type EndpointClass =
  /** A model call: admitted against budgets and limits, metered from the answer. */
  | 'metered'
  /** Free to call (listing models, reading or cancelling batches, files): forwarded and recorded at $0. */
  | 'free'
  /** Costs money the gateway cannot meter (batch creation) or is unknown to the gateway: refused unless the profile allows it. */
  | 'refused';

export interface EndpointVerdict {
  kind: EndpointClass;
  /** `POST /v1/messages/batches`: what refusals and the audit log name. */
  endpoint: string;
  /** True when the endpoint is refused by default but the profile's `allowUnmetered` lets it through. */
  unmetered?: boolean;
  /** True for `count_tokens` (recorded, never priced). */
  countTokens?: boolean;
}

const ID = '[A-Za-z0-9_-]+';
// Endpoints of Anthropic's API (and LiteLLM's /anthropic route) the gateway knows, by method and path (query ignored).
const KNOWN: ReadonlyArray<[RegExp, EndpointClass]> = [
  [/^POST \/v1\/messages$/, 'metered'],
  [/^POST \/v1\/messages\/count_tokens$/, 'metered'],
  [/^GET \/v1\/models$/, 'free'],
  [new RegExp(`^GET /v1/models/${ID}$`), 'free'],
  // Message Batches: creating one spends money hours later, out of sight of the gateway; reading, cancelling and
  // deleting cost nothing.
  [/^POST \/v1\/messages\/batches$/, 'refused'],
  [/^GET \/v1\/messages\/batches$/, 'free'],
  [new RegExp(`^GET /v1/messages/batches/${ID}(/results)?$`), 'free'],
  [new RegExp(`^POST /v1/messages/batches/${ID}/cancel$`), 'free'],
  [new RegExp(`^DELETE /v1/messages/batches/${ID}$`), 'free'],
  // Files API: uploads and reads are free (a file costs when a message uses it, and that call is metered).
  [/^(GET|POST) \/v1\/files$/, 'free'],
  [new RegExp(`^(GET|DELETE) /v1/files/${ID}(/content)?$`), 'free'],
];

/** A profile's `allowUnmetered` entry: `METHOD /path`, `*` for any method; `*` matches one path segment, a final `/**` any rest. */
export const ALLOW_UNMETERED_ENTRY = /^(\*|GET|POST|PUT|PATCH|DELETE) \/[A-Za-z0-9_*./-]*$/;

/** Compiles `allowUnmetered` entries into one matcher over `METHOD /path`. */
export function allowMatcher(entries: readonly string[] | undefined): (endpoint: string) => boolean {
  if (!entries?.length) return () => false;
  const patterns = entries.map((e) => {
    const [method, path] = e.split(' ');
    const body = path
      .split('/')
      .map((seg) => (seg === '**' ? '.*' : seg.split('*').map(escapeRegExp).join('[^/]*')))
      .join('/')
      .replace(/\/\.\*$/, '(?:/.*)?');
    return new RegExp(`^${method === '*' ? '[A-Z]+' : method} ${body}$`);
  });
  return (endpoint) => patterns.some((p) => p.test(endpoint));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Classifies one passthrough request (`path` without query and without the LiteLLM `/anthropic` prefix). An
 * endpoint the gateway does not know may cost money it cannot see, so it is refused like batch creation unless
 * the profile lists it in `allowUnmetered`; what is allowed that way is forwarded and recorded as unmetered.
 */
export function classifyEndpoint(method: string, path: string, allowed: (endpoint: string) => boolean): EndpointVerdict {
  const endpoint = `${method} ${path}`;
  let kind: EndpointClass = 'refused';
  for (const [pattern, k] of KNOWN) {
    if (pattern.test(endpoint)) {
      kind = k;
      break;
    }
  }
  if (kind === 'refused') return allowed(endpoint) ? { kind: 'free', endpoint, unmetered: true } : { kind, endpoint };
  return { kind, endpoint, countTokens: kind === 'metered' && path.endsWith('/count_tokens') };
}

/** The refusal for an endpoint the gateway does not meter, naming the profile option that would allow it. */
export function unmeteredRefusal(verdict: EndpointVerdict, profileName: string): Error {
  const batches = verdict.endpoint === 'POST /v1/messages/batches';
  const why = batches
    ? 'Message Batches are billed when the batch runs, out of the gateway\'s sight, so no budget could hold them'
    : 'the gateway does not know this endpoint, so it cannot tell whether or what it costs';
  return new Errors.UnmeteredEndpoint(
    `${verdict.endpoint} is not forwarded: ${why}. To forward it anyway (unmetered, recorded as such), add "${verdict.endpoint}" to "allowUnmetered" of profile "${profileName}".`,
  );
}
