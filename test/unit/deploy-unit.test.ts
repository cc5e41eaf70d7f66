import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DRAIN_MS } from '../../src/cli/serve';

const ROOT = path.resolve(__dirname, '../..');
const UNIT = path.join(ROOT, 'deploy/claude-code-gateway.service');

/** A systemd unit file as sections of (key, value) pairs in order; keys may repeat, as systemd allows. */
function parseUnit(text: string): Map<string, [string, string][]> {
  const sections = new Map<string, [string, string][]>();
  let current: [string, string][] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = [];
      sections.set(header[1], current);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(current && eq > 0, `not a unit file line: ${line}`);
    current.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return sections;
}

function value(section: [string, string][] | undefined, key: string): string | undefined {
  return section?.filter(([k]) => k === key).pop()?.[1];
}

/** The CLI's own help text, from the source the bundle is built from. */
function help(...args: string[]): string {
  return execFileSync(process.execPath, ['--require', 'tsx/cjs', path.join(ROOT, 'src/cli.ts'), ...args, '--help'], { cwd: ROOT, encoding: 'utf8' });
}

describe('deploy/claude-code-gateway.service', function () {
  this.timeout(20_000);
  const unit = parseUnit(fs.readFileSync(UNIT, 'utf8'));
  const service = unit.get('Service');

  it('runs a command and options that the CLI has (so the unit cannot rot)', () => {
    const exec = value(service, 'ExecStart');
    assert.ok(exec, 'the unit has an ExecStart');
    const [bin, command, ...rest] = exec.split(/\s+/);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    assert.ok(Object.keys(pkg.bin).includes(path.basename(bin)), `${bin} is the package's binary (${Object.keys(pkg.bin).join(', ')})`);
    assert.match(help(), new RegExp(`^\\s+${command}\\b`, 'm'), `"${command}" is a command in claude-code-gateway --help`);
    const commandHelp = help(command);
    const options = rest.filter((a) => a.startsWith('-'));
    assert.ok(options.includes('--config'), 'the unit names its config file');
    for (const option of options) {
      assert.match(commandHelp, new RegExp(`(^|[\\s,])${option}(\\s|,|$)`, 'm'), `${option} is an option of "claude-code-gateway ${command}"`);
    }
  });

  it('runs as a dedicated user, with the database URL from an EnvironmentFile and the system read-only but for its data dir', () => {
    const user = value(service, 'User');
    assert.ok(user && user !== 'root', 'a dedicated, unprivileged user');
    assert.ok(value(service, 'EnvironmentFile'), 'secrets (CLAUDE_CODE_GATEWAY_DATABASE_URL) come from an EnvironmentFile, not the unit');
    assert.ok(!/postgres(ql)?:\/\//.test(fs.readFileSync(UNIT, 'utf8').split('\n').filter((l) => !l.trim().startsWith('#')).join('\n')), 'no database URL in the unit itself');
    assert.equal(value(service, 'NoNewPrivileges'), 'true');
    assert.equal(value(service, 'ProtectSystem'), 'strict');
    assert.ok(value(service, 'ReadWritePaths'), 'the data dir stays writable');
    assert.equal(value(service, 'Restart'), 'on-failure');
  });

  it("gives the gateway longer to stop than serve's drain of open streams", () => {
    const timeout = value(service, 'TimeoutStopSec');
    assert.ok(timeout && /^\d+$/.test(timeout), `TimeoutStopSec in seconds (${timeout})`);
    assert.ok(Number(timeout) * 1000 > DRAIN_MS, `TimeoutStopSec=${timeout} is above the ${DRAIN_MS / 1000} s drain`);
  });
});
