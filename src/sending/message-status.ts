import type pg from 'pg';
import type { MessageStatus } from '../generated/prisma/enums.js';
import type { CampaignTiming, MessageTiming } from '../scheduling/send-time.js';

/**
 * The send path's status writes. Each is one statement that checks the current status in its
 * WHERE clause, so two writers racing (a worker and a delivery report, or a re-run job) cannot
 * move a message backwards: see message_status_rank() in the migrations.
 */

export interface ClaimedMessage {
  phone: string;
  fields: Record<string, unknown>;
  template: string;
  status: 'SENDING' | 'SUPPRESSED';
  /** SMS segments of the rendered message, counted at import: what a segment rate gate charges. */
  segments: number;
  /** The message's timing and its campaign's rules, checked once more before sending. */
  timing: MessageTiming;
  campaign: CampaignTiming;
}

interface ClaimRow {
  id: string;
  phone: string;
  fields: Record<string, unknown>;
  template: string;
  status: 'SENDING' | 'SUPPRESSED';
  segments: number | null;
  due_at: Date | null;
  timezone: string | null;
  campaign_timezone: string;
  send_window: unknown;
  max_lateness_ms: number | null;
}

/**
 * PENDING/QUEUED → SENDING for messages of a RUNNING campaign (or → SUPPRESSED when the number is
 * on the suppression list: opt-outs are checked again at send time). SENDING is committed before
 * the provider is called: a worker that dies after this point leaves evidence that the message may
 * have gone, and a re-run will not send it blindly. One statement for many messages (the worker's
 * StatusWriter coalesces the claims of its concurrent jobs); rows are locked in id order, so two
 * statements that share a message (a duplicate job) wait for each other instead of deadlocking.
 *
 * `account` is the claiming worker's account: only messages routed to it are claimed (the
 * campaign's account, or its fallback once the message was moved there: see
 * src/campaigns/fallback-route.ts), and it is recorded as the account the message was handed to.
 * The route is checked on the locked row, so a reroute and a claim of one message never both win.
 * Without `account` (tests, tools) a message is claimed for whatever account it is routed to.
 * Returns one entry per id, in order; undefined where the message was not claimable, and for the
 * second of two equal ids (only one may send).
 */
export async function claimMessages(
  pool: pg.Pool,
  ids: string[],
  now: Date,
  account?: string,
): Promise<Array<ClaimedMessage | undefined>> {
  const result = await pool.query<ClaimRow>(
    `UPDATE message m SET
       status = CASE WHEN t.suppressed THEN 'SUPPRESSED' ELSE 'SENDING' END::message_status,
       attempts = m.attempts + CASE WHEN t.suppressed THEN 0 ELSE 1 END,
       account_name = t.route,
       error_code = CASE WHEN t.suppressed THEN 'SUPPRESSED' ELSE m.error_code END,
       error_message = CASE WHEN t.suppressed THEN 'number is on the suppression list' ELSE m.error_message END,
       updated_at = $2
     FROM (
       SELECT m2.id, COALESCE(m2.route_account, c.account_name) AS route, c.template,
              c.timezone AS campaign_timezone, c.send_window, c.max_lateness_ms,
              EXISTS (SELECT 1 FROM suppression s WHERE s.phone = m2.phone) AS suppressed
       FROM message m2 JOIN campaign c ON c.id = m2.campaign_id
       WHERE m2.id = ANY($1::uuid[]) AND c.status = 'RUNNING'
         AND m2.status IN ('PENDING', 'QUEUED')
         AND ($3::text IS NULL OR COALESCE(m2.route_account, c.account_name) = $3::text)
       ORDER BY m2.id
       FOR UPDATE OF m2
     ) t
     WHERE m.id = t.id AND m.status IN ('PENDING', 'QUEUED')
     RETURNING m.id, m.phone, m.fields, t.template, m.status, m.segments, m.due_at, m.timezone,
               t.campaign_timezone, t.send_window, t.max_lateness_ms`,
    [ids, now, account ?? null],
  );
  const byId = new Map(result.rows.map((row) => [row.id, row]));
  return ids.map((id) => {
    const row = byId.get(id);
    byId.delete(id);
    return row && toClaimed(row);
  });
}

function toClaimed(row: ClaimRow): ClaimedMessage {
  return {
    phone: row.phone,
    fields: row.fields,
    template: row.template,
    status: row.status,
    // Rows imported before segments were counted have none: one is the least a message costs.
    segments: row.segments ?? 1,
    timing: { dueAt: row.due_at, timezone: row.timezone },
    campaign: {
      timezone: row.campaign_timezone,
      sendWindow: row.send_window,
      maxLatenessMs: row.max_lateness_ms,
    },
  };
}

/** claimMessages() for one message. */
export async function claimMessage(
  pool: pg.Pool,
  messageId: string,
  now: Date,
  account?: string,
): Promise<ClaimedMessage | undefined> {
  return (await claimMessages(pool, [messageId], now, account))[0];
}

