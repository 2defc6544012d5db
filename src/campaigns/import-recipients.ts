import type { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import { ConflictError, UserError } from '../errors.js';
import { normalisePhone } from '../messages/phone.js';
import { fieldName, templateFields } from '../messages/template.js';
import type { AppContext } from '../runtime/context.js';
import { getCampaign } from './campaign-service.js';

/** Header names recognised as the phone column, in order of preference (after normalising). */
export const PHONE_COLUMN_NAMES = [
  'phone',
  'mobile',
  'msisdn',
  'number',
  'phone_number',
  'mobile_number',
  'mobile_phone',
  'cell',
  'cellphone',
  'cell_phone',
  'telephone',
  'tel',
  'destination',
  'to',
];

const BATCH_ROWS = 2000;
/** Rejections kept in the report; the counts are always complete. */
const MAX_REPORTED_REJECTIONS = 1000;

export interface Rejection {
  /** Line in the file where the row ends (1 = header). */
  line: number;
  reason: string;
}

export interface ImportReport {
  /** Data rows read (header excluded). */
  rows: number;
  accepted: number;
  rejected: number;
  /** Rows whose number was already in this file or campaign. */
  duplicates: number;
  /** Rows whose number is on the suppression list. */
  suppressed: number;
  rejections: Rejection[];
  /** True when more rows were rejected than `rejections` lists. */
  rejectionsTruncated: boolean;
  phoneColumn: string;
  columns: string[];
}

interface PendingRow {
  phone: string;
  fields: Record<string, string>;
}

/**
 * Streams a CSV into the campaign's recipients: memory stays flat whatever the file size. Bad
 * rows are reported with their line and reason while good rows go in. Rows are written in
 * batches with `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`, which collapses duplicate
 * numbers (within the file and the campaign) in the database instead of in memory.
 */
export async function importRecipients(
  context: AppContext,
  campaignId: string,
  input: Readable,
  options: { phoneColumn?: string } = {},
): Promise<ImportReport> {
  const campaign = await getCampaign(context, campaignId);
  if (campaign.status !== 'DRAFT') {
    throw new ConflictError(
      'CAMPAIGN_NOT_EDITABLE',
      `campaign ${campaignId} is ${campaign.status}; recipients can only be added to a DRAFT campaign`,
    );
  }
  const needed = templateFields(campaign.template);
  const parser = input.pipe(
    // Column counts are checked below, to report them in plain words.
    parse({
      bom: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      relax_column_count: true,
      info: true,
    }),
  );
  const report: ImportReport = {
    rows: 0,
    accepted: 0,
    rejected: 0,
    duplicates: 0,
    suppressed: 0,
    rejections: [],
    rejectionsTruncated: false,
    phoneColumn: '',
    columns: [],
  };
  const reject = (line: number, reason: string) => {
    report.rejected += 1;
    if (report.rejections.length < MAX_REPORTED_REJECTIONS)
      report.rejections.push({ line, reason });
    else report.rejectionsTruncated = true;
  };
  parser.on('skip', (error: Error & { lines?: number }) => {
    report.rows += 1;
    reject(error.lines ?? 0, `malformed CSV: ${error.message}`);
  });
  input.on('error', (error) => parser.destroy(error));

  let header: string[] | undefined;
  let phoneIndex = -1;
  let batch: PendingRow[] = [];
  for await (const { record, info } of parser as AsyncIterable<{
    record: string[];
    info: { lines: number };
  }>) {
    if (!header) {
      header = record.map(fieldName);
      phoneIndex = findPhoneColumn(header, record, options.phoneColumn);
      report.phoneColumn = header[phoneIndex]!;
      report.columns = header;
      const missing = needed.filter((f) => !header!.includes(f));
      if (missing.length > 0) {
        throw new UserError(
          'TEMPLATE_FIELD_UNKNOWN',
          `the template uses ${missing.map((f) => `{{${f}}}`).join(', ')} but the file has no such column; columns found: ${header.join(', ')}`,
        );
      }
      continue;
    }
    report.rows += 1;
    if (record.length !== header.length) {
      reject(info.lines, `expected ${header.length} columns, found ${record.length}`);
      continue;
    }
    const phone = normalisePhone(record[phoneIndex]!, campaign.defaultRegion);
    if (!phone.ok) {
      reject(info.lines, phone.reason);
      continue;
    }
    const fields: Record<string, string> = {};
    header.forEach((name, i) => {
      if (i !== phoneIndex && name) fields[name] = record[i]!.trim();
    });
    const blank = needed.find((f) => !fields[f]);
    if (blank) {
      reject(info.lines, `empty value for {{${blank}}}, which the template uses`);
      continue;
    }
    batch.push({ phone: phone.e164, fields });
    if (batch.length >= BATCH_ROWS) {
      await insertBatch(context, campaignId, batch, report);
      batch = [];
    }
  }
  if (!header)
    throw new UserError(
      'CSV_EMPTY',
      'the file is empty: expected a header row and at least one recipient',
    );
  if (batch.length > 0) await insertBatch(context, campaignId, batch, report);
  // The parser reports malformed records out of order; readers expect file order.
  report.rejections.sort((a, b) => a.line - b.line);
  if (report.accepted === 0 && report.duplicates === 0 && report.suppressed === 0) {
    throw new UserError(
      'CSV_NO_VALID_ROWS',
      `no valid rows: ${report.rejected} of ${report.rows} rows were rejected; nothing was imported`,
      400,
      report,
    );
  }
  context.logger.info(
    { campaignId, rows: report.rows, accepted: report.accepted, rejected: report.rejected },
    'recipients imported',
  );
  return report;
}

function findPhoneColumn(header: string[], raw: string[], chosen: string | undefined): number {
  if (chosen) {
    const index = header.indexOf(fieldName(chosen));
    if (index < 0) {
      throw new UserError(
        'CSV_NO_PHONE_COLUMN',
        `no column named "${chosen}"; columns found: ${raw.join(', ')}`,
      );
    }
    return index;
  }
  for (const name of PHONE_COLUMN_NAMES) {
    const index = header.indexOf(name);
    if (index >= 0) return index;
  }
  throw new UserError(
    'CSV_NO_PHONE_COLUMN',
    `no phone column; columns found: ${raw.join(', ') || '(none)'}. Name one phone, mobile, msisdn or number, or choose it with the phone column option`,
  );
}

async function insertBatch(
  context: AppContext,
  campaignId: string,
  batch: PendingRow[],
  report: ImportReport,
) {
  // Suppressed numbers are skipped at import (and checked again at send time).
  const suppressed = await context.db.pool.query<{ phone: string }>(
    'SELECT phone FROM suppression WHERE phone = ANY($1::text[])',
    [batch.map((r) => r.phone)],
  );
  const blocked = new Set(suppressed.rows.map((r) => r.phone));
  const rows = blocked.size ? batch.filter((r) => !blocked.has(r.phone)) : batch;
  report.suppressed += batch.length - rows.length;
  const inserted = await context.db.pool.query(
    `INSERT INTO message (campaign_id, phone, fields)
     SELECT $1::uuid, phone, fields FROM unnest($2::text[], $3::jsonb[]) AS r(phone, fields)
     ON CONFLICT (campaign_id, phone) DO NOTHING`,
    [campaignId, rows.map((r) => r.phone), rows.map((r) => JSON.stringify(r.fields))],
  );
  report.accepted += inserted.rowCount ?? 0;
  report.duplicates += rows.length - (inserted.rowCount ?? 0);
}
