import { once } from 'node:events';
import { pipeline, type Readable } from 'node:stream';
import { parse } from 'csv-parse';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { ConflictError, UserError } from '../errors.js';
import { normalisePhone } from '../messages/phone.js';
import { countSegments } from '../messages/segments.js';
import {
  fieldName,
  MissingFieldError,
  renderTemplate,
  templateFields,
} from '../messages/template.js';
import { isValidTimeZone, parseSendTime } from '../messages/zoned-time.js';
import { providerDefinitions } from '../providers/registry.js';
import type { AppContext } from '../runtime/context.js';
import { getCampaign } from './campaign-service.js';
import { UploadGuard } from './upload-guard.js';

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

/** Optional columns that schedule a row instead of filling the template (reminder lists). */
const SEND_AT_COLUMN = 'send_at';
const TIMEZONE_COLUMN = 'timezone';

/** Rejections returned in the report; all of them are stored and downloadable. */
const REPORTED_REJECTIONS = 100;
/** Rows checked in memory before they are stored: one batch is stored while the next is checked. */
const BATCH_ROWS = 20_000;
/** Rows sent to COPY per write. */
const COPY_CHUNK_ROWS = 500;

export interface Rejection {
  /** Line in the file where the row ends (1 = header). */
  line: number;
  reason: string;
}

export interface ImportReport {
  importId: string;
  /** Data rows read (header excluded). */
  rows: number;
  accepted: number;
  rejected: number;
  /** Rows whose number was already in this file or campaign. */
  duplicates: number;
  /** Rows whose number is on the suppression list. */
  suppressed: number;
  /** The first rejections, in file order; all of them: GET …/imports/:importId/rejections.csv. */
  rejections: Rejection[];
  phoneColumn: string;
  columns: string[];
}

interface Columns {
  names: string[];
  phone: number;
  sendAt: number;
  timezone: number;
}

/**
 * Streams a CSV into the campaign's recipients with memory that does not grow with the file.
 *
 * Every row is checked here (number → E.164, fields the template needs, the rendered message's
 * length against the provider's limit, send time) and written, good or bad, through COPY into a
 * temporary staging table. One INSERT … SELECT then moves the good rows into `message`: first row
 * per number wins (duplicates in the file), numbers on the suppression list are skipped, numbers
 * already in the campaign collapse on its unique key; the bad rows go to `import_rejection` with
 * their line and reason. All of it is one transaction: an import either completes with every good
 * row in, or (file too large, not UTF-8, no valid rows…) leaves nothing behind.
 */
