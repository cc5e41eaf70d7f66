import * as assert from 'node:assert/strict';
import { BudgetLedger, formatUsd, isRefusal, scopesOf, type BudgetHold } from '../../src/core/accounting/budgets';
import { isRateRefusal, RateLimiter } from '../../src/core/accounting/rate-limits';
import { secondsUntil, windowAt } from '../../src/core/accounting/windows';

const T = (iso: string) => Date.parse(iso);

describe('budget windows (UTC calendar)', () => {
  it('day, ISO week from Monday and month, in UTC whatever the local zone', () => {
    const t = T('2026-03-05T23:59:59.999Z'); // a Thursday
    assert.deepEqual(windowAt('day', t), { start: T('2026-03-05T00:00:00Z'), end: T('2026-03-06T00:00:00Z') });
    assert.deepEqual(windowAt('week', t), { start: T('2026-03-02T00:00:00Z'), end: T('2026-03-09T00:00:00Z') });
    assert.deepEqual(windowAt('month', t), { start: T('2026-03-01T00:00:00Z'), end: T('2026-04-01T00:00:00Z') });
  });

  it('edges: a Sunday belongs to the week that started on Monday; month ends roll the year; leap days', () => {
    assert.equal(windowAt('week', T('2026-03-08T12:00:00Z')).start, T('2026-03-02T00:00:00Z'));
    assert.equal(windowAt('week', T('2026-03-09T00:00:00Z')).start, T('2026-03-09T00:00:00Z'));
    assert.deepEqual(windowAt('month', T('2025-12-31T23:00:00Z')), { start: T('2025-12-01T00:00:00Z'), end: T('2026-01-01T00:00:00Z') });
    assert.equal(windowAt('month', T('2028-02-29T10:00:00Z')).end, T('2028-03-01T00:00:00Z'));
    assert.equal(windowAt('week', T('2026-01-01T00:00:00Z')).start, T('2025-12-29T00:00:00Z'));
  });

  it('retry-after is whole seconds to the reset, at least 1', () => {
    assert.equal(secondsUntil(T('2026-03-06T00:00:00Z'), T('2026-03-05T23:59:58.5Z')), 2);
    assert.equal(secondsUntil(1000, 1000), 1);
  });
});

