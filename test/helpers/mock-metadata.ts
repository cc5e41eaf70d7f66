import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TokenIssuer } from './mock-google';

const FLAVOR = { 'metadata-flavor': 'Google', server: 'Metadata Server for VM' };

/** One request as the metadata server received it. */
export interface MetadataRequest {
  path: string;
  /** The `Metadata-Flavor` header it carried, if any. */
  flavor?: string;
}

/**
 * The Google Compute Engine metadata server (also what Cloud Run and GKE workload identity expose), speaking its
 * real protocol: every request must carry `Metadata-Flavor: Google` (else 403), every answer carries it back; the
 * default service account's token at `instance/service-accounts/default/token`, the project id at `project/project-id`.
 */
export class MockMetadataServer {
  readonly issuer = new TokenIssuer();
  readonly requests: MetadataRequest[] = [];
  /** Requests refused for a missing or wrong `Metadata-Flavor` header. */
  refused = 0;
  /** "fail" answers every request with 500; "hang" accepts requests and never answers them. */
  mode: 'ok' | 'fail' | 'hang' = 'ok';
  private server?: http.Server;

  constructor(readonly projectId = 'test-proj') {}

  /** `host:port`, the form GCE_METADATA_HOST takes. */
  get host(): string {
    return `127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  /** Token requests received (answered or not). */
  get tokenRequests(): MetadataRequest[] {
    return this.requests.filter((r) => r.path.startsWith('/computeMetadata/v1/instance/service-accounts/default/token'));
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return this;
  }

  async stop(): Promise<void> {
    // Hung requests hold their sockets open: close them, or close() would wait for them.
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const flavor = req.headers['metadata-flavor'] as string | undefined;
    const url = new URL(req.url ?? '/', 'http://metadata.google.internal');
    this.requests.push({ path: url.pathname + url.search, flavor });
    const text = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { ...FLAVOR, 'content-type': type }).end(body);
    };
    // The real server refuses requests without the header, and proxied ones, so a browser or SSRF cannot read tokens.
    if (flavor !== 'Google' || req.headers['x-forwarded-for'] !== undefined) {
      this.refused++;
      return text(403, 'Missing required header "Metadata-Flavor": "Google"\n');
    }
    if (this.mode === 'hang') return;
    if (this.mode === 'fail') return text(500, 'Internal Server Error\n');
    switch (url.pathname) {
      case '/computeMetadata/v1/instance':
      case '/computeMetadata/v1/instance/':
        return text(200, 'attributes/\nhostname\nid\nservice-accounts/\nzone\n');
      case '/computeMetadata/v1/instance/service-accounts/default/token':
        return text(200, JSON.stringify(this.issuer.issue('gce')), 'application/json');
      case '/computeMetadata/v1/instance/service-accounts/default/email':
        return text(200, `gateway@${this.projectId}.iam.gserviceaccount.com`);
      case '/computeMetadata/v1/project/project-id':
        return text(200, this.projectId);
      case '/computeMetadata/v1/universe/universe-domain':
        return text(200, 'googleapis.com');
      default:
        return text(404, 'Not Found\n', 'text/html; charset=UTF-8');
    }
  }
}
