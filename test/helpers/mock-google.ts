import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, verify } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** Access tokens issued by the stand-in token endpoints, with their expiry. */
export class TokenIssuer {
  private issued = new Map<string, number>();
  private n = 0;
  /** Lifetime of the next tokens, in seconds. */
  lifetimeS = 3600;
  readonly log: string[] = [];

  issue(kind: string): { access_token: string; expires_in: number; token_type: string } {
    const token = `ya29.test-${kind}-${++this.n}`;
    this.issued.set(token, Date.now() + this.lifetimeS * 1000);
    this.log.push(token);
    return { access_token: token, expires_in: this.lifetimeS, token_type: 'Bearer' };
  }

  /** True only for a token this issuer issued and that has not expired. */
  valid(token: string): boolean {
    const exp = this.issued.get(token);
    return exp !== undefined && exp > Date.now();
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let b = '';
    req.on('data', (c) => (b += c));
    req.on('end', () => resolve(b));
  });
}

/** A throwaway CA and a server certificate for oauth2.googleapis.com, made with openssl. */
export function makeTestCa(dir: string): { caFile: string; key: string; cert: string } {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=ccgw test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=oauth2.googleapis.com']);
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:oauth2.googleapis.com\n');
  run(['x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.pem', '-days', '1', '-extfile', 'ext.cnf']);
  return { caFile: path.join(dir, 'ca.pem'), key: fs.readFileSync(path.join(dir, 'srv.key'), 'utf8'), cert: fs.readFileSync(path.join(dir, 'srv.pem'), 'utf8') };
}

/**
 * Google's OAuth token endpoint for service-account keys, reached the way google-auth-library reaches it:
 * https://oauth2.googleapis.com/token through HTTPS_PROXY. The proxy sends CONNECTs for that host to a
 * local TLS server (certificate from a test CA) that verifies the RS256 JWT assertion and issues tokens.
 */
export class MockGoogleOAuth {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-google-'));
  readonly issuer = new TokenIssuer();
  readonly connects: string[] = [];
  keyFile = '';
  caFile = '';
  private tls?: https.Server;
  private proxy?: http.Server;
  private publicKey = '';
  /** Tunnelled sockets: CONNECT sockets leave the HTTP server's bookkeeping, so stop() closes them itself. */
  private tunnels = new Set<net.Socket>();

  get proxyUrl(): string {
    return `http://127.0.0.1:${(this.proxy!.address() as net.AddressInfo).port}`;
  }

  async start(): Promise<this> {
    const ca = makeTestCa(this.dir);
    this.caFile = ca.caFile;
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.publicKey = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    this.keyFile = path.join(this.dir, 'sa.json');
    fs.writeFileSync(
      this.keyFile,
      JSON.stringify({
        type: 'service_account',
        project_id: 'test-proj',
        private_key_id: 'k1',
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        client_email: 'gateway@test-proj.iam.gserviceaccount.com',
        client_id: '1',
        token_uri: 'https://oauth2.googleapis.com/token',
      }),
    );
    this.tls = https.createServer({ key: ca.key, cert: ca.cert }, (req, res) => void this.token(req, res));
    await new Promise<void>((r) => this.tls!.listen(0, '127.0.0.1', r));
    this.proxy = http.createServer((_req, res) => res.writeHead(405).end());
    this.proxy.on('connect', (req, socket: net.Socket, head) => {
      this.connects.push(req.url ?? '');
      this.tunnels.add(socket);
      socket.on('close', () => this.tunnels.delete(socket));
      if (req.url !== 'oauth2.googleapis.com:443') {
        socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
        return;
      }
      const upstream = net.connect((this.tls!.address() as net.AddressInfo).port, '127.0.0.1', () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(socket).pipe(upstream);
      });
      this.tunnels.add(upstream);
      upstream.on('close', () => this.tunnels.delete(upstream));
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
    });
    await new Promise<void>((r) => this.proxy!.listen(0, '127.0.0.1', r));
    return this;
  }

  private async token(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const form = new URLSearchParams(await readBody(req));
    const fail = (why: string): void => {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_grant', error_description: why }));
    };
    if (req.url !== '/token' || form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return fail('unsupported grant');
    const [h, p, s] = (form.get('assertion') ?? '').split('.');
    if (!s || !verify('RSA-SHA256', Buffer.from(`${h}.${p}`), this.publicKey, Buffer.from(s, 'base64url'))) return fail('Invalid JWT Signature.');
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as { iss?: string; aud?: string; scope?: string; exp?: number };
    if (claims.iss !== 'gateway@test-proj.iam.gserviceaccount.com' || claims.aud !== 'https://oauth2.googleapis.com/token') return fail('bad iss/aud');
    if (!claims.scope?.split(' ').includes('https://www.googleapis.com/auth/cloud-platform')) return fail('missing cloud-platform scope');
    if (!claims.exp || claims.exp * 1000 < Date.now()) return fail('Invalid JWT: Token must be a short-lived token');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(this.issuer.issue('sa')));
  }

  async stop(): Promise<void> {
    for (const s of this.tunnels) s.destroy();
    this.proxy?.closeAllConnections();
    this.tls?.closeAllConnections();
    await Promise.all([new Promise((r) => this.proxy?.close(r)), new Promise((r) => this.tls?.close(r))]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A workload-identity-federation (external_account) setup: a subject-token file and a local STS endpoint
 * at the file's own `token_url`, which exchanges the subject token for an access token.
 */
export class MockGoogleSts {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-sts-'));
  readonly issuer = new TokenIssuer();
  credentialsFile = '';
  /** Fault to play: "fail" answers 500, "expired" issues tokens that expired a minute ago. */
  mode: 'ok' | 'fail' | 'expired' = 'ok';
  /** Wait this long before answering (a slow or hung token endpoint). */
  delayMs = 0;
  private server?: http.Server;

  async start(): Promise<this> {
    this.server = http.createServer(async (req, res) => {
      const form = new URLSearchParams(await readBody(req));
      if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
      if (this.mode === 'fail') {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'internal_failure', error_description: 'The token service is unavailable.' }));
        return;
      }
      if (this.mode === 'expired') {
        const lifetime = this.issuer.lifetimeS;
        this.issuer.lifetimeS = -60;
        const t = this.issuer.issue('wif');
        this.issuer.lifetimeS = lifetime;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...t, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' }));
        return;
      }
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:token-exchange' || form.get('subject_token') !== 'subject-token-from-idp') {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_grant', error_description: 'The subject token is invalid.' }));
        return;
      }
      const t = this.issuer.issue('wif');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...t, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' }));
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    const port = (this.server.address() as net.AddressInfo).port;
    fs.writeFileSync(path.join(this.dir, 'subject-token'), 'subject-token-from-idp');
    this.credentialsFile = path.join(this.dir, 'wif.json');
    fs.writeFileSync(
      this.credentialsFile,
      JSON.stringify({
        type: 'external_account',
        audience: '//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q',
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        token_url: `http://127.0.0.1:${port}/v1/token`,
        credential_source: { file: path.join(this.dir, 'subject-token') },
      }),
    );
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
