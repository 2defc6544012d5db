import { once } from 'node:events';
import { pipeline, type Readable } from 'node:stream';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { CsvRecordReader, type CsvHandlers } from '../csv/csv-records.js';
import { ConflictError, UserError } from '../errors.js';
import { MessageIdGenerator } from '../messages/message-id.js';
import { normalisePhone } from '../messages/phone.js';
import { gsmSegments, gsmSeptets, textLength, ucs2Segments } from '../messages/segments.js';
import { compileTemplate, fieldName, templateFields } from '../messages/template.js';
import { isValidTimeZone, parseSendTime } from '../messages/zoned-time.js';
import { maxBodyCharsFor } from '../providers/registry.js';
import type { AppContext } from '../runtime/context.js';
import { getCampaign } from './campaign-service.js';
import { NumberFilter } from './import-number-filter.js';
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
/** …or fewer, when their text reaches this many characters (rows can be long). */
const BATCH_CHARS = 16 * 1024 * 1024;
/** The file is read in pieces of at most this many characters. */
const READ_PIECE_CHARS = 16 * 1024;
/** COPY text is built in pieces of about this many characters. */
const COPY_CHUNK_CHARS = 64 * 1024;
/** First key of the transaction-level advisory lock that lets one import at a time into a campaign. */
const IMPORT_LOCK = 0x48524c44; // "HRLD"

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
 * length against the provider's limit, send time) and given its message id, a batch at a time;
 * the first good row per number in the batch is kept. Each batch is then stored while the next is
 * checked: its numbers are looked up on the suppression list (skipped and counted) and, where they
 * may repeat a number already in the campaign (from an earlier batch: a fixed-size filter says
 * which may; from an earlier import: all of them), in the campaign (skipped: the first row wins);
 * the rest go straight into `message` with COPY, and the bad rows into `import_rejection` with
 * their line and reason. One import at a time per campaign (an advisory lock), so nothing else can
 * add the same number meanwhile. All of it is one transaction: an import either completes with
 * every good row in, or (file too large, not UTF-8, no valid rows…) leaves nothing behind.
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
    maxBody: maxBodyCharsFor(account),
    now: context.clock.now(),
  };
  const batchRows = options.batchRows ?? BATCH_ROWS;

  const client = await context.db.pool.connect();
  let failed = false;
  try {
    await client.query('BEGIN');
    // These statements are planned in well under a millisecond; compiling them (JIT, which their
    // cost estimates can invite) took ~40 ms per batch.
    await client.query('SET LOCAL jit = off');
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [IMPORT_LOCK, campaignId]);
    const existing = await client.query<{ any: boolean }>(
      'SELECT EXISTS (SELECT 1 FROM message WHERE campaign_id = $1) AS any',
      [campaignId],
    );
    const store: Store = {
      client,
      campaignId,
      importId: '',
      checkEveryNumber: existing.rows[0]!.any,
      seen: new NumberFilter(),
    };
    const totals: Totals = { rows: 0, valid: 0, rejected: 0, suppressed: 0, accepted: 0 };
    const rejections: Rejection[] = [];
    let checker: RowChecker | undefined;
    const ids = new MessageIdGenerator();
    const newBatch = () => new Batch(campaignId, ids);
    let batch = newBatch();
    /** Batches filled while reading the last piece of the file, waiting to be stored. */
    const full: Batch[] = [];
    const count = (b: Batch) => {
      if (b.rows >= batchRows || b.chars >= BATCH_CHARS) {
        full.push(b);
        batch = newBatch();
      }
    };
    let lastRejectedLine = 0;
    const reject = (line: number, reason: string, raw: string) => {
      totals.rows++;
      totals.rejected++;
      // Lines only increase; should one ever repeat, its row is counted but stored once.
      if (line > lastRejectedLine) batch.reject(line, reason, raw);
      lastRejectedLine = Math.max(line, lastRejectedLine);
      if (rejections.length < REPORTED_REJECTIONS) rejections.push({ line, reason });
      count(batch);
    };
    const handlers: CsvHandlers = {
      record(fields, line, raw) {
        if (!checker) {
          checker = new RowChecker(findColumns(fields, options.phoneColumn, needed), rules);
          return;
        }
        const reason = checker.check(fields, batch);
        if (reason) return reject(line, reason, raw);
        totals.rows++;
        totals.valid++;
        count(batch);
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
      store.importId ||= await createImport(client, campaignId, checker.columns);
      storing = storeBatch(store, rows, totals);
      storing.catch(() => {}); // surfaces at the next await of `storing`
    };

    // Any failure (size limit, not UTF-8, the upload breaking off) ends the loop below with it.
    const guarded = pipeline(input, new UploadGuard(context.config.maxUploadBytes), () => {});
    const reader = new CsvRecordReader();
    const decoder = new TextDecoder();
    for await (const chunk of guarded as AsyncIterable<Buffer>) {
      // Read in small pieces, letting the event loop run between them: the batch being stored
      // needs it (its COPY data is written, and Postgres's answers read, only when it runs), and
      // a 64 KiB piece kept it away ~10 ms. Postgres idled ~0.7 s less per 1,000,000 rows.
      const text = decoder.decode(chunk, { stream: true });
      for (let at = 0; at < text.length; at += READ_PIECE_CHARS) {
        reader.push(text.slice(at, at + READ_PIECE_CHARS), handlers);
        while (full.length > 0) await handOver(full.shift()!);
        await new Promise(setImmediate);
      }
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
    const importId = (store.importId ||= await createImport(client, campaignId, checker.columns));

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

/** The import's state that each batch's storing needs. */
interface Store {
  client: pg.PoolClient;
  campaignId: string;
  importId: string;
  /** The campaign had recipients before this import: look every number up. */
  checkEveryNumber: boolean;
  /** Numbers this import has seen in its batches so far. */
  seen: NumberFilter;
}

/** A good row, checked. */
interface GoodRow {
  phone: string;
  /** JSON, escaped for COPY. */
  fields: string;
  dueAt: Date | undefined;
  timezone: string;
  segments: number;
}

/**
 * One batch of checked rows: the first good row per number as COPY text for `message` (tab-
 * separated, \N for null, backslash escapes), the bad rows, and counts.
 */
class Batch {
  rows = 0;
  /** Characters held, roughly. */
  chars = 0;
  /** Each number's first row in the batch, by its index (the order of the COPY text). */
  readonly firstRows = new Map<string, number>();
  /** Good rows in the batch with the number of each first row (it and its repeats). */
  readonly rowsPerNumber: number[] = [];
  readonly rejections: Array<{ line: number; reason: string; raw: string }> = [];
  /** Where each first row's COPY text ends, in characters. */
  private readonly ends: number[] = [];
  private copyChars = 0;
  /** COPY text already encoded: off the JavaScript heap, so memory and garbage collection stay
   * small (the same rows kept as strings until stored took 340 MB and 6 s of collection). */
  private readonly chunks: Buffer[] = [];
  private text = '';

  constructor(
    private readonly campaignId: string,
    private readonly ids: MessageIdGenerator,
  ) {}

  add(row: GoodRow): void {
    this.rows++;
    const first = this.firstRows.get(row.phone);
    if (first !== undefined) {
      this.rowsPerNumber[first]!++;
      return;
    }
    this.firstRows.set(row.phone, this.ends.length);
    this.rowsPerNumber.push(1);
    const line = `${this.ids.next()}\t${this.campaignId}\t${row.phone}\t${row.fields}\t${row.dueAt ? row.dueAt.toISOString() : '\\N'}\t${row.timezone || '\\N'}\t${row.segments}\n`;
    this.chars += line.length;
    this.copyChars += line.length;
    this.ends.push(this.copyChars);
    this.text += line;
    if (this.text.length >= COPY_CHUNK_CHARS) this.encode();
  }

  reject(line: number, reason: string, raw: string): void {
    this.rows++;
    this.chars += raw.length + reason.length;
    this.rejections.push({ line, reason, raw });
  }

  /** The COPY text for `message`, leaving out the first rows at `skip` (their indexes). */
  copyText(skip: number[]): Buffer[] {
    this.encode();
    if (skip.length === 0) return this.chunks;
    // Rare enough (suppressed numbers, repeats of earlier rows) to cut the text as characters.
    const all = Buffer.concat(this.chunks).toString();
    const pieces: Buffer[] = [];
    let from = 0;
    for (const i of skip.sort((a, b) => a - b)) {
      const start = i === 0 ? 0 : this.ends[i - 1]!;
      if (start > from) pieces.push(Buffer.from(all.slice(from, start)));
      from = this.ends[i]!;
    }
    if (from < all.length) pieces.push(Buffer.from(all.slice(from)));
    return pieces;
  }

  private encode(): void {
    if (this.text) this.chunks.push(Buffer.from(this.text));
    this.text = '';
  }
}

/**
 * Stores one batch: its numbers that are suppressed, or may repeat one already in the campaign,
 * are looked up; the other first rows go into `message` by COPY, and the bad rows into
 * `import_rejection`.
 */
async function storeBatch(store: Store, batch: Batch, totals: Totals): Promise<void> {
  const { client, campaignId } = store;
  const numbers = [...batch.firstRows.keys()];
  const skip: number[] = [];
  if (numbers.length > 0) {
    const suppressed = await client.query<{ phone: string }>(
      // E.164 numbers hold no commas: a list is cheaper to send and read than an array literal.
      `SELECT phone FROM suppression WHERE phone = ANY(string_to_array($1, ','))`,
      [numbers.join(',')],
    );
    const isSuppressed = new Set<string>();
    for (const { phone } of suppressed.rows) {
      const first = batch.firstRows.get(phone)!;
      isSuppressed.add(phone);
      skip.push(first);
      totals.suppressed += batch.rowsPerNumber[first]!;
    }
    // Every number goes into the filter (one seen but not stored only costs a lookup later).
    const candidates = numbers.filter(
      (phone) => (store.seen.add(phone) || store.checkEveryNumber) && !isSuppressed.has(phone),
    );
    if (candidates.length > 0) {
      // One index lookup per number (OFFSET 0 keeps the planner from joining instead: its
      // statistics cannot know about the rows this transaction has added).
      const present = await client.query<{ phone: string }>(
        `SELECT phone FROM unnest(string_to_array($2, ',')) AS candidate (phone)
         WHERE EXISTS (SELECT 1 FROM message m WHERE m.campaign_id = $1 AND m.phone = candidate.phone OFFSET 0)`,
        [campaignId, candidates.join(',')],
      );
      for (const { phone } of present.rows) skip.push(batch.firstRows.get(phone)!);
    }
  }
  if (skip.length < numbers.length) {
    totals.accepted += await copyIn(
      client,
      'COPY message (id, campaign_id, phone, fields, due_at, timezone, segments) FROM STDIN',
      batch.copyText(skip),
    );
  }
  if (batch.rejections.length > 0) {
    const prefix = `${store.importId}\t`;
    const text = batch.rejections.map(
      (r) => `${prefix}${r.line}\t${copyText(r.reason)}\t${copyText(r.raw)}\n`,
    );
    await copyIn(
      client,
      'COPY import_rejection (import_id, line, reason, raw) FROM STDIN',
      (function* () {
        for (let i = 0; i < text.length; i += 1000) yield text.slice(i, i + 1000).join('');
      })(),
    );
  }
}

/** Runs a COPY … FROM STDIN with the given text; returns the rows copied. */
async function copyIn(
  client: pg.PoolClient,
  sql: string,
  pieces: Iterable<Buffer | string>,
): Promise<number> {
  const copy = client.query(copyFrom(sql));
  // Errors surface through once(); on the abort path nobody is left to tell.
  copy.on('error', () => {});
  for (const piece of pieces) {
    if (!copy.write(piece)) await once(copy, 'drain');
  }
  copy.end();
  await once(copy, 'finish');
  return copy.rowCount;
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
  /** The template's own text: UTF-16 units, and GSM-7 septets (-1: not GSM-7). */
  private readonly literalUnits: number;
  private readonly literalSeptets: number;
  /** The values filling the placeholders of the row being checked. */
  private readonly values: string[];

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
    const literals = this.literals.join('');
    this.literalUnits = literals.length;
    this.literalSeptets = gsmSeptets(literals);
    this.values = template.fields.map(() => '');
  }

  /** Adds the row to the batch if it is good; else returns why not. */
  check(record: string[], batch: Batch): string | undefined {
    const { columns, rules } = this;
    if (record.length !== columns.names.length) {
      return `expected ${columns.names.length} columns, found ${record.length}`;
    }
    const phone = normalisePhone(record[columns.phone]!, rules.region);
    if (!phone.ok) return phone.reason;

    // The message's length and segments come from the template's own text, counted once, and
    // the values; the message itself is put together only when it may be too long.
    let units = this.literalUnits;
    let septets = this.literalSeptets;
    for (let k = 0; k < this.placeholderColumns.length; k++) {
      const column = this.placeholderColumns[k]!;
      const value = column < 0 ? '' : record[column]!.trim();
      if (value === '') {
        return `empty value for {{${this.placeholders[k]}}}, which the template uses`;
      }
      this.values[k] = value;
      units += value.length;
      if (septets >= 0) {
        const more = gsmSeptets(value);
        septets = more < 0 ? -1 : septets + more;
      }
    }
    if (rules.maxBody !== undefined && units > rules.maxBody) {
      const length = textLength(this.render());
      if (length > rules.maxBody) {
        return `the message would be ${length} characters; the account's provider accepts at most ${rules.maxBody}`;
      }
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
    const segments = septets >= 0 ? gsmSegments(septets) : ucs2Segments(units);
    batch.add({ phone: phone.e164, fields, dueAt, timezone, segments });
    return undefined;
  }

  /** The message for the values of the row being checked. */
  private render(): string {
    let body = this.literals[0]!;
    for (let k = 0; k < this.values.length; k++) body += this.values[k]! + this.literals[k + 1]!;
    return body;
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