export async function importRecipients(
  context: AppContext,
  campaignId: string,
  input: Readable,
  options: {
    phoneColumn?: string;
    /** Rows checked in memory before they are stored. @defaultValue 20000 */
    batchRows?: number;
  } = {},
): Promise<ImportReport> {
  const campaign = await getCampaign(context, campaignId);
  if (campaign.status !== 'DRAFT') {
    throw new ConflictError(
      'CAMPAIGN_NOT_EDITABLE',
      `campaign ${campaignId} is ${campaign.status}; recipients can only be added to a DRAFT campaign`,
    );
  }
  const account = context.config.accounts.get(campaign.accountName);
  const needed = templateFields(campaign.template);
  const rules: RowRules = {
    template: campaign.template,
    needed,
    region: campaign.defaultRegion,
    timezone: campaign.timezone,
    maxBody: providerDefinitions[account.provider]?.maxBodyChars?.(account),
    now: context.clock.now(),
  };

  const client = await context.db.pool.connect();
  let failed = false;
  try {
    await client.query('BEGIN');
    // Each batch's dedupe sorts its rows: room to sort in memory (this transaction only).
    await client.query("SET LOCAL work_mem = '64MB'");
    await client.query(
      `CREATE TEMP TABLE import_staging (
         line int, phone text, fields jsonb, due_at timestamptz, timezone text, segments int,
         reason text, raw text
       ) ON COMMIT DROP`,
    );
    const parser = parse({
      bom: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      // Column counts are checked below, to report them in plain words.
      relax_column_count: true,
      info: true,
      raw: true,
    });
    // Any failure (size limit, not UTF-8, the upload breaking off) ends the loop below with it.
    pipeline(input, new UploadGuard(context.config.maxUploadBytes), parser, () => {});
    const malformed: Array<{ line: number; reason: string }> = [];
    parser.on('skip', (error: Error & { lines?: number }) => {
      malformed.push({ line: error.lines ?? 0, reason: `malformed CSV: ${error.message}` });
    });

    const totals: Totals = { rows: 0, valid: 0, rejected: 0, suppressed: 0, accepted: 0 };
    const rejections: Rejection[] = [];
    let columns: Columns | undefined;
    let importId: string | undefined;
    let batch: string[] = [];
    // One batch is stored while the next is parsed, so the database and the checks overlap.
    let storing: Promise<void> = Promise.resolve();
    const stage = (line: number, row: StagedRow) => {
      batch.push(stagingLine(line, row));
      if (row.reason && rejections.length < REPORTED_REJECTIONS * 2)
        rejections.push({ line, reason: row.reason });
    };
    const handOver = async () => {
      await storing;
      const rows = batch;
      batch = [];
      storing = storeBatch(client, importId!, campaignId, rows, totals);
      storing.catch(() => {}); // surfaces at the next await of `storing`
    };

    for await (const { record, info, raw } of parser as AsyncIterable<{
      record: string[];
      info: { lines: number };
      raw: string;
    }>) {
      for (const m of malformed.splice(0)) stage(m.line, { reason: m.reason, raw: '' });
      if (!columns) {
        columns = findColumns(record, options.phoneColumn, needed);
        importId = await createImport(client, campaignId, columns);
        continue;
      }
      stage(info.lines, checkRow(record, raw, columns, rules));
      if (batch.length >= (options.batchRows ?? BATCH_ROWS)) await handOver();
    }
    for (const m of malformed.splice(0)) stage(m.line, { reason: m.reason, raw: '' });
    if (!columns || !importId) {
      throw new UserError(
        'CSV_EMPTY',
        'the file is empty: expected a header row and at least one recipient',
      );
    }
    if (batch.length > 0) await handOver();
    await storing;

    rejections.sort((a, b) => a.line - b.line);
    if (totals.valid === 0) {
      throw new UserError(
        'CSV_NO_VALID_ROWS',
        `no valid rows: ${totals.rejected} of ${totals.rows} rows were rejected; nothing was imported`,
        400,
        {
          rows: totals.rows,
          rejected: totals.rejected,
          rejections: rejections.slice(0, REPORTED_REJECTIONS),
        },
      );
    }
    const report: ImportReport = {
      importId,
      rows: totals.rows,
      accepted: totals.accepted,
      rejected: totals.rejected,
      duplicates: totals.valid - totals.suppressed - totals.accepted,
      suppressed: totals.suppressed,
      rejections: rejections.slice(0, REPORTED_REJECTIONS),
      phoneColumn: columns.names[columns.phone]!,
      columns: columns.names,
    };
    await client.query(
      `UPDATE recipient_import SET rows = $2, accepted = $3, rejected = $4, duplicates = $5, suppressed = $6
       WHERE id = $1`,
      [
        importId,
        report.rows,
        report.accepted,
        report.rejected,
        report.duplicates,
        report.suppressed,
      ],
    );
    await client.query('COMMIT');
    context.logger.info(
      {
        campaignId,
        importId,
        rows: report.rows,
        accepted: report.accepted,
        rejected: report.rejected,
      },
      'recipients imported',
    );
    return report;
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    // After a failure the connection may be mid-COPY: drop it, and the transaction with it.
    client.release(failed ? true : undefined);
  }
}

