import type { AppContext } from '../runtime/context.js';
import { getCampaign } from './campaign-service.js';

/** Columns of the per-recipient export, in order. */
export const RECIPIENT_CSV_COLUMNS = [
  'message_id',
  'phone',
  'status',
  'error_code',
  'error_message',
  'provider_message_id',
  'segments',
  'attempts',
  'queued_at',
  'sent_at',
  'final_at',
  'fields',
] as const;

interface RecipientRow {
  id: string;
  phone: string;
  status: string;
  error_code: string | null;
  error_message: string | null;
  provider_message_id: string | null;
  segments: number | null;
  attempts: number;
  queued_at: Date | null;
  sent_at: Date | null;
  final_at: Date | null;
  fields: unknown;
}

/**
 * The campaign's recipients as CSV, one row per message in phone order, yielded a page at a time.
 * Pages are read by keyset on the (campaign_id, phone) unique index, each its own short query:
 * a 1,000,000-recipient campaign streams in constant memory, holds no connection or snapshot
 * between pages (a slow client cannot pin a transaction), and a page costs the same at the end as
 * at the start (no OFFSET). Rows change while the export runs, so it is a live view, not a
 * snapshot; each message appears exactly once because phone is unique per campaign.
 *
 * The campaign is checked before the first chunk, so a wrong id fails before any output.
 */
export async function recipientsCsv(
  context: AppContext,
  campaignId: string,
  pageSize = 5000,
): Promise<AsyncGenerator<string>> {
  await getCampaign(context, campaignId);
  return pages(context, campaignId, pageSize);
}

async function* pages(
  context: AppContext,
  campaignId: string,
  pageSize: number,
): AsyncGenerator<string> {
  yield `${RECIPIENT_CSV_COLUMNS.join(',')}\n`;
  let after = '';
  for (;;) {
    const { rows } = await context.db.pool.query<RecipientRow>(
      `SELECT id, phone, status, error_code, error_message, provider_message_id, segments,
              attempts, queued_at, sent_at, final_at, fields
       FROM message WHERE campaign_id = $1 AND phone > $2
       ORDER BY phone LIMIT $3`,
      [campaignId, after, pageSize],
    );
    if (rows.length === 0) return;
    yield rows.map(toLine).join('');
    if (rows.length < pageSize) return;
    after = rows.at(-1)!.phone;
  }
}

function toLine(row: RecipientRow): string {
  return `${[
    row.id,
    row.phone,
    row.status,
    row.error_code,
    row.error_message,
    row.provider_message_id,
    row.segments,
    row.attempts,
    row.queued_at?.toISOString(),
    row.sent_at?.toISOString(),
    row.final_at?.toISOString(),
    row.fields && Object.keys(row.fields).length > 0 ? JSON.stringify(row.fields) : '',
  ]
    .map(csvField)
    .join(',')}\n`;
}

/**
 * RFC 4180 quoting, plus a leading apostrophe for text a spreadsheet would run as a formula
 * (=, +, -, @ first): recipients' fields and providers' error texts come from outside. Phone
 * numbers start with + but are written as digits only after it, so they are left alone.
 */
export function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  let text = String(value);
  if (/^[=+\-@\t\r]/.test(text) && !/^\+\d+$/.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
