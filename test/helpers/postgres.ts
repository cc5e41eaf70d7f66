import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A throwaway PostgreSQL cluster on 127.0.0.1 for one test run, owned by an unprivileged user. */
export interface TestPostgres {
  host: string;
  port: number;
  /** The superuser's connection URL (database `postgres`): for setting up roles, and for "an owner with more rights" in tests. */
  superUrl: string;
  /** A URL for `database` as `user` (trust authentication on loopback: roles still decide what each may do). */
  url(user: string, database: string): string;
  /** Runs SQL as the superuser through psql; returns its stdout. */
  psql(sql: string, database?: string): Promise<string>;
  /** Stops the server (`pg_ctl stop -m fast`), e.g. to test a database outage; `start()` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its folder. */
  destroy(): Promise<void>;
}

/** The newest Debian PostgreSQL binaries folder, or a clear error saying how to install them. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (!versions.length) {
    throw new Error('PostgreSQL is not installed: these tests need a real server (as root: apt-get install -y postgresql; .ci/run installs it).');
  }
  return path.join(root, versions[0], 'bin');
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/**
 * Starts a new cluster with initdb and pg_ctl in a temp folder, as the `postgres` user when running as root (the
 * server refuses to run as root), listening on 127.0.0.1 and a free port only, with its socket in its own folder.
 */
export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = postgresBinDir();
  const asRoot = process.getuid?.() === 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-pg-'));
  const data = path.join(dir, 'data');
  if (asRoot) {
    const pg = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    if (pg.status !== 0) throw new Error('Running as root, PostgreSQL needs the unprivileged "postgres" user (apt-get install -y postgresql creates it).');
    fs.chownSync(dir, Number(pg.stdout.trim()), Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim()));
  }
  const as = (cmd: string, args: string[]) => (asRoot ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args));
  await as(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8']);
  const port = await freePort();
  const options = `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${dir} -c fsync=off -c max_connections=200`;
  const start = async () => {
    await as(path.join(bin, 'pg_ctl'), ['start', '-w', '-t', '60', '-D', data, '-l', path.join(dir, 'server.log'), '-o', options]);
  };
  const stop = async () => {
    if (fs.existsSync(path.join(data, 'postmaster.pid'))) await as(path.join(bin, 'pg_ctl'), ['stop', '-w', '-m', 'fast', '-D', data]);
  };
  await start();
  const host = '127.0.0.1';
  const url = (user: string, database: string) => `postgres://${encodeURIComponent(user)}@${host}:${port}/${encodeURIComponent(database)}`;
  return {
    host,
    port,
    superUrl: url('postgres', 'postgres'),
    url,
    async psql(sql, database = 'postgres') {
      const { stdout } = await run(path.join(bin, 'psql'), ['-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-h', host, '-p', String(port), '-U', 'postgres', '-d', database, '-c', sql]);
      return stdout;
    },
    stop,
    start,
    async destroy() {
      await stop().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
