import type pg from 'pg';
import type { MessageStatus } from '../generated/prisma/enums.js';

/**
 * The send path's status writes. Each is one statement that checks the current status in its
 * WHERE clause, so two writers racing (a worker and a delivery report, or a re-run job) cannot
 * move a message backwards: see message_status_rank() in the first migration.
 */

export interface ClaimedMessage {
  phone: string;
  fields: Record<string, unknown>;
  template: string;
  status: 'SENDING' | 'SUPPRESSED';
}

/**
 * PENDING/QUEUED → SENDING for a message of a RUNNING campaign (or → SUPPRESSED when its number
 * is on the suppression list: opt-outs are checked again at send time). SENDING is committed
 * before the provider is called: a worker that dies after this point leaves evidence that the
 * message may have gone, and a re-run will not send it blindly.
 */
export async function claimMessage(
  pool: pg.Pool,
  messageId: string,
  now: Date,
): Promise<ClaimedMessage | undefined> {
  const result = await pool.query<ClaimedMessage>(
    `UPDATE message m SET
       status = CASE WHEN t.suppressed THEN 'SUPPRESSED' ELSE 'SENDING' END::message_status,
       attempts = m.attempts + CASE WHEN t.suppressed THEN 0 ELSE 1 END,
       account_name = t.account_name,
       error_code = CASE WHEN t.suppressed THEN 'SUPPRESSED' ELSE m.error_code END,
       error_message = CASE WHEN t.suppressed THEN 'number is on the suppression list' ELSE m.error_message END,
       updated_at = $2
     FROM (
       SELECT m2.id, c.account_name, c.template,
              EXISTS (SELECT 1 FROM suppression s WHERE s.phone = m2.phone) AS suppressed
       FROM message m2 JOIN campaign c ON c.id = m2.campaign_id
       WHERE m2.id = $1 AND c.status = 'RUNNING'
     ) t
     WHERE m.id = t.id AND m.status IN ('PENDING', 'QUEUED')
     RETURNING m.phone, m.fields, t.template, m.status`,
    [messageId, now],
  );
  return result.rows[0];
}

/** Why a claim found nothing to do. */
export async function explainUnclaimed(
  pool: pg.Pool,
  messageId: string,
): Promise<{ status: MessageStatus; campaignStatus: string } | undefined> {
  const result = await pool.query<{ status: MessageStatus; campaignStatus: string }>(
    `SELECT m.status, c.status AS "campaignStatus"
     FROM message m JOIN campaign c ON c.id = m.campaign_id WHERE m.id = $1`,
    [messageId],
  );
  return result.rows[0];
}

/** Re-claims a message whose earlier attempt was interrupted, for at-least-once accounts. */
export async function reclaimInterrupted(
  pool: pg.Pool,
  messageId: string,
  now: Date,
): Promise<ClaimedMessage | undefined> {
  const result = await pool.query<ClaimedMessage>(
    `UPDATE message m SET status = 'SENDING', attempts = m.attempts + 1, updated_at = $2
     FROM campaign c
     WHERE m.id = $1 AND c.id = m.campaign_id AND c.status = 'RUNNING' AND m.status IN ('SENDING', 'UNKNOWN')
     RETURNING m.phone, m.fields, c.template, m.status`,
    [messageId, now],
  );
  return result.rows[0];
}

/** SENDING → QUEUED: the provider definitely did not take it, so it may be tried again. */
export async function releaseMessage(pool: pg.Pool, messageId: string, now: Date): Promise<void> {
  await pool.query(
    `UPDATE message SET status = 'QUEUED', updated_at = $2 WHERE id = $1 AND status = 'SENDING'`,
    [messageId, now],
  );
}

/** The provider accepted it. A delivery report may already have moved it further: keep that. */
export async function markSent(
  pool: pg.Pool,
  messageId: string,
  result: { providerMessageId: string; segments?: number },
  now: Date,
): Promise<void> {
  await pool.query(
    `UPDATE message SET
       provider_message_id = $2, segments = $3, sent_at = $4, updated_at = $4,
       status = CASE WHEN message_status_rank(status) < message_status_rank('SENT') THEN 'SENT' ELSE status END
     WHERE id = $1`,
    [messageId, result.providerMessageId, result.segments ?? null, now],
  );
}

/** Moves the message to `status` (a final failure or UNKNOWN) if that is forward, with the reason. */
export async function markOutcome(
  pool: pg.Pool,
  messageId: string,
  status: MessageStatus,
  reason: { code: string; message: string },
  now: Date,
): Promise<void> {
  await pool.query(
    `UPDATE message SET status = $2::message_status, error_code = $3, error_message = $4, updated_at = $5
     WHERE id = $1 AND message_status_rank(status) < message_status_rank($2::message_status)`,
    [messageId, status, reason.code, reason.message.slice(0, 500), now],
  );
}
