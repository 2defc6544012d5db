import type { StatusReport } from '../providers/types.js';
import type { AppContext } from '../runtime/context.js';

/**
 * Stores delivery reports durably in Postgres; a webhook is acknowledged only after this returns.
 * Providers deliver at least once, so a report already stored (same account and dedupe key) is
 * ignored. Folding into messages happens later, in batches (fold-reports.ts).
 *
 * Why Postgres and not a Redis events queue: the report has to be kept anyway (a report may
 * arrive before the send result that lets us match it, and must wait), Postgres is where every
 * other truth lives, and the folder then reads a thousand reports per round trip with SKIP LOCKED
 * instead of one job per report.
 */
export async function recordReports(
  context: AppContext,
  accountName: string,
  reports: StatusReport[],
): Promise<number> {
  if (reports.length === 0) return 0;
  const result = await context.db.pool.query(
    `INSERT INTO delivery_event
       (account_name, message_id, provider_message_id, provider_status, status, error_code, description,
        occurred_at, dedupe_key, received_at, retry_at)
     SELECT $1, *, $10, $10 FROM unnest($2::uuid[], $3::text[], $4::text[], $5::message_status[], $6::text[],
       $7::text[], $8::timestamptz[], $9::text[])
     ON CONFLICT (account_name, dedupe_key) DO NOTHING`,
    [
      accountName,
      reports.map((r) => r.messageId ?? null),
      reports.map((r) => r.providerMessageId ?? null),
      reports.map((r) => r.providerStatus),
      reports.map((r) => r.status),
      reports.map((r) => r.errorCode ?? null),
      reports.map((r) => r.description?.slice(0, 500) ?? null),
      reports.map((r) => r.occurredAt),
      reports.map((r) =>
        [r.messageId ?? '', r.providerMessageId ?? '', r.providerStatus, r.errorCode ?? ''].join(
          '|',
        ),
      ),
      context.clock.now(),
    ],
  );
  return result.rowCount ?? 0;
}
