import { Readable } from 'node:stream';
import type pg from 'pg';
import { csvRow } from './csv-row.js';

/**
 * Streams a query's rows as CSV, page by page in key order (keyset pagination), so an export of
 * a million rows holds one page in memory. `pageSql` takes the last key seen as $1 (null on the
 * first page) and the page size as $2, plus `params` from $3 on, and must ORDER BY its key.
 */
export function keysetCsv<Row extends pg.QueryResultRow>(options: {
  pool: pg.Pool;
  header: string[];
  pageSql: string;
  params?: unknown[];
  key(row: Row): unknown;
  values(row: Row): Array<string | number | null | undefined>;
  /** @defaultValue 5000 */
  pageSize?: number;
}): Readable {
  const pageSize = options.pageSize ?? 5000;
  async function* lines() {
    yield csvRow(options.header);
    let after: unknown = null;
    for (;;) {
      const { rows } = await options.pool.query<Row>(options.pageSql, [
        after,
        pageSize,
        ...(options.params ?? []),
      ]);
      if (rows.length === 0) return;
      yield rows.map((row) => csvRow(options.values(row))).join('');
      if (rows.length < pageSize) return;
      after = options.key(rows[rows.length - 1]!);
    }
  }
  return Readable.from(lines());
}
