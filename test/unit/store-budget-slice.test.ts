import * as assert from 'node:assert/strict';
import { desiredFree, free, freshSlice, SLICE_FRACTION, statusOf } from '../../src/core/store/postgres/budget-slice';

describe('store (PostgreSQL): a budget slice on one replica', () => {
  const now = Date.parse('2026-12-04T10:00:00Z');

  it('starts with nothing leased, in the UTC window of its period, never used (so a refresh leases nothing for it)', () => {
    const s = freshSlice('key:alice', 'day', 5, now);
    assert.deepEqual(s.window, { start: Date.parse('2026-12-04T00:00:00Z'), end: Date.parse('2026-12-05T00:00:00Z') });
    assert.equal(free(s), 0);
    assert.equal(s.lastActivity, 0);
    assert.equal(s.limit, 5);
  });

  it('free room is the lease less what calls in flight hold and what was settled but not yet sent', () => {
    const s = Object.assign(freshSlice('global', 'month', 100, now), { granted: 10, reserved: 3, unflushed: 1.5, sending: 0.5 });
    assert.equal(free(s), 5);
  });

  it('asks for a tenth of the room no spend and no other replica holds, or what waits when that is more', () => {
    const s = Object.assign(freshSlice('global', 'day', 100, now), { spent: 40, others: 10 });
    assert.equal(desiredFree(s), 50 * SLICE_FRACTION);
    s.waiting = 9;
    assert.equal(desiredFree(s), 9);
    Object.assign(s, { spent: 120, waiting: 0 });
    assert.equal(desiredFree(s), 0, 'an exhausted window asks for nothing');
  });

  it('reports spend as the database last said plus what this replica has not sent', () => {
    const s = Object.assign(freshSlice('team:core', 'week', 20, now), { spent: 12, unflushed: 1, sending: 2, reserved: 0.5, others: 3, overridden: true, limit: 25 });
    const st = statusOf(s);
    assert.deepEqual(st, {
      scope: 'team:core',
      period: 'week',
      usd: 25,
      spentUsd: 15,
      reservedUsd: 0.5,
      leasedUsd: 3,
      remainingUsd: 10,
      resetsAt: '2026-12-07T00:00:00.000Z',
      overridden: true,
    });
  });
});
