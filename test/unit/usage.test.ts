import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { auditFileName, GENESIS, seal } from '../../src/core/accounting/audit-files';
import { UsageIndex, usageKeptFrom } from '../../src/core/accounting/usage-index';
import { readUsageRecord, usageRecordOf } from '../../src/core/accounting/usage-records';
import { usageReport, type UsageQuery } from '../../src/core/accounting/usage-report';
import { UsageSum, UsageTable } from '../../src/core/accounting/usage-table';
import { UsageSummary, type CallView } from '../../src/core/usage-summary';

const T = (iso: string) => Date.parse(iso);

/** A call record's members in the order the gateway writes them (records.ts), with what the test sets. */
function callFields(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'req-1',
    key: 'alice',
    team: 'red',
    project: 'web',
    session: 's',
    profile: 'anthropic',
    provider: 'anthropic',
    route: 'anthropic',
    method: 'POST',
    path: '/anthropic/v1/messages',
    requestedModel: 'claude-sonnet-4-5',
    upstreamModel: 'claude-sonnet-4-5',
    responseModel: 'claude-sonnet-4-5-20250929',
    streaming: true,
    countTokens: false,
    status: 'ok',
    httpStatus: 200,
    latencyMs: 812.5,
    usage: { input: 10, output: 20, cacheWrite5m: 1, cacheWrite1h: 2, cacheRead: 300 },
    costUsd: 0.000417,
    priceKnown: true,
    family: 'sonnet-4.5',
    ...over,
  };
}

function line(t: string, fields: Record<string, unknown>, type = 'call', seq = 1): string {
  return seal({ seq, t, type, ...fields }, GENESIS).line.trimEnd();
}

/** Writes records into daily files as the gateway would; returns the folder. */
function writeLog(records: Array<{ t: string; fields: Record<string, unknown> }>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccgw-usage-unit-'));
  let prev = GENESIS;
  records.forEach((r, i) => {
    const sealed = seal({ seq: i + 1, t: r.t, type: 'call', ...r.fields }, prev);
    prev = sealed.hash;
    fs.appendFileSync(path.join(dir, auditFileName(r.t.slice(0, 10))), sealed.line);
  });
  return dir;
}

describe('usage records: the fast reader agrees with JSON.parse', () => {
  const slow = (text: string) => {
    const r = JSON.parse(text);
    return r.type === 'call' ? usageRecordOf(r, r.t) : undefined;
  };

  it('on the lines the gateway writes, with members missing, escapes, look-alike stored bodies and other orders', () => {
    const t = '2026-12-04T10:00:00.000Z';
    const cases = [
      callFields(),
      callFields({ team: undefined, project: undefined }),
      callFields({ responseModel: undefined, upstreamModel: undefined, requestedModel: undefined }),
      callFields({ project: 'we"ird\\name' }),
      callFields({ project: 'caf\u00e9 \u2603' }),
      callFields({ priceKnown: false, status: 'rejected' }),
      callFields({ estimated: true, unmetered: true, request: { headers: { project: 'evil', key: 'mallory' }, body: '{"key":"mallory","usage":{"input":1e9},"costUsd":99}' } }),
      // Another order: costUsd before usage, attribution after it.
      { costUsd: 1.5, priceKnown: true, usage: { input: 1, output: 2, cacheWrite5m: 3, cacheWrite1h: 4, cacheRead: 5 }, id: 'x', key: 'bob', profile: 'p', status: 'ok' },
    ];
    for (const fields of cases) {
      const text = line(t, JSON.parse(JSON.stringify(fields)));
      assert.deepEqual(readUsageRecord(text), slow(text), text);
    }
    assert.equal(readUsageRecord(line(t, { instance: 'i' }, 'start')), undefined);
    assert.equal(readUsageRecord('{"seq":1,"t":"2026-12-04T10:00:00.000Z","type":"call","id":"torn'), undefined);
  });

  it('on any strings in any member (property)', function () {
    this.timeout(30_000);
    const text = fc.string({ unit: 'binary', maxLength: 12 });
    const member = fc.option(fc.oneof(text, fc.constantFrom(',"key":"', '","usage":{', '\\', '"', '},"costUsd":1,')), { nil: undefined });
    fc.assert(
      fc.property(member, member, member, member, member, member, fc.boolean(), fc.double({ min: 0, max: 1e3, noNaN: true }), (id, key, team, project, profile, model, priceKnown, costUsd) => {
        const l = line('2026-12-04T10:00:00.000Z', JSON.parse(JSON.stringify(callFields({ id, key, team, project, profile, responseModel: model, priceKnown, costUsd, request: { body: key } }))));
        assert.deepEqual(readUsageRecord(l), slow(l));
      }),
      { numRuns: 300 },
    );
  });
});

