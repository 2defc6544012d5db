import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.js';

export type { PrismaClient };

/**
 * Prisma for the model-shaped work (campaign CRUD, reads) and the same `pg` pool directly for the
 * hot paths that need set-based SQL Prisma cannot express (claiming messages, folding reports in
 * one `UPDATE … FROM unnest(…)`, bulk inserts). One pool, so one connection budget.
 */
export interface Database {
  pool: pg.Pool;
  prisma: PrismaClient;
  close(): Promise<void>;
}

export function createDatabase(url: string, options: { max?: number } = {}): Database {
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10 });
  // An idle client that loses its connection emits 'error'; without a listener that would crash
  // the process. The next query gets a fresh connection (or a clear error).
  pool.on('error', () => {});
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  return {
    pool,
    prisma,
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}