describe('BudgetLedger', () => {
  const now = T('2026-03-05T10:00:00Z');
  const scopes = scopesOf({ key: { id: 'k1', team: 'red' }, project: 'web', profile: 'anthropic' });

  it('a call belongs to global, its key, team, project and profile', () => {
    assert.deepEqual(scopes, ['global', 'key:k1', 'team:red', 'project:web', 'profile:anthropic']);
  });

  it('admits while spend plus reservations is under the limit, then names the budget and its reset', () => {
    const l = new BudgetLedger([{ scope: 'team:red', usd: 1, period: 'day' }], now);
    l.record(scopes, 0.7, now);
    const a = l.reserve(scopes, 0.2, now) as BudgetHold;
    assert.ok(!isRefusal(a));
    const b = l.reserve(scopes, 0.2, now) as BudgetHold;
    assert.ok(!isRefusal(b));
    const c = l.reserve(scopes, 0.2, now);
    assert.ok(isRefusal(c));
    assert.equal(c.budget.scope, 'team:red');
    assert.equal(c.budget.resetsAt, '2026-03-06T00:00:00.000Z');
    assert.equal(c.retryAfterMs, 14 * 3600_000);
    l.settle(a, scopes, 0.05, now);
    l.settle(b, scopes, 0.05, now);
    const s = l.statuses(now)[0];
    assert.ok(Math.abs(s.spentUsd - 0.8) < 1e-12);
    assert.equal(s.reservedUsd, 0);
  });

  it('overshoot is bounded by the calls in flight: N concurrent reservations at a nearly spent budget', () => {
    const l = new BudgetLedger([{ scope: 'global', usd: 10, period: 'month' }], now);
    l.record(scopes, 9.95, now);
    const holds: BudgetHold[] = [];
    let refused = 0;
    for (let i = 0; i < 200; i++) {
      const r = l.reserve(scopes, 0.02, now);
      if (isRefusal(r)) refused++;
      else holds.push(r);
    }
    assert.equal(holds.length, 3);
    assert.equal(refused, 197);
    for (const h of holds) l.settle(h, scopes, 0.02, now);
    const spent = l.statuses(now)[0].spentUsd;
    assert.ok(spent - 10 <= holds.length * 0.02 + 1e-9);
  });

  it('a new window starts from zero; in-flight reservations carry over', () => {
    const l = new BudgetLedger([{ scope: 'global', usd: 1, period: 'day' }], now);
    l.record(scopes, 1, now);
    assert.ok(isRefusal(l.reserve(scopes, 0.1, now)));
    const next = T('2026-03-06T00:00:01Z');
    const h = l.reserve(scopes, 0.1, next);
    assert.ok(!isRefusal(h));
    assert.equal(l.statuses(next)[0].spentUsd, 0);
  });

  it('records older than the window do not count; overrides change the limit', () => {
    const l = new BudgetLedger([{ scope: 'key:k1', usd: 1, period: 'week' }], now);
    l.record(scopes, 5, T('2026-03-01T10:00:00Z'));
    assert.equal(l.statuses(now)[0].spentUsd, 0);
    l.record(scopes, 1, now);
    assert.ok(isRefusal(l.reserve(scopes, 0, now)));
    assert.ok(l.override('key:k1', 'week', 3, now));
    assert.ok(!isRefusal(l.reserve(scopes, 0, now)));
  });

  it("an override holds for the budget's current window, survives a config reload, and ends with the window", () => {
    const day = [{ scope: 'key:k1', usd: 1, period: 'day' as const }];
    const l = new BudgetLedger(day, now);
    l.record(scopes, 1, now);
    assert.ok(isRefusal(l.reserve(scopes, 0, now)), 'the day budget is spent');
    assert.ok(l.override('key:k1', 'day', 5, now));
    assert.deepEqual(
      (({ usd, overridden }) => ({ usd, overridden }))(l.statuses(now)[0]),
      { usd: 5, overridden: true },
    );
    l.configure(day, now + 1000);
    assert.equal(l.statuses(now + 1000)[0].usd, 5, 'a config reload keeps the override');
    assert.ok(!isRefusal(l.reserve(scopes, 0, now + 1000)));
    const tomorrow = windowAt('day', now).end + 1000;
    const s = l.statuses(tomorrow)[0];
    assert.equal(s.usd, 1, 'the next day has the configured limit again');
    assert.equal(s.overridden, undefined);
    l.configure(day, tomorrow);
    assert.equal(l.statuses(tomorrow)[0].usd, 1, 'a reload after the window does not bring it back');
  });

  it("replaying the log at start: yesterday's override of a day budget does not apply today; today's does", () => {
    const cfg = [
      { scope: 'key:k1', usd: 1, period: 'day' as const },
      { scope: 'key:k1', usd: 10, period: 'month' as const },
    ];
    const l = new BudgetLedger(cfg, now);
    const yesterday = windowAt('day', now).start - 3600_000;
    assert.ok(l.override('key:k1', 'day', 7, yesterday));
    assert.equal(l.statuses(now).find((b) => b.period === 'day')!.usd, 1);
    assert.ok(l.override('key:k1', 'month', 20, yesterday), 'the month window still runs');
    assert.equal(l.statuses(now).find((b) => b.period === 'month')!.usd, 20);
    assert.ok(l.override('key:k1', 'day', 3, now - 1000));
    assert.equal(l.statuses(now).find((b) => b.period === 'day')!.usd, 3);
  });

  it('an override of a budget that is not configured is refused and not kept for later', () => {
    const l = new BudgetLedger([{ scope: 'global', usd: 1, period: 'day' }], now);
    assert.equal(l.override('team:red', 'day', 50, now), false);
    l.configure([{ scope: 'global', usd: 1, period: 'day' }, { scope: 'team:red', usd: 2, period: 'day' }], now);
    const red = l.statuses(now).find((b) => b.scope === 'team:red')!;
    assert.equal(red.usd, 2);
    assert.equal(red.overridden, undefined);
  });

  it('formats amounts in cents, or with enough digits below a cent', () => {
    assert.equal(formatUsd(5), '5.00');
    assert.equal(formatUsd(0.0013), '0.0013');
    assert.equal(formatUsd(12.345), '12.35');
  });
});

describe('RateLimiter', () => {
  const scopes = ['global', 'key:k1'];
  const t0 = T('2026-03-05T10:00:00Z');

  it('requests per minute over a sliding minute, with retry-after to the first free slot', () => {
    const r = new RateLimiter([{ scope: 'key:k1', requestsPerMinute: 3 }]);
    for (let i = 0; i < 3; i++) assert.ok(!isRateRefusal(r.admit(scopes, t0 + i * 10_000)));
    const refused = r.admit(scopes, t0 + 30_000);
    assert.ok(isRateRefusal(refused));
    assert.equal(refused.kind, 'requests');
    assert.equal(refused.retryAfterSeconds, 30);
    assert.ok(!isRateRefusal(r.admit(scopes, t0 + 60_000)));
  });

  it('tokens per minute count settled tokens; headroom is the tightest limit', () => {
    const r = new RateLimiter([
      { scope: 'global', tokensPerMinute: 1000, requestsPerMinute: 100 },
      { scope: 'key:k1', requestsPerMinute: 10 },
    ]);
    const room = r.admit(scopes, t0);
    assert.deepEqual(room, { requestsLimit: 10, requestsRemaining: 9, tokensLimit: 1000, tokensRemaining: 1000 });
    r.settle(scopes, 1200, t0 + 1000);
    const refused = r.admit(scopes, t0 + 2000);
    assert.ok(isRateRefusal(refused) && refused.kind === 'tokens' && refused.retryAfterSeconds === 59);
    assert.ok(!isRateRefusal(r.admit(scopes, t0 + 61_000)));
  });
});
