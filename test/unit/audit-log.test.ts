// The audit log's group commit: call records queued in one event-loop turn are written together at setImmediate.
// These check what a reader of the files sees: every record, in order, in the file of its own UTC date, with a chain
// that verifies, across a midnight, a write that fails and recovers, and a close with records still queued.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { auditFileName, headPath } from '../../src/core/accounting/audit-files';
import { AuditLog } from '../../src/core/accounting/audit-log';
import { verifyAudit } from '../../src/core/accounting/audit-verify';

const turn = () => new Promise((r) => setImmediate(r));

function records(dir: string, date?: string): Array<Record<string, unknown>> {
  const files = fs
    .readdirSync(dir)
    .filter((n) => (date ? n === auditFileName(date) : /^audit-.*\.jsonl$/.test(n)) && fs.statSync(path.join(dir, n)).isFile())
    .sort();
  return files.flatMap((n) =>
    fs
      .readFileSync(path.join(dir, n), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>),
  );
}

describe('audit log group commit', () => {
  let dir: string;
  let log: AuditLog | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-auditlog-'));
  });
  afterEach(() => {
    log?.close();
    log = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a turn's call records are in the file after that turn, in order, with a chain that verifies", async () => {
    log = new AuditLog(dir);
    for (let i = 0; i < 50; i++) log.appendSoon('call', { n: i });
    assert.equal(records(dir).length, 0, 'queued, not yet written');
    await turn();
    const recs = records(dir);
    assert.deepEqual(
      recs.map((r) => r.n),
      Array.from({ length: 50 }, (_, i) => i),
    );
    assert.deepEqual(
      recs.map((r) => r.seq),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    assert.equal(log.pendingRecords, 0);
    const v = verifyAudit(dir);
    assert.equal(v.intact, true, JSON.stringify(v.tamper));
    assert.equal(v.records, 50);
  });

  it('an event written at once lands after the call records queued before it', () => {
    log = new AuditLog(dir);
    log.appendSoon('call', { n: 1 });
    log.appendSoon('call', { n: 2 });
    assert.equal(log.append('config_reload', { source: 'x' }), true);
    assert.deepEqual(
      records(dir).map((r) => r.type),
      ['call', 'call', 'config_reload'],
    );
  });

  it('records queued either side of midnight UTC go to the files of their own dates, one chain across both', async () => {
    log = new AuditLog(dir);
    const midnight = Date.parse('2026-11-27T00:00:00.000Z');
    log.appendSoon('call', { n: 1 }, midnight - 2);
    log.appendSoon('call', { n: 2 }, midnight - 1);
    log.appendSoon('call', { n: 3 }, midnight);
    log.appendSoon('call', { n: 4 }, midnight + 1);
    await turn();
    assert.deepEqual(
      records(dir, '2026-11-26').map((r) => r.n),
      [1, 2],
    );
    assert.deepEqual(
      records(dir, '2026-11-27').map((r) => r.n),
      [3, 4],
    );
    const v = verifyAudit(dir);
    assert.equal(v.intact, true, JSON.stringify(v.tamper));
    assert.equal(v.files, 2);
    assert.equal(v.records, 4);
  });

  it('records that cannot be written wait in memory, in order, and are written once the log can be', async () => {
    log = new AuditLog(dir);
    const day = Date.parse('2026-11-26T12:00:00.000Z');
    const next = Date.parse('2026-11-27T12:00:00.000Z');
    log.appendSoon('call', { n: 1 }, day);
    await turn();
    // The next day's file cannot be created: a directory holds its name.
    const blocker = path.join(dir, auditFileName('2026-11-27'));
    fs.mkdirSync(blocker);
    log.appendSoon('call', { n: 2 }, day);
    log.appendSoon('call', { n: 3 }, next);
    log.appendSoon('call', { n: 4 }, next);
    await turn();
    assert.equal(log.failure?.code, 'EISDIR');
    // The record of the day that could be written is in; the two after it wait, and so does the next one.
    assert.deepEqual(
      records(dir).map((r) => r.n),
      [1, 2],
    );
    assert.equal(log.pendingRecords, 2);
    log.appendSoon('call', { n: 5 }, next);
    await turn();
    assert.equal(log.pendingRecords, 3);
    assert.equal(log.probe(), false, 'still blocked');
    fs.rmdirSync(blocker);
    assert.equal(log.probe(), true);
    assert.equal(log.failure, undefined);
    assert.equal(log.pendingRecords, 0);
    assert.deepEqual(
      records(dir).map((r) => r.n),
      [1, 2, 3, 4, 5],
    );
    assert.equal(log.dropped, 0);
    const v = verifyAudit(dir);
    assert.equal(v.intact, true, JSON.stringify(v.tamper));
    assert.equal(v.lastSeq, 5);
  });

  it('close writes the records still queued before its anchor; nothing is dropped', () => {
    log = new AuditLog(dir);
    log.appendSoon('call', { n: 1 });
    log.append('stop', {});
    log.appendSoon('call', { n: 2 });
    log.close();
    assert.deepEqual(
      records(dir).map((r) => r.n ?? r.type),
      [1, 'stop', 2],
    );
    assert.equal(log.dropped, 0);
    const head = JSON.parse(fs.readFileSync(headPath(dir), 'utf8')) as { seq: number };
    assert.equal(head.seq, 3);
    log = undefined;
  });

  it('a reopened log continues the chain its predecessor left', async () => {
    log = new AuditLog(dir);
    log.appendSoon('call', { n: 1 });
    await turn();
    log.close();
    log = new AuditLog(dir);
    log.appendSoon('call', { n: 2 });
    await turn();
    assert.deepEqual(
      records(dir).map((r) => r.seq),
      [1, 2],
    );
    assert.equal(verifyAudit(dir).intact, true);
  });

  it('the head is written at the first write and moved up by renew(), with the spend the owner gives it', async () => {
    log = new AuditLog(dir);
    log.headSpend = () => ({ global: { '2026-12-04': 1.5 } });
    log.appendSoon('call', { n: 1 });
    await turn();
    const head = () => JSON.parse(fs.readFileSync(headPath(dir), 'utf8')) as { seq: number; spend?: unknown };
    assert.equal(head().seq, 1);
    assert.deepEqual(head().spend, { global: { '2026-12-04': 1.5 } });
    log.appendSoon('call', { n: 2 });
    await turn();
    assert.equal(head().seq, 1, 'not at every write');
    log.renew();
    assert.equal(head().seq, 2);
    assert.equal(verifyAudit(dir).intact, true);
  });

  it('a log reopened shorter than its head writes a tamper record first; verify fails from then on', async () => {
    log = new AuditLog(dir);
    for (let i = 0; i < 5; i++) log.appendSoon('call', { n: i });
    log.close();
    const file = path.join(dir, fs.readdirSync(dir).find((n) => n.endsWith('.jsonl'))!);
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    fs.writeFileSync(file, lines.slice(0, 3).join('\n') + '\n');
    log = new AuditLog(dir);
    assert.equal(log.recovery.tamper?.reason, 'log_truncated');
    assert.deepEqual(log.recovery.tamper?.expected?.seq, 5);
    assert.equal(log.recovery.tamper?.found.seq, 3);
    log.append('start', {});
    log.close();
    log = undefined;
    const recs = records(dir);
    assert.deepEqual(
      recs.slice(3).map((r) => r.type),
      ['tamper', 'start'],
    );
    const v = verifyAudit(dir);
    assert.equal(v.intact, false);
    assert.equal(v.tamper?.kind, 'recorded');
    assert.match(v.tamper!.message, /records seq 4-5 are missing/);
  });
});