interface Totals {
  rows: number;
  valid: number;
  rejected: number;
  suppressed: number;
  accepted: number;
}

async function createImport(
  client: pg.PoolClient,
  campaignId: string,
  columns: Columns,
): Promise<string> {
  const created = await client.query<{ id: string }>(
    `INSERT INTO recipient_import (campaign_id, phone_column, columns, rows, accepted, rejected, duplicates, suppressed)
     VALUES ($1, $2, $3, 0, 0, 0, 0, 0) RETURNING id`,
    [campaignId, columns.names[columns.phone], columns.names],
  );
  return created.rows[0]!.id;
}

/**
 * Stores one batch: COPY into the staging table, then one statement moves its good rows into
 * `message` (first row per number wins; suppressed numbers skipped; numbers already in the
 * campaign, from this file's earlier batches too, collapse on the unique key) and its bad rows into
 * `import_rejection`, and counts what happened.
 */
async function storeBatch(
  client: pg.PoolClient,
  importId: string,
  campaignId: string,
  rows: string[],
  totals: Totals,
): Promise<void> {
  const copy = client.query(copyFrom('COPY import_staging FROM STDIN'));
  // Errors surface through once(); on the abort path nobody is left to tell.
  copy.on('error', () => {});
  for (let i = 0; i < rows.length; i += COPY_CHUNK_ROWS) {
    if (!copy.write(rows.slice(i, i + COPY_CHUNK_ROWS).join(''))) await once(copy, 'drain');
  }
  copy.end();
  await once(copy, 'finish');
  const { rows: counts } = await client.query<Record<keyof Omit<Totals, 'rows'> | 'total', string>>(
    `WITH inserted AS (
       INSERT INTO message (campaign_id, phone, fields, due_at, timezone, segments)
       SELECT $1::uuid, phone, fields, due_at, timezone, segments FROM (
         SELECT DISTINCT ON (phone) * FROM import_staging st
         WHERE reason IS NULL AND NOT EXISTS (SELECT 1 FROM suppression s WHERE s.phone = st.phone)
         ORDER BY phone, line
       ) first_per_number
       ON CONFLICT (campaign_id, phone) DO NOTHING
       RETURNING 1
     ), rejected AS (
       INSERT INTO import_rejection (import_id, line, reason, raw)
       SELECT $2, line, reason, raw FROM import_staging WHERE reason IS NOT NULL
       ON CONFLICT DO NOTHING
     )
     SELECT (SELECT count(*) FROM inserted) AS accepted,
            count(*) AS total,
            count(*) FILTER (WHERE st.reason IS NULL) AS valid,
            count(*) FILTER (WHERE st.reason IS NOT NULL) AS rejected,
            count(*) FILTER (WHERE st.reason IS NULL
                               AND EXISTS (SELECT 1 FROM suppression s WHERE s.phone = st.phone)) AS suppressed
     FROM import_staging st`,
    [campaignId, importId],
  );
  await client.query('TRUNCATE import_staging');
  const c = counts[0]!;
  totals.rows += Number(c.total);
  totals.valid += Number(c.valid);
  totals.rejected += Number(c.rejected);
  totals.suppressed += Number(c.suppressed);
  totals.accepted += Number(c.accepted);
}

interface StagedRow {
  phone?: string;
  fields?: Record<string, string>;
  dueAt?: Date;
  timezone?: string;
  segments?: number;
  reason?: string;
  raw: string;
}

interface RowRules {
  template: string;
  needed: string[];
  region: string;
  timezone: string;
  maxBody: number | undefined;
  now: Date;
}

