import type { TestGateway } from './gateway';
import { MockBedrock } from './mock-bedrock';
import { MockVertex } from './mock-vertex';

/** A gateway's Bedrock and Vertex profiles for one test: Bedrock with a bearer token from `env:<tokenEnv>`, Vertex with the client's own credentials. */
export function cloudProfiles(o: { bedrockUrl: string; vertexUrl: string; projectId: string; tokenEnv: string }) {
  return {
    bedrock: { provider: 'bedrock', region: 'us-east-1', bearerToken: `\${env:${o.tokenEnv}}`, endpoint: o.bedrockUrl },
    vertex: { provider: 'vertex', projectId: o.projectId, region: 'us-east5', credentials: 'client', endpoint: o.vertexUrl },
  };
}

/** A mock Bedrock that takes `bedrockToken` as its bearer token and a mock Vertex that takes `vertexToken`, both started. */
export async function startCloudMocks(bedrockToken: string, vertexToken: string): Promise<{ bedrock: MockBedrock; vertex: MockVertex }> {
  const bedrock = await new MockBedrock(() => undefined).start();
  bedrock.bearerToken = bedrockToken;
  const vertex = await new MockVertex((t) => t === vertexToken).start();
  return { bedrock, vertex };
}

/** A JSON call's headers for a profile route: the gateway key, and on a Vertex profile the client's own token. */
export function cloudHeaders(gw: TestGateway, vertex: boolean, vertexToken: string): Record<string, string> {
  return vertex
    ? { 'proxy-authorization': `Bearer ${gw.key}`, authorization: `Bearer ${vertexToken}`, 'content-type': 'application/json' }
    : { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json' };
}
