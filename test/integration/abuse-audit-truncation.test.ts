// A restart must not launder a tampered audit log. Each case stops a gateway cleanly, edits its folder the way an
// attacker would (with the gateway stopped), starts and stops it again, and checks what a user would notice:
// `audit verify` fails (and keeps failing after later clean starts), the tampering is recorded in the chain, and the
// budgets still count the spend of the removed calls.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { verifyAudit } from '../../src/core/accounting/audit-verify';
import { auditCalls, auditFiles, readAudit } from '../helpers/audit';
import { listeningUrl, startGateway } from '../helpers/gateway';
import { MockAnthropic } from '../helpers/mock-anthropic';

const CLI = path.resolve(__dirname, '../../dist/cli.js');

describe('abuse: a restart does not launder a truncated audit log', function () {
  this.timeout(60_000);
  let upstream: MockAnthropic;
  let base: string;
  let spentBefore: number;
  const raw = () => ({
    profiles: [{ name: 'a', provider: 'anthropic', apiKey: 'sk-ant-x', baseUrl: upstream.url }],
    budgets: [
      { scope: 'global', usd: 1000, period: 'month' },
      { scope: 'profile:a', usd: 1000, period: 'day' },
    ],
  });

  /** The global budget's spend as the gateway sees it. */
  const globalSpend = (gw: { runtime: { budgets(): Array<{ scope: string; spentUsd: number }> } }) => gw.runtime.budgets().find((b) => b.scope === 'global')!.spentUsd;

  before(async () => {
    upstream = await new MockAnthropic().start();
    const gw = await startGateway(raw(), { keepDataDir: true });
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${gw.url}/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.key}` },
        body: JSON.stringify({ model: 'claude-opus-4-8', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }),
      });
      assert.equal(res.status, 200);
      await res.text();
    }
    spentBefore = globalSpend(gw);
    assert.ok(spentBefore > 0);
    await gw.close();
    base = gw.dataDir;
    assert.equal(verifyAudit(gw.auditDir).intact, true);
  });
  after(async () => {
    await upstream.stop();
    if (base) fs.rmSync(base, { recursive: true, force: true });
  });

  /** A copy of the stopped gateway's data folder, to tamper with. */
  function copy(): { dataDir: string; auditDir: string } {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-launder-'));
    fs.cpSync(base, dataDir, { recursive: true });
    return { dataDir, auditDir: path.join(dataDir, 'audit') };
  }

  const lines = (file: string) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);

  /** Starts and stops the gateway on the folder; returns the global spend it rebuilt and its /health audit block. */
  async function restart(dataDir: string): Promise<{ spent: number; tamper?: { reason: string; message: string } }> {
    const gw = await startGateway(raw(), { dataDir });
    const spent = globalSpend(gw);
    const health = gw.runtime.accountant.health?.() as { audit: { tamper?: { reason: string; message: string } } };
    await gw.close();
    return { spent, tamper: health.audit.tamper };
  }

  const cases: Array<{ name: string; edit: (auditDir: string) => void; reason: RegExp; keepsSpend: boolean }> = [
    {
      name: 'the last lines deleted (two calls and the stop)',
      edit: (d) => {
        const f = auditFiles(d)[0];
        fs.writeFileSync(f, lines(f).slice(0, -3).join('\n') + '\n');
      },
      reason: /log_truncated/,
      keepsSpend: true,
    },
    {
      name: "the whole day's file deleted",
      edit: (d) => fs.rmSync(auditFiles(d)[0]),
      reason: /log_truncated/,
      keepsSpend: true,
    },
    {
      name: 'truncated in the middle of a line before the head (a torn line is a crash artefact only after the head)',
      edit: (d) => {
        const f = auditFiles(d)[0];
        const l = lines(f);
        fs.writeFileSync(f, l.slice(0, -3).join('\n') + '\n' + l[l.length - 3].slice(0, 40));
      },
      reason: /log_truncated/,
      keepsSpend: true,
    },
    {
      name: 'a call in the middle deleted (the tail and the head intact)',
      edit: (d) => {
        const f = auditFiles(d)[0];
        const l = lines(f);
        const i = l.findIndex((x) => x.includes('"type":"call"'));
        fs.writeFileSync(f, [...l.slice(0, i + 2), ...l.slice(i + 3)].join('\n') + '\n');
      },
      reason: /spend_missing/,
      keepsSpend: true,
    },
    {
      name: 'HEAD.json edited to name another record',
      edit: (d) => {
        const head = JSON.parse(fs.readFileSync(path.join(d, 'HEAD.json'), 'utf8'));
        head.hash = 'f'.repeat(64);
        fs.writeFileSync(path.join(d, 'HEAD.json'), JSON.stringify(head));
      },
      reason: /head_mismatch/,
      keepsSpend: true,
    },
    {
      name: 'the last lines deleted and HEAD.json deleted too',
      edit: (d) => {
        const f = auditFiles(d)[0];
        fs.writeFileSync(f, lines(f).slice(0, -3).join('\n') + '\n');
        fs.rmSync(path.join(d, 'HEAD.json'));
      },
      reason: /head_missing/,
      // Nothing is left that says what the removed calls cost (see docs/accounting.md, what the log cannot detect).
      keepsSpend: false,
    },
  ];

  for (const c of cases) {
    it(`${c.name}: recorded as tampering, verify fails for good, budgets keep the spend`, async () => {
      const { dataDir, auditDir } = copy();
      try {
        c.edit(auditDir);
        const first = await restart(dataDir);
        assert.ok(first.tamper, 'the start says the log was tampered with');
        assert.match(first.tamper.reason, c.reason);
        assert.match(first.tamper.message, /was tampered with/);
        if (c.keepsSpend) assert.ok(Math.abs(first.spent - spentBefore) < 1e-9, `budget spend ${first.spent} kept (was ${spentBefore})`);
        const tampers = readAudit(auditDir).filter((r) => r.type === 'tamper');
        assert.equal(tampers.length, 1);
        assert.match(String(tampers[0].reason), c.reason);
        assert.equal(
          readAudit(auditDir).some((r) => r.type === 'gap'),
          false,
          'never recorded as a crash gap',
        );
        let v = verifyAudit(auditDir);
        assert.equal(v.intact, false, 'verify fails');
        // A later clean start and stop neither repeats the finding nor makes verify pass, and the spend stays.
        const second = await restart(dataDir);
        assert.equal(second.tamper, undefined, 'the chain now records it; the next start does not find it again');
        if (c.keepsSpend) assert.ok(Math.abs(second.spent - spentBefore) < 1e-9, `budget spend ${second.spent} still kept`);
        v = verifyAudit(auditDir);
        assert.equal(v.intact, false, 'verify still fails after a clean restart');
        assert.ok(v.tamper);
        const cli = spawnSync(process.execPath, [CLI, 'audit', 'verify', '--dir', auditDir], { encoding: 'utf8', timeout: 20_000 });
        assert.equal(cli.status, 1, cli.stdout + cli.stderr);
        assert.match(cli.stdout, /TAMPERED/);
      } finally {
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }

  it('the CLI says so on stderr at start, naming the missing seqs', async () => {
    const { dataDir, auditDir } = copy();
    try {
      const f = auditFiles(auditDir)[0];
      const l = lines(f);
      fs.writeFileSync(f, l.slice(0, -3).join('\n') + '\n');
      const config = path.join(dataDir, 'config.json');
      fs.writeFileSync(config, JSON.stringify({ dataDir, ...raw() }));
      const child = spawn(process.execPath, [CLI, 'serve', '-c', config, '--port', '0'], { env: { PATH: process.env.PATH ?? '', HOME: dataDir }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c) => (stdout += c));
      child.stderr.on('data', (c) => (stderr += c));
      const exited = new Promise((r) => child.once('exit', r));
      try {
        await listeningUrl(child);
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
      assert.match(stdout.split('\n')[0], /^Claude Code Gateway listening on /, 'the listening line stays the first line of stdout');
      assert.match(stderr, /error: the audit log in .* was tampered with: the log ends at seq 7, but HEAD\.json .* says it reached seq 10: records seq 8-10 are missing/);
      assert.equal(auditCalls(auditDir).length, 6);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
