import { pipeline, type Readable } from 'node:stream';
import { parse } from 'csv-parse';
import { PHONE_COLUMN_NAMES } from '../campaigns/import-recipients.js';
import { UploadGuard } from '../campaigns/upload-guard.js';
import { keysetCsv } from '../csv/keyset-csv.js';
import { UserError } from '../errors.js';
import { normalisePhone } from '../messages/phone.js';
import { fieldName } from '../messages/template.js';
import type { AppContext } from '../runtime/context.js';
import { addSuppressions, type SuppressionEntry } from './suppressions.js';

const BATCH = 1000;

export interface SuppressionImportReport {
  rows: number;
  added: number;
  /** Numbers that were on the list already. */
  alreadyListed: number;
  rejected: number;
  /** The first 100 rejected rows. */
  rejections: Array<{ line: number; reason: string }>;
}

/**
 * Imports opt-outs from a CSV: a phone column (found by name, as for recipient lists) and an
 * optional `reason` column (default "imported"). Numbers are normalised to E.164 in `region`.
 */
export async function importSuppressions(
  context: AppContext,
  input: Readable,
  options: { region?: string } = {},
): Promise<SuppressionImportReport> {
  const region = options.region ?? 'AU';
  const parser = parse({ bom: true, skip_empty_lines: true, relax_column_count: true, info: true });
  pipeline(input, new UploadGuard(context.config.maxUploadBytes), parser, () => {});
  const report: SuppressionImportReport = {
    rows: 0,
    added: 0,
    alreadyListed: 0,
    rejected: 0,
    rejections: [],
  };
  const reject = (line: number, reason: string) => {
    report.rejected += 1;
    if (report.rejections.length < 100) report.rejections.push({ line, reason });
  };
  let phoneIndex = -1;
  let reasonIndex = -1;
  let header: string[] | undefined;
  let batch: SuppressionEntry[] = [];
  const flush = async () => {
    const added = await addSuppressions(context, batch);
    report.added += added;
    report.alreadyListed += batch.length - added;
    batch = [];
  };
  for await (const { record, info } of parser as AsyncIterable<{
    record: string[];
    info: { lines: number };
  }>) {
    if (!header) {
      header = record.map(fieldName);
      phoneIndex = PHONE_COLUMN_NAMES.map((n) => header!.indexOf(n)).find((i) => i >= 0) ?? -1;
      if (phoneIndex < 0) {
        throw new UserError(
          'CSV_NO_PHONE_COLUMN',
          `no phone column; columns found: ${record.join(', ') || '(none)'}`,
        );
      }
      reasonIndex = header.indexOf('reason');
      continue;
    }
    report.rows += 1;
    const phone = normalisePhone(record[phoneIndex] ?? '', region);
    if (!phone.ok) {
      reject(info.lines, phone.reason);
      continue;
    }
    // A number twice in one batch would be counted as "already listed"; that is what it is.
    batch.push({
      phone: phone.e164,
      reason: (reasonIndex >= 0 && record[reasonIndex]?.trim()) || 'imported',
    });
    if (batch.length >= BATCH) await flush();
  }
  if (!header)
    throw new UserError(
      'CSV_EMPTY',
      'the file is empty: expected a header row and at least one number',
    );
  await flush();
  context.logger.info(
    { added: report.added, rejected: report.rejected },
    'suppression list imported',
  );
  return report;
}

/** The whole suppression list as CSV (`phone,reason,created_at`), streamed in number order. */
export function exportSuppressions(context: AppContext): Readable {
  return keysetCsv<{ phone: string; reason: string; created_at: Date }>({
    pool: context.db.pool,
    header: ['phone', 'reason', 'created_at'],
    pageSql: `SELECT phone, reason, created_at FROM suppression
              WHERE $1::text IS NULL OR phone > $1 ORDER BY phone LIMIT $2`,
    key: (row) => row.phone,
    values: (row) => [row.phone, row.reason, row.created_at.toISOString()],
  });
}