describe('usage table: sums are exact and do not depend on the order', () => {
  it('ten calls of $0.1 make $1 exactly, in any order and any grouping', () => {
    const records = Array.from({ length: 10 }, (_, i) => usageRecordOf(callFields({ id: `r${i}`, costUsd: 0.1, key: i % 2 ? 'a' : 'b' }), `2026-12-0${1 + (i % 3)}T10:00:00.000Z`));
    const sums = [records, [...records].reverse()].map((rs) => {
      const table = new UsageTable();
      for (const r of rs) table.add(r);
      const sum = new UsageSum('key');
      for (const d of table.dates()) for (const b of table.day(d)!.buckets.values()) sum.add(b);
      return sum.result;
    });
    assert.equal(sums[0].totals.costUsd, 1);
    assert.deepEqual(sums[0], sums[1]);
    assert.deepEqual(
      sums[0].groups!.map((g) => [g.group, g.costUsd, g.requests]),
      [
        ['a', 0.5, 5],
        ['b', 0.5, 5],
      ],
    );
  });
});

describe('usage index: memory and files give the same answer', () => {
  const now = T('2026-12-04T12:00:00.000Z');
  const times = ['2026-11-10T08:00:00.000Z', '2026-11-20T23:59:59.999Z', '2026-11-21T00:00:00.000Z', '2026-12-01T00:00:00.000Z', '2026-12-03T06:30:00.000Z', '2026-12-03T18:45:00.000Z', '2026-12-04T09:15:00.000Z', '2026-12-04T11:59:00.000Z'];
  const records = times.flatMap((t, i) =>
    ['alice', 'bob'].map((key, k) => ({ t, fields: callFields({ id: `c${i}-${k}`, key, team: k ? 'blue' : 'red', costUsd: 0.001 * (i + 1) + 0.0001 * k, status: i === 5 && k ? 'rejected' : 'ok' }) })),
  );
  let dir: string;
  before(() => {
    dir = writeLog(records);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps this month and the last 14 days', () => {
    assert.equal(usageKeptFrom(now), '2026-11-21');
    assert.equal(usageKeptFrom(T('2026-12-20T00:00:00Z')), '2026-12-01');
  });

  it('every kind of query equals the report read from the files: whole days, days cut by since or until, days older than memory, one key', async () => {
    const index = new UsageIndex(dir, { now: () => now });
    assert.equal(await index.seed(), 12, 'records of the days kept');
    const queries: UsageQuery[] = [
      { since: T('2026-12-01T00:00:00Z') },
      { since: T('2026-11-01T00:00:00Z'), by: 'day' },
      { since: T('2026-12-03T12:00:00Z'), by: 'key' },
      { since: T('2026-11-21T00:00:00Z'), until: T('2026-12-03T10:00:00Z'), by: 'team' },
      { since: T('2026-11-20T00:00:00Z'), until: T('2026-12-04T09:15:00.000Z'), by: 'model', keyId: 'bob' },
      { since: T('2026-12-05T00:00:00Z') },
    ];
    for (const q of queries) assert.deepEqual(await index.report(q), await usageReport(dir, q, now), JSON.stringify(q));
  });

  it('when a new month begins, the days no longer kept are read from the files', async () => {
    let clock = now;
    const index = new UsageIndex(dir, { now: () => clock });
    await index.seed();
    clock = T('2026-12-20T08:00:00.000Z');
    index.add(usageRecordOf(callFields({ id: 'late', costUsd: 2 }), '2026-12-20T08:00:00.000Z'));
    assert.equal(index.keptFrom, '2026-12-01');
    assert.equal(index.table.day('2026-11-21'), undefined);
    const q: UsageQuery = { since: T('2026-11-01T00:00:00Z'), until: T('2026-12-19T00:00:00Z'), by: 'day' };
    assert.deepEqual(await index.report(q), await usageReport(dir, q, clock));
  });

  it('a call added while the seed reads the files is counted once, whether or not the seed read its record', async () => {
    const index = new UsageIndex(dir, { now: () => now });
    const seeding = index.seed();
    // Settled calls whose records are (c7-0) and are not (live) in the files.
    index.add(usageRecordOf(records[records.length - 2].fields, times[7]));
    index.add(usageRecordOf(callFields({ id: 'live', costUsd: 1 }), '2026-12-04T11:59:30.000Z'));
    await seeding;
    const report = await index.report({ since: T('2026-12-04T00:00:00Z') });
    assert.equal(report.totals.requests, 5);
    assert.equal(report.totals.costUsd, 1.0302);
  });
});

