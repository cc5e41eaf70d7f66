import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startServing } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

const CLI = path.resolve(__dirname, '../../dist/cli.js');

function tempHome(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-cli-home-'));
}

function writeConfig(dir: string, config: unknown): string {
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

function runCli(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env }, timeout: 20_000 });
}

/** Starts `serve` and resolves once the first stdout line announces the address. */
const serve = (args: string[], env: Record<string, string | undefined>) => startServing(process.execPath, [CLI, 'serve', ...args], env);

describe('the claude-code-gateway CLI (bundled dist/cli.js)', function () {
  this.timeout(30_000);
  let upstream: MockAnthropic;
  before(async () => {
    assert.ok(fs.existsSync(CLI), 'run `npm run build` first');
    upstream = await new MockAnthropic().start();
  });
  after(() => upstream.stop());

  it('serve with no config creates the default one, prints the address first and the env without the key', async () => {
    const home = tempHome();
    const s = await serve(['--port', '0'], { HOME: home });
    try {
      const configFile = path.join(home, '.claude-code-gateway/config.json');
      assert.ok(fs.existsSync(configFile), 'default config created');
      const config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
      assert.equal(config.profiles[0].apiKey, '${env:ANTHROPIC_API_KEY}');
      assert.equal(config.listen.port, 4747);
      const keyFile = path.join(home, '.claude-code-gateway/data/gateway.key');
      const key = fs.readFileSync(keyFile, 'utf8').trim();
      assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
      const lines = s.stdout().split('\n');
      assert.ok(lines.includes(`export ANTHROPIC_AUTH_TOKEN="$(cat ${keyFile})"`), s.stdout());
      assert.ok(lines.includes(`export ANTHROPIC_BASE_URL="${s.url}/anthropic"`), s.stdout());
      assert.ok(!s.stdout().includes(key) && !s.stderr().includes(key), 'the key is never printed');
      const health = (await (await fetch(`${s.url}/health`)).json()) as { status: string; activeProfile: string };
      assert.equal(health.status, 'ok');
      assert.equal(health.activeProfile, 'anthropic');
      assert.ok(!JSON.stringify(health).includes(key));
      // The profile's key variable is unset: a model call says so, naming the variable, without retries.
      const res = await fetch(`${s.url}/anthropic/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: '{}' });
      assert.equal(res.status, 500);
      assert.equal(res.headers.get('x-should-retry'), 'false');
      const body = (await res.json()) as { type: string; error: { message: string } };
      assert.equal(body.type, 'error');
      assert.match(body.error.message, /profiles\[0\]\.apiKey: environment variable ANTHROPIC_API_KEY is not set/);
    } finally {
      s.child.kill('SIGTERM');
    }
    assert.equal(await s.exited, 0);
  });

  it('SIGTERM lets an in-flight stream finish, then exits 0', async () => {
    const home = tempHome();
    const file = writeConfig(home, { dataDir: path.join(home, 'data'), profiles: [{ name: 'a', provider: 'anthropic', apiKey: 'sk-test-direct', baseUrl: upstream.url }] });
    const s = await serve(['--config', file, '--port', '0'], { HOME: home });
    const key = fs.readFileSync(path.join(home, 'data/gateway.key'), 'utf8').trim();
    upstream.script.push({ holdAfterStart: true });
    const res = await fetch(`${s.url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-opus-4-8', max_tokens: 5, stream: true, messages: [] }),
    });
    await upstream.waitForHold();
    s.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    // New connections are refused while draining.
    await assert.rejects(fetch(`${s.url}/health`, { headers: { connection: 'close' } }));
    upstream.release();
    const text = await res.text();
    assert.ok(text.includes('message_stop'), 'the stream completed during the drain');
    assert.equal(await s.exited, 0);
  });

  it('a config error exits 2 with one line per problem naming its JSON path', () => {
    const dir = tempHome();
    const file = writeConfig(dir, { profiles: [{ name: 'a', provider: 'anthropic' }, { name: 'b', provider: 'bedrock' }], lisen: {} });
    const r = runCli(['serve', '--config', file], { HOME: dir });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^ {2}lisen: unknown key \(did you mean "listen"\?\)$/m);
    const r2 = runCli(['serve', '--config', writeConfig(dir, { profiles: [{ name: 'a', provider: 'anthropic' }, { name: 'b', provider: 'bedrock' }] })], { HOME: dir });
    assert.equal(r2.status, 2);
    assert.match(r2.stderr, /^ {2}profiles\[1\]\.region: required for provider "bedrock"$/m);
    fs.writeFileSync(file, '{ "profiles": [ }');
    const r3 = runCli(['serve', '--config', file], { HOME: dir });
    assert.equal(r3.status, 2);
    assert.match(r3.stderr, /not valid JSON: .* at line 1, column \d+/);
  });

  it('refuses a non-loopback address without configured keys', () => {
    const dir = tempHome();
    const file = writeConfig(dir, { dataDir: path.join(dir, 'data'), profiles: [{ name: 'a', provider: 'anthropic' }] });
    const r = runCli(['serve', '--config', file, '--host', '0.0.0.0', '--port', '0'], { HOME: dir });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /Refusing to listen on 0\.0\.0\.0 without configured keys/);
  });

  it('env prints export lines for a profile, and other shells; unknown profiles exit 2', () => {
    const dir = tempHome();
    const file = writeConfig(dir, {
      dataDir: path.join(dir, 'data'),
      profiles: [
        { name: 'a', provider: 'anthropic' },
        { name: 'bed', provider: 'bedrock', region: 'eu-west-1', models: { sonnet: 'eu.anthropic.claude-sonnet-4-5-20250929-v1:0' } },
      ],
      keys: [{ id: 'alice', key: '${env:ALICE_KEY}' }],
    });
    const r = runCli(['env', '--config', file, '--profile', 'bed'], { HOME: dir });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'export ANTHROPIC_AUTH_TOKEN="${ALICE_KEY}"',
      'export CLAUDE_CODE_USE_BEDROCK="1"',
      'export ANTHROPIC_BEDROCK_BASE_URL="http://127.0.0.1:4747/profiles/bed/bedrock"',
      'export CLAUDE_CODE_SKIP_BEDROCK_AUTH="1"',
      'export AWS_REGION="eu-west-1"',
      'export ANTHROPIC_DEFAULT_SONNET_MODEL="eu.anthropic.claude-sonnet-4-5-20250929-v1:0"',
    ]);
    const fish = runCli(['env', '--config', file, '--shell', 'fish'], { HOME: dir });
    assert.match(fish.stdout, /^set -gx ANTHROPIC_BASE_URL 'http:\/\/127\.0\.0\.1:4747\/anthropic'$/m);
    const bad = runCli(['env', '--config', file, '--profile', 'nope'], { HOME: dir });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--profile: no profile named "nope" \(profiles: a, bed\)/);
  });

  it('token prints a short-lived token the gateway accepts; an expired one gets 401', async () => {
    const home = tempHome();
    const file = writeConfig(home, {
      dataDir: path.join(home, 'data'),
      profiles: [{ name: 'a', provider: 'anthropic', apiKey: 'sk-test-direct', baseUrl: upstream.url }],
      keys: [{ id: 'bob', sha256: 'c'.repeat(64), team: 'infra' }],
    });
    const token = runCli(['token', '--config', file, '--key', 'bob', '--ttl', '10m'], { HOME: home });
    assert.equal(token.status, 0, token.stderr);
    const short = runCli(['token', '--config', file, '--key', 'bob', '--ttl', '1s'], { HOME: home });
    const s = await serve(['--config', file, '--port', '0'], { HOME: home });
    try {
      const call = (t: string) =>
        fetch(`${s.url}/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'claude-opus-4-8', max_tokens: 5, messages: [] }) });
      assert.equal((await call(token.stdout.trim())).status, 200);
      await new Promise((r) => setTimeout(r, 1100));
      const expired = await call(short.stdout.trim());
      assert.equal(expired.status, 401);
      assert.equal(((await expired.json()) as { error: { type: string } }).error.type, 'authentication_error');
      assert.ok(s.stdout().includes('token --key bob'), 'serve references a token command for a hashed key');
    } finally {
      s.child.kill('SIGTERM');
      await s.exited;
    }
    const bad = runCli(['token', '--config', file, '--key', 'mallory'], { HOME: home });
    assert.equal(bad.status, 2);
  });

  it('--help and --version work', () => {
    const help = runCli(['--help']);
    assert.equal(help.status, 0);
    for (const cmd of ['serve', 'env', 'token']) assert.match(help.stdout, new RegExp(`^ {2}${cmd}\\b`, 'm'));
    const version = runCli(['--version']);
    assert.equal(version.status, 0);
    assert.equal(version.stdout.trim(), JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8')).version);
  });
});