function checkRow(record: string[], raw: string, columns: Columns, rules: RowRules): StagedRow {
  const rawLine = raw.replace(/\r?\n$/, '');
  if (record.length !== columns.names.length) {
    return {
      reason: `expected ${columns.names.length} columns, found ${record.length}`,
      raw: rawLine,
    };
  }
  const phone = normalisePhone(record[columns.phone]!, rules.region);
  if (!phone.ok) return { reason: phone.reason, raw: rawLine };

  const fields: Record<string, string> = {};
  columns.names.forEach((name, i) => {
    if (i !== columns.phone && i !== columns.sendAt && i !== columns.timezone && name) {
      fields[name] = record[i]!.trim();
    }
  });
  let body: string;
  try {
    body = renderTemplate(rules.template, fields);
  } catch (error) {
    if (!(error instanceof MissingFieldError)) throw error;
    return { reason: `empty value for {{${error.field}}}, which the template uses`, raw: rawLine };
  }
  if (
    rules.maxBody !== undefined &&
    body.length > rules.maxBody &&
    [...body].length > rules.maxBody
  ) {
    return {
      reason: `the message would be ${[...body].length} characters; the account's provider accepts at most ${rules.maxBody}`,
      raw: rawLine,
    };
  }

  const timezone = columns.timezone >= 0 ? record[columns.timezone]!.trim() : '';
  if (timezone && !isValidTimeZone(timezone)) {
    return {
      reason: `unknown time zone "${timezone}" (use an IANA name such as Australia/Sydney)`,
      raw: rawLine,
    };
  }
  let dueAt: Date | undefined;
  const sendAt = columns.sendAt >= 0 ? record[columns.sendAt]!.trim() : '';
  if (sendAt) {
    dueAt = parseSendTime(sendAt, timezone || rules.timezone);
    if (!dueAt) {
      return {
        reason: `send_at "${sendAt}" is not a date and time (write 2026-12-01 09:30, or ISO 8601 with an offset)`,
        raw: rawLine,
      };
    }
    if (dueAt <= rules.now) return { reason: `send_at "${sendAt}" is in the past`, raw: rawLine };
  }
  return {
    phone: phone.e164,
    fields,
    dueAt,
    timezone: timezone || undefined,
    segments: countSegments(body).segments,
    raw: rawLine,
  };
}

function findColumns(header: string[], chosen: string | undefined, needed: string[]): Columns {
  const names = header.map(fieldName);
  let phone: number;
  if (chosen) {
    phone = names.indexOf(fieldName(chosen));
    if (phone < 0) {
      throw new UserError(
        'CSV_NO_PHONE_COLUMN',
        `no column named "${chosen}"; columns found: ${header.join(', ')}`,
      );
    }
  } else {
    phone = PHONE_COLUMN_NAMES.map((name) => names.indexOf(name)).find((i) => i >= 0) ?? -1;
    if (phone < 0) {
      throw new UserError(
        'CSV_NO_PHONE_COLUMN',
        `no phone column; columns found: ${header.join(', ') || '(none)'}. Name one phone, mobile, msisdn or number, or choose it with the phone column option`,
      );
    }
  }
  const missing = needed.filter((f) => !names.includes(f));
  if (missing.length > 0) {
    throw new UserError(
      'TEMPLATE_FIELD_UNKNOWN',
      `the template uses ${missing.map((f) => `{{${f}}}`).join(', ')} but the file has no such column; columns found: ${names.join(', ')}`,
    );
  }
  return {
    names,
    phone,
    sendAt: names.indexOf(SEND_AT_COLUMN),
    timezone: names.indexOf(TIMEZONE_COLUMN),
  };
}

/** One line of COPY text format: tab-separated, \N for null, backslash escapes. */
function stagingLine(line: number, row: StagedRow): string {
  return `${[
    String(line),
    copyText(row.phone),
    copyText(row.fields && JSON.stringify(row.fields)),
    copyText(row.dueAt?.toISOString()),
    copyText(row.timezone),
    copyText(row.segments?.toString()),
    copyText(row.reason),
    copyText(row.raw),
  ].join('\t')}\n`;
}

function copyText(value: string | undefined): string {
  if (value === undefined) return '\\N';
  return /[\\\t\n\r]/.test(value)
    ? value.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r')
    : value;
}
