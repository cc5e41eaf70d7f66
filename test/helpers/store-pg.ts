import { Pool } from 'pg';
import { startTestPostgres, type TestPostgres } from './postgres';

/** The owner and serving roles the store tests use, as an operator would set them up (docs/team.md). */
export const OWNER = 'ccgw_owner';
export const SERVING = 'ccgw_gateway';
export const DATABASE = 'ccgw';

/** A throwaway cluster with a database owned by OWNER and a SERVING role that has no rights of its own yet. */
export interface StoreCluster {
  pg: TestPostgres;
  ownerUrl: string;
  servingUrl: string;
  /** Pools opened through `pool()`, ended by `close()`. */
  pool(url: string, max?: number): Pool;
  close(): Promise<void>;
}

export async function startStoreCluster(): Promise<StoreCluster> {
  const pg = await startTestPostgres();
  await pg.psql(`CREATE ROLE ${OWNER} LOGIN; CREATE ROLE ${SERVING} LOGIN;`);
  await pg.psql(`CREATE DATABASE ${DATABASE} OWNER ${OWNER}`);
  const pools: Pool[] = [];
  return {
    pg,
    ownerUrl: pg.url(OWNER, DATABASE),
    servingUrl: pg.url(SERVING, DATABASE),
    pool(url, max = 10) {
      const p = new Pool({ connectionString: url, max });
      // A pool's idle clients report the server going away as an error event; the tests that stop the server expect it.
      p.on('error', () => undefined);
      pools.push(p);
      return p;
    },
    async close() {
      await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
      await pg.destroy();
    },
  };
}