/**
 * Why a claim found nothing to do: the message's status, its campaign's, and the account it is
 * routed to (a job in another account's queue, left behind by a reroute, has nothing to do).
 */
export async function explainUnclaimed(
  pool: pg.Pool,
  messageId: string,
): Promise<{ status: MessageStatus; campaignStatus: string; route: string } | undefined> {
  const result = await pool.query<{ status: MessageStatus; campaignStatus: string; route: string }>(
    `SELECT m.status, c.status AS "campaignStatus",
            COALESCE(m.route_account, c.account_name) AS route
     FROM message m JOIN campaign c ON c.id = m.campaign_id WHERE m.id = $1`,
    [messageId],
  );
  return result.rows[0];
}

/**
 * Re-claims a message whose earlier attempt was interrupted, for at-least-once accounts: only by
 * the account it is routed to, which is the one that was sending it (a message being sent is
 * never rerouted).
 */
export async function reclaimInterrupted(
  pool: pg.Pool,
  messageId: string,
  now: Date,
  account: string,
): Promise<ClaimedMessage | undefined> {
  const result = await pool.query<ClaimRow>(
    `UPDATE message m SET status = 'SENDING', attempts = m.attempts + 1, updated_at = $2
     FROM campaign c
     WHERE m.id = $1 AND c.id = m.campaign_id AND c.status = 'RUNNING' AND m.status IN ('SENDING', 'UNKNOWN')
       AND COALESCE(m.route_account, c.account_name) = $3
     RETURNING m.id, m.phone, m.fields, c.template, m.status, m.segments, m.due_at, m.timezone,
               c.timezone AS campaign_timezone, c.send_window, c.max_lateness_ms`,
    [messageId, now, account],
  );
  const row = result.rows[0];
  return row && toClaimed(row);
}

/**
 * SENDING → QUEUED by the worker holding the send, without calling the provider again now: the
 * provider definitely did not take it (it will be retried), or it is a little early (its job waits
 * for its time). `notAttempted` takes back the attempt the claim counted: the provider was not called.
 */
export async function releaseMessage(
  pool: pg.Pool,
  messageId: string,
  now: Date,
  options: { notAttempted?: boolean } = {},
): Promise<void> {
  await pool.query(
    `UPDATE message SET status = 'QUEUED', updated_at = $2,
       attempts = attempts - CASE WHEN $3 THEN 1 ELSE 0 END
     WHERE id = $1 AND status = 'SENDING'`,
    [messageId, now, options.notAttempted ?? false],
  );
}

/**
 * SENDING → PENDING until `until`, by the worker holding the send, before the provider was called:
 * its send window closed while it waited, or its time is further off than the planning horizon.
 * The planner enqueues it again when it is due; `due_at` becomes the time it may go.
 */
export async function deferMessage(
  pool: pg.Pool,
  messageId: string,
  until: Date,
  now: Date,
): Promise<void> {
  await pool.query(
    `UPDATE message SET status = 'PENDING', due_at = $2, attempts = attempts - 1, updated_at = $3
     WHERE id = $1 AND status = 'SENDING'`,
    [messageId, until, now],
  );
}

/** What the provider answered for a message it accepted. */
export interface Accepted {
  providerMessageId: string;
  segments?: number;
  /** The provider holds it until this time (native scheduling): SCHEDULED, not yet SENT. */
  scheduledFor?: Date;
}

/**
 * The provider accepted these messages: SENT, or SCHEDULED for those it holds until their time. A
 * delivery report may already have moved one further: keep that. The provider's own segment count
 * replaces the one counted at import where it gives one (not every provider does). One statement for many (the
 * worker's StatusWriter coalesces its concurrent jobs' results).
 */
export async function markAccepted(
  pool: pg.Pool,
  accepted: Array<Accepted & { messageId: string }>,
  now: Date,
): Promise<void> {
  await pool.query(
    `UPDATE message m SET
       provider_message_id = u.provider_message_id, segments = COALESCE(u.segments, m.segments),
       sent_at = $5, updated_at = $5,
       status = CASE
         WHEN message_status_rank(m.status) >= message_status_rank(u.status) THEN m.status
         ELSE u.status END
     FROM unnest($1::uuid[], $2::text[], $3::int[], $4::message_status[])
       AS u(id, provider_message_id, segments, status)
     WHERE m.id = u.id`,
    [
      accepted.map((a) => a.messageId),
      accepted.map((a) => a.providerMessageId),
      accepted.map((a) => a.segments ?? null),
      accepted.map((a) => (a.scheduledFor ? 'SCHEDULED' : 'SENT')),
      now,
    ],
  );
}

/** markAccepted() for one message. */
export async function markSent(
  pool: pg.Pool,
  messageId: string,
  result: Accepted,
  now: Date,
): Promise<void> {
  await markAccepted(pool, [{ messageId, ...result }], now);
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
