import type { Readable } from 'node:stream';
import { NotFoundError } from '../errors.js';
import { keysetCsv } from '../csv/keyset-csv.js';
import type { AppContext } from '../runtime/context.js';

/** An import's rejected rows as CSV (`line,reason,row`), in file order, streamed. */
export async function rejectionsCsv(
  context: AppContext,
  campaignId: string,
  importId: string,
): Promise<Readable> {
  const found = await context.db.pool.query(
    'SELECT 1 FROM recipient_import WHERE id::text = $1 AND campaign_id::text = $2',
    [importId, campaignId],
  );
  if (!found.rowCount)
    throw new NotFoundError('IMPORT_NOT_FOUND', `no import ${importId} for campaign ${campaignId}`);
  return keysetCsv<{ line: number; reason: string; raw: string }>({
    pool: context.db.pool,
    header: ['line', 'reason', 'row'],
    pageSql: `SELECT line, reason, raw FROM import_rejection
              WHERE import_id = $3 AND line > COALESCE($1::int, -1) ORDER BY line LIMIT $2`,
    params: [importId],
    key: (row) => row.line,
    values: (row) => [row.line, row.reason, row.raw],
  });
}
