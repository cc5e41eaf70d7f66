/**
 * A replica that leases budget room and rate-limit admissions and then holds them, for kill -9 tests: argv is the
 * database URL, the replica id and the lease in ms. It prints one JSON line once it holds its leases.
 */
import { Pool } from 'pg';
import { PgBudgetLedger, isStoreRefusal } from '../../src/core/store/postgres/budgets';
import { PgRateLimiter } from '../../src/core/store/postgres/rates';

const [url, replica, leaseMs] = process.argv.slice(2);
const pool = new Pool({ connectionString: url, max: 2 });
const budgets = [{ scope: 'key:killed', usd: 1, period: 'day' as const }];
const ledger = new PgBudgetLedger(pool, budgets, { replica, leaseMs: Number(leaseMs) });
const limiter = new PgRateLimiter(pool, [{ scope: 'key:killed', requestsPerMinute: 100 }], { replica, leaseMs: Number(leaseMs) });
void (async () => {
  await ledger.configure(budgets);
  const hold = await ledger.reserve(['key:killed'], 0.8, Date.now());
  const room = await limiter.admit(['key:killed'], Date.now());
  process.stdout.write(`${JSON.stringify({ held: !isStoreRefusal(hold), room })}\n`);
  setInterval(() => undefined, 1000);
})();
