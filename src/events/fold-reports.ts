import type { MessageStatus } from '../generated/prisma/enums.js';
import { statusRank } from '../messages/status.js';
import type { AppContext } from '../runtime/context.js';

export interface FoldResult {
  /** Reports read in this pass. */
  read: number;
  /** Reports that moved their message forward. */
  applied: number;
  /** Reports that matched but said nothing new (duplicate, out of order, superseded). */
  stale: number;
  /** Reports with no message yet: kept and looked at again later. */
  waiting: number;
  /** Reports that matched nothing within the configured time: given up on and counted. */
  expired: number;
}

interface EventRow {
  id: string;
  message_id: string | null;
  message_rank: number | null;
  status: MessageStatus;
  error_code: string | null;
  description: string | null;
  occurred_at: Date;
  received_at: Date;
  provider_message_id: string | null;
  match_attempts: number;
}

/**
 * Folds stored delivery reports into their messages, a batch per transaction, with SKIP LOCKED so
 * any number of event workers share the work. Per message the report with the highest status
 * rank wins, and it is applied only if it moves the message forward (DESIGN invariant 1), so
 * duplicates and out-of-order reports change nothing. Counters follow through the triggers.
 *
 * A report is matched by our message id where the provider carried it, else by the provider's id.
 * It is applied only to a message Herald has handed over (SENDING or later); one that matches
 * nothing yet (its send result is not stored) waits and is retried with backoff until it
 * matches or expires after HERALD_UNMATCHED_REPORT_TTL_MS.
 */
export async function foldReports(
  context: AppContext,
  limit = context.config.eventsBatchSize,
): Promise<FoldResult> {
  const now = context.clock.now();
  const client = await context.db.pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<EventRow>(
      `SELECT e.id, COALESCE(m1.id, m2.id) AS message_id,
              message_status_rank(COALESCE(m1.status, m2.status)) AS message_rank,
              e.status, e.error_code, e.description, e.occurred_at, e.received_at,
              e.provider_message_id, e.match_attempts
       FROM delivery_event e
       LEFT JOIN message m1 ON m1.id = e.message_id
       LEFT JOIN LATERAL (
         SELECT id, status FROM message m
         WHERE e.message_id IS NULL AND m.provider_message_id = e.provider_message_id
           AND m.account_name = e.account_name
         LIMIT 1
       ) m2 ON true
       WHERE e.processed_at IS NULL AND e.retry_at <= $1
       ORDER BY e.id
       LIMIT $2
       FOR UPDATE OF e SKIP LOCKED`,
      [now, limit],
    );
    const result: FoldResult = { read: rows.length, applied: 0, stale: 0, waiting: 0, expired: 0 };
    if (rows.length === 0) {
      await client.query('COMMIT');
      return result;
    }

    // The winning report per message: highest rank, then latest.
    const best = new Map<string, EventRow>();
    const unmatched: EventRow[] = [];
    for (const row of rows) {
      if (!row.message_id || (row.message_rank ?? 0) < statusRank('SENDING')) {
        unmatched.push(row);
        continue;
      }
      const current = best.get(row.message_id);
      if (
        !current ||
        statusRank(row.status) > statusRank(current.status) ||
        (statusRank(row.status) === statusRank(current.status) &&
          row.occurred_at > current.occurred_at)
      ) {
        best.set(row.message_id, row);
      }
    }
    const winners = [...best.values()];
    const applied = await client.query<{ id: string }>(
      `UPDATE message m SET
         status = u.status,
         error_code = COALESCE(u.error_code, m.error_code),
         error_message = COALESCE(u.description, m.error_message),
         final_at = CASE WHEN message_status_rank(u.status) = 5 THEN u.occurred_at ELSE m.final_at END,
         provider_message_id = COALESCE(m.provider_message_id, u.provider_message_id),
         updated_at = $7
       FROM unnest($1::uuid[], $2::message_status[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
         AS u(id, status, error_code, description, occurred_at, provider_message_id)
       WHERE m.id = u.id AND message_status_rank(u.status) > message_status_rank(m.status)
       RETURNING m.id`,
      [
        winners.map((w) => w.message_id),
        winners.map((w) => w.status),
        winners.map((w) => w.error_code),
        winners.map((w) => w.description),
        winners.map((w) => w.occurred_at),
        winners.map((w) => w.provider_message_id),
        now,
      ],
    );
    const appliedMessages = new Set(applied.rows.map((r) => r.id));
    const appliedEvents = new Set(
      winners.filter((w) => appliedMessages.has(w.message_id!)).map((w) => w.id),
    );

    const waitingRows = new Set(unmatched);
    const doneIds: string[] = [];
    const doneOutcomes: string[] = [];
    for (const row of rows) {
      if (appliedEvents.has(row.id)) {
        doneIds.push(row.id);
        doneOutcomes.push('APPLIED');
        result.applied += 1;
      } else if (!waitingRows.has(row)) {
        doneIds.push(row.id);
        doneOutcomes.push('STALE');
        result.stale += 1;
      }
    }
    const ttlCutoff = now.getTime() - context.config.unmatchedReportTtlMs;
    const retryIds: string[] = [];
    const retryAt: Date[] = [];
    for (const row of unmatched) {
      if (row.received_at.getTime() < ttlCutoff) {
        doneIds.push(row.id);
        doneOutcomes.push('EXPIRED_UNMATCHED');
        result.expired += 1;
      } else {
        retryIds.push(row.id);
        // 1 s, 2 s, 4 s … capped at a minute.
        retryAt.push(new Date(now.getTime() + Math.min(60_000, 1000 * 2 ** row.match_attempts)));
        result.waiting += 1;
      }
    }
    await client.query(
      `UPDATE delivery_event e SET processed_at = $3, outcome = u.outcome, match_attempts = e.match_attempts + 1
       FROM unnest($1::bigint[], $2::text[]) AS u(id, outcome) WHERE e.id = u.id`,
      [doneIds, doneOutcomes, now],
    );
    if (retryIds.length > 0) {
      await client.query(
        `UPDATE delivery_event e SET retry_at = u.retry_at, match_attempts = e.match_attempts + 1
         FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, retry_at) WHERE e.id = u.id`,
        [retryIds, retryAt],
      );
    }
    await client.query('COMMIT');
    if (result.expired > 0)
      context.logger.warn(
        { count: result.expired },
        'expired delivery reports that matched no message',
      );
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
