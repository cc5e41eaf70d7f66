/** Splits a profile's base URL into the origin the client connects to and a path prefix. */
export function splitBaseUrl(baseUrl: string): { origin: string; prefix: string } {
  const url = new URL(baseUrl);
  return { origin: url.origin, prefix: url.pathname.replace(/\/+$/, '') };
}

/**
 * Joins a base URL and a request path (with its query). The path comes from a route the gateway matched,
 * so it always starts with "/"; the origin is fixed by the profile and nothing in the path can change it.
 */
export function upstreamTarget(baseUrl: string, pathAndQuery: string): { origin: string; path: string } {
  const { origin, prefix } = splitBaseUrl(baseUrl);
  const rest = pathAndQuery.startsWith('/') ? pathAndQuery : `/${pathAndQuery}`;
  return { origin, path: `${prefix}${rest}` };
}
