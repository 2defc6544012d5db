import { once } from 'node:events';
import { pipeline, type Readable } from 'node:stream';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { CsvRecordReader, type CsvHandlers } from '../csv/csv-records.js';
import { ConflictError, UserError } from '../errors.js';
import { MessageIdGenerator } from '../messages/message-id.js';
import { normalisePhone } from '../messages/phone.js';
import { countSegments } from '../messages/segments.js';
import { compileTemplate, fieldName, templateFields } from '../messages/template.js';
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
/** COPY text is built in pieces of about this many characters. */
const COPY_CHUNK_CHARS = 64 * 1024;

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
 * length against the provider's limit, send time), given its message id, and written, good or
 * bad, through COPY into a temporary staging table, a batch at a time. One INSERT … SELECT per
 * batch then moves the good rows into `message`: numbers on the suppression list are skipped, and
 * the first row per number wins (a number repeated within the batch is marked here; one already in
 * the campaign, from an earlier batch or import, collapses on its unique key); the bad rows go to
 * `import_rejection` with their line and reason. Each batch is stored while the next is checked.
 * All of it is one transaction: an import either completes with every good row in, or (file too
 * large, not UTF-8, no valid rows…) leaves nothing behind.
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
  const batchRows = options.batchRows ?? BATCH_ROWS;

  const client = await context.db.pool.connect();
  let failed = false;
  try {
    await client.query('BEGIN');
    // These statements are planned in well under a millisecond; compiling them (JIT, which their
    // cost estimates invite) took ~40 ms per batch.
    await client.query('SET LOCAL jit = off');
    await client.query(
      `CREATE TEMP TABLE import_staging (
         line int, id uuid, phone text, fields jsonb, due_at timestamptz, timezone text, segments int,
         repeated boolean, reason text, raw text, suppressed boolean NOT NULL DEFAULT false
       ) ON COMMIT DROP`,
    );
    const totals: Totals = { rows: 0, valid: 0, rejected: 0, suppressed: 0, accepted: 0 };
    const rejections: Rejection[] = [];
    let checker: RowChecker | undefined;
    let importId: string | undefined;
    let batch = new Batch();
    /** Batches filled while reading the last piece of the file, waiting to be stored. */
    const full: Batch[] = [];
    const count = (b: Batch) => {
      if (b.rows >= batchRows) {
        full.push(b);
        batch = new Batch();
      }
    };
    const reject = (line: number, reason: string, raw: string) => {
      batch.reject(line, reason, raw);
      if (rejections.length < REPORTED_REJECTIONS) rejections.push({ line, reason });
      count(batch);
    };
    const handlers: CsvHandlers = {
      record(fields, line, raw) {
        if (!checker) {
          checker = new RowChecker(findColumns(fields, options.phoneColumn, needed), rules);
          return;
        }
        const reason = checker.check(fields, line, batch);
        if (reason) reject(line, reason, raw);
        else count(batch);
      },
      malformed: reject,
    };

    // One batch is stored while the next is read and checked, so the database and the checks
    // overlap; at most one waits.
    let storing: Promise<void> = Promise.resolve();
    const handOver = async (rows: Batch) => {
      await storing;
      if (!checker) {
        throw new UserError(
          'CSV_NO_PHONE_COLUMN',
          `no header row: the first ${rows.rows} lines are not CSV`,
        );
      }
      importId ??= await createImport(client, campaignId, checker.columns);
      storing = storeBatch(client, importId, campaignId, rows, totals);
      storing.catch(() => {}); // surfaces at the next await of `storing`
    };

    // Any failure (size limit, not UTF-8, the upload breaking off) ends the loop below with it.
    const guarded = pipeline(input, new UploadGuard(context.config.maxUploadBytes), () => {});
    const reader = new CsvRecordReader();
    const decoder = new TextDecoder();
    for await (const chunk of guarded as AsyncIterable<Buffer>) {
      reader.push(decoder.decode(chunk, { stream: true }), handlers);
      while (full.length > 0) await handOver(full.shift()!);
    }
    reader.push(decoder.decode(), handlers);
    reader.end(handlers);
    if (!checker) {
      throw new UserError(
        'CSV_EMPTY',
        'the file is empty: expected a header row and at least one recipient',
      );
    }
    while (full.length > 0) await handOver(full.shift()!);
    if (batch.rows > 0) await handOver(batch);
    await storing;
    importId ??= await createImport(client, campaignId, checker.columns);

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
    const { columns } = checker;
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
 * One batch of checked rows as COPY text for the staging table (tab-separated, \N for null,
 * backslash escapes), with its counts and the numbers seen in it.
 */
class Batch {
  /** COPY text already encoded: off the JavaScript heap, so memory and garbage collection stay
   * small (the same rows kept as strings until stored took 340 MB and 6 s of collection). */
  private readonly chunks: Buffer[] = [];
  private text = '';
  rows = 0;
  valid = 0;
  rejected = 0;
  /** Numbers of this batch's good rows: a number seen before in the batch is marked repeated. */
  private readonly phones = new Set<string>();

  add(
    line: number,
    id: string,
    phone: string,
    fields: string,
    dueAt: Date | undefined,
    timezone: string,
    segments: number,
  ): void {
    const repeated = this.phones.has(phone);
    if (!repeated) this.phones.add(phone);
    this.rows++;
    this.valid++;
    this.append(
      `${line}\t${id}\t${phone}\t${fields}\t${dueAt ? dueAt.toISOString() : '\\N'}\t${timezone || '\\N'}\t${segments}\t${repeated ? 't' : 'f'}\t\\N\t\\N\n`,
    );
  }

  reject(line: number, reason: string, raw: string): void {
    this.rows++;
    this.rejected++;
    this.append(
      `${line}\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t${copyText(reason)}\t${copyText(raw)}\n`,
    );
  }

  /** The COPY text, in pieces. */
  pieces(): Buffer[] {
    if (this.text) {
      this.chunks.push(Buffer.from(this.text));
      this.text = '';
    }
    return this.chunks;
  }

  private append(line: string): void {
    this.text += line;
    if (this.text.length >= COPY_CHUNK_CHARS) {
      this.chunks.push(Buffer.from(this.text));
      this.text = '';
    }
  }
}

/**
 * Stores one batch: COPY into the staging table; mark (and count) suppressed numbers; one
 * statement moves the good rows into `message` (first row per number: not repeated within the
 * batch, not already in the campaign, which collapses on its unique key) and counts them; the bad
 * rows go to `import_rejection`.
 */
async function storeBatch(
  client: pg.PoolClient,
  importId: string,
  campaignId: string,
  batch: Batch,
  totals: Totals,
): Promise<void> {
  const copy = client.query(
    copyFrom(
      'COPY import_staging (line, id, phone, fields, due_at, timezone, segments, repeated, reason, raw) FROM STDIN',
    ),
  );
  // Errors surface through once(); on the abort path nobody is left to tell.
  copy.on('error', () => {});
  for (const piece of batch.pieces()) {
    if (!copy.write(piece)) await once(copy, 'drain');
  }
  copy.end();
  await once(copy, 'finish');
  if (batch.valid > 0) {
    const suppressed = await client.query(
      `UPDATE import_staging st SET suppressed = true
       FROM suppression s WHERE s.phone = st.phone AND st.reason IS NULL`,
    );
    const inserted = await client.query(
      `INSERT INTO message (id, campaign_id, phone, fields, due_at, timezone, segments)
       SELECT id, $1::uuid, phone, fields, due_at, timezone, segments FROM import_staging
       WHERE reason IS NULL AND NOT repeated AND NOT suppressed
       ON CONFLICT (campaign_id, phone) DO NOTHING`,
      [campaignId],
    );
    totals.suppressed += suppressed.rowCount ?? 0;
    totals.accepted += inserted.rowCount ?? 0;
  }
  if (batch.rejected > 0) {
    await client.query(
      `INSERT INTO import_rejection (import_id, line, reason, raw)
       SELECT $1, line, reason, raw FROM import_staging WHERE reason IS NOT NULL
       ON CONFLICT DO NOTHING`,
      [importId],
    );
  }
  await client.query('TRUNCATE import_staging');
  totals.rows += batch.rows;
  totals.valid += batch.valid;
  totals.rejected += batch.rejected;
}

interface RowRules {
  template: string;
  needed: string[];
  region: string;
  timezone: string;
  maxBody: number | undefined;
  now: Date;
}

/**
 * The checks on one row, prepared once per file from its header: which column fills each
 * placeholder, which columns become fields (a name given twice: the last column wins), the
 * fields' JSON keys.
 */
class RowChecker {
  private readonly literals: string[];
  private readonly placeholders: string[];
  /** Column filling each placeholder; -1 for one no column fills (the phone or a scheduling one). */
  private readonly placeholderColumns: number[];
  private readonly fieldColumns: number[];
  /** `{"name":` or `,"name":` for each field column. */
  private readonly fieldKeys: string[];
  private readonly ids = new MessageIdGenerator();

  constructor(
    readonly columns: Columns,
    private readonly rules: RowRules,
  ) {
    const fieldColumn = new Map<string, number>();
    columns.names.forEach((name, i) => {
      if (i !== columns.phone && i !== columns.sendAt && i !== columns.timezone && name) {
        fieldColumn.set(name, i);
      }
    });
    const template = compileTemplate(rules.template);
    this.literals = template.literals;
    this.placeholders = template.fields;
    this.placeholderColumns = template.fields.map((name) => fieldColumn.get(name) ?? -1);
    this.fieldColumns = [...fieldColumn.values()];
    this.fieldKeys = [...fieldColumn.keys()].map(
      (name, k) => `${k === 0 ? '{' : ','}${JSON.stringify(name)}:`,
    );
  }

  /** Adds the row to the batch if it is good; else returns why not. */
  check(record: string[], line: number, batch: Batch): string | undefined {
    const { columns, rules } = this;
    if (record.length !== columns.names.length) {
      return `expected ${columns.names.length} columns, found ${record.length}`;
    }
    const phone = normalisePhone(record[columns.phone]!, rules.region);
    if (!phone.ok) return phone.reason;

    let body = this.literals[0]!;
    for (let k = 0; k < this.placeholderColumns.length; k++) {
      const column = this.placeholderColumns[k]!;
      const value = column < 0 ? '' : record[column]!.trim();
      if (value === '') {
        return `empty value for {{${this.placeholders[k]}}}, which the template uses`;
      }
      body += value + this.literals[k + 1]!;
    }
    if (
      rules.maxBody !== undefined &&
      body.length > rules.maxBody &&
      [...body].length > rules.maxBody
    ) {
      return `the message would be ${[...body].length} characters; the account's provider accepts at most ${rules.maxBody}`;
    }

    const timezone = columns.timezone >= 0 ? record[columns.timezone]!.trim() : '';
    if (timezone && !isValidTimeZone(timezone)) {
      return `unknown time zone "${timezone}" (use an IANA name such as Australia/Sydney)`;
    }
    let dueAt: Date | undefined;
    const sendAt = columns.sendAt >= 0 ? record[columns.sendAt]!.trim() : '';
    if (sendAt) {
      dueAt = parseSendTime(sendAt, timezone || rules.timezone);
      if (!dueAt) {
        return `send_at "${sendAt}" is not a date and time (write 2026-12-01 09:30, or ISO 8601 with an offset)`;
      }
      if (dueAt <= rules.now) return `send_at "${sendAt}" is in the past`;
    }

    let fields = this.fieldColumns.length === 0 ? '{' : '';
    for (let k = 0; k < this.fieldColumns.length; k++) {
      fields += this.fieldKeys[k]! + JSON.stringify(record[this.fieldColumns[k]!]!.trim());
    }
    fields += '}';
    // JSON escapes every control character, so only its backslashes need escaping for COPY.
    if (fields.includes('\\')) fields = fields.replace(/\\/g, '\\\\');
    batch.add(
      line,
      this.ids.next(),
      phone.e164,
      fields,
      dueAt,
      timezone,
      countSegments(body).segments,
    );
    return undefined;
  }
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

function copyText(value: string | undefined): string {
  if (value === undefined) return '\\N';
  return /[\\\t\n\r]/.test(value)
    ? value.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r')
    : value;
}
