import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Static test credentials written to the shared credentials file. */
export const STATIC_KEY = { id: 'AKIATESTSTATIC000001', secret: 'test/static/secret/key/0000000000000000000' };
export const DEFAULT_KEY = { id: 'AKIATESTDEFAULT00001', secret: 'test/default/secret/key/000000000000000000' };

/** A temp folder with AWS config/credentials files and a counting credential_process. */
export interface AwsTestFiles {
  dir: string;
  env: Record<string, string>;
  /** How many times credential_process has run. */
  processRuns(): number;
  /** Lifetime of the credentials the process prints next (Expiration = now + ms). */
  setLifetime(ms: number): void;
  /** Looks up any key the files or the process issued (for the mock's signature check). */
  lookup(accessKeyId: string, sessionToken?: string): { secret: string; expiresAt?: number } | undefined;
  cleanup(): void;
}

const PROCESS_SCRIPT = `
const fs = require('fs'); const path = require('path');
const dir = process.argv[2];
const counter = path.join(dir, 'counter');
const n = (fs.existsSync(counter) ? Number(fs.readFileSync(counter, 'utf8')) : 0) + 1;
fs.writeFileSync(counter, String(n));
const lifetime = Number(fs.readFileSync(path.join(dir, 'lifetime-ms'), 'utf8'));
const exp = Date.now() + lifetime;
process.stdout.write(JSON.stringify({ Version: 1, AccessKeyId: 'ASIATESTPROC' + String(n).padStart(8, '0'), SecretAccessKey: 'proc-secret-' + n, SessionToken: 'proc-token-' + n + '-' + exp, Expiration: new Date(exp).toISOString() }));
`;

export function writeAwsFiles(): AwsTestFiles {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-aws-'));
  fs.writeFileSync(path.join(dir, 'cred-process.js'), PROCESS_SCRIPT);
  fs.writeFileSync(path.join(dir, 'lifetime-ms'), String(60 * 60_000));
  fs.writeFileSync(
    path.join(dir, 'credentials'),
    `[default]\naws_access_key_id = ${DEFAULT_KEY.id}\naws_secret_access_key = ${DEFAULT_KEY.secret}\n\n[static]\naws_access_key_id = ${STATIC_KEY.id}\naws_secret_access_key = ${STATIC_KEY.secret}\n\n[wrong-secret]\naws_access_key_id = ${STATIC_KEY.id}\naws_secret_access_key = not-the-right-secret\n`,
  );
  fs.writeFileSync(
    path.join(dir, 'config'),
    [
      '[default]',
      'region = us-east-1',
      '[profile proc]',
      `credential_process = ${process.execPath} ${path.join(dir, 'cred-process.js')} ${dir}`,
      '[profile sso-expired]',
      'sso_session = corp',
      'sso_account_id = 111122223333',
      'sso_role_name = Dev',
      '[sso-session corp]',
      'sso_start_url = https://corp.awsapps.com/start',
      'sso_region = us-east-1',
      '',
    ].join('\n'),
  );
  return {
    dir,
    env: { AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'credentials'), AWS_CONFIG_FILE: path.join(dir, 'config') },
    processRuns: () => {
      const f = path.join(dir, 'counter');
      return fs.existsSync(f) ? Number(fs.readFileSync(f, 'utf8')) : 0;
    },
    setLifetime: (ms) => fs.writeFileSync(path.join(dir, 'lifetime-ms'), String(ms)),
    lookup(id, token) {
      if (id === STATIC_KEY.id) return { secret: STATIC_KEY.secret };
      if (id === DEFAULT_KEY.id) return { secret: DEFAULT_KEY.secret };
      const m = /^ASIATESTPROC(\d{8})$/.exec(id);
      const t = token ? /^proc-token-(\d+)-(\d+)$/.exec(token) : null;
      if (!m || !t || Number(t[1]) !== Number(m[1])) return undefined;
      return { secret: `proc-secret-${Number(m[1])}`, expiresAt: Number(t[2]) };
    },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