describe('UsageSummary (the editor meter) reads the same usage', () => {
  const now = T('2026-12-04T12:00:00.000Z');
  const view = (over: Partial<CallView>): CallView => ({
    id: 'v',
    t: now - 1000,
    keyId: 'alice',
    team: 'red',
    profile: 'anthropic',
    provider: 'anthropic',
    model: 'claude-sonnet-4-5',
    status: 'ok',
    httpStatus: 200,
    latencyMs: 500,
    usage: { input: 1, output: 2, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 3 },
    costUsd: 0.25,
    countTokens: false,
    ...over,
  });

  it('today, the month, the 14 days, budget bars by scope and window, newest calls first; a call seen twice counts once', async () => {
    const dir = writeLog([
      { t: '2026-11-30T10:00:00.000Z', fields: callFields({ id: 'nov', key: 'alice', costUsd: 0.5 }) },
      { t: '2026-12-01T10:00:00.000Z', fields: callFields({ id: 'dec1', key: 'bob', team: 'blue', project: undefined, costUsd: 0.75 }) },
    ]);
    const summary = new UsageSummary(() => now);
    summary.setBudgets([
      { scope: 'team:red', usd: 10, period: 'week' },
      { scope: 'key:bob', usd: 1, period: 'month' },
      { scope: 'global', usd: 4, period: 'day' },
    ]);
    assert.equal(await summary.seedFromAudit(dir), 2);
    summary.settled(view({ id: 'a1' }));
    summary.settled(view({ id: 'a2', model: 'claude-opus-4-1', status: 'rejected', costUsd: 0 }));
    summary.settled(view({ id: 'a1' }));
    const s = summary.snapshot();
    assert.equal(s.todayTotals.requests, 2);
    assert.equal(s.todayTotals.costUsd, 0.25);
    assert.deepEqual(Object.keys(s.todayByModel).sort(), ['claude-opus-4-1', 'claude-sonnet-4-5']);
    assert.equal(s.monthTotals.costUsd, 1);
    assert.deepEqual(Object.keys(s.monthByProject), ['(none)']);
    assert.equal(s.days.length, 14);
    assert.equal(s.days.find((d) => d.date === '2026-11-30')!.costUsd, 0.5);
    assert.deepEqual(
      s.budgets.map((b) => [b.scope, b.spentUsd]),
      [
        // The week began on Monday 30 November: the seeded call of that day is in it.
        ['team:red', 0.75],
        ['key:bob', 0.75],
        ['global', 0.25],
      ],
    );
    assert.deepEqual(
      s.recent.map((c) => c.id),
      ['a2', 'a1', 'dec1', 'nov'],
    );
    assert.equal(summary.todaySpend('anthropic'), 0.25);
    assert.equal(summary.todaySpend('other'), 0);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
