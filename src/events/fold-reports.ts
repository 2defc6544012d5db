import type { MessageStatus } from '../generated/prisma/enums.js';
import { statusRank } from '../messages/status.js';
import type { AppContext } from '../runtime/context.js';
import { addSuppressions } from '../suppressions/suppressions.js';
import { isProviderOptOut } from './opt-outs.js';
import { withTransaction } from '../db/database.js';

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
  /** Numbers newly put on the suppression list because a report said the recipient opted out. */
  optedOut: number;
  /** The highest report id read, for the next pass's `afterId` (see ReportFolder). */
  lastId: string | null;
}

interface EventRow {
  id: string;
  account_name: string;
  message_id: string | null;
  phone: string | null;
  message_rank: number | null;
  status: MessageStatus;
  error_code: string | null;
  provider_status: string;
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
  afterId = '0',
): Promise<FoldResult> {
  const now = context.clock.now();
  const folded = await withTransaction(context.db.pool, async (client) => {
    // Every statement here reaches rows by primary key or the unprocessed-report index. Right
    // after a burst of reports the table's statistics are stale (autovacuum has not analysed it
    // yet) and Postgres then prefers a bitmap scan of every unprocessed report plus a sort per
    // pass, so each pass slowed as the backlog grew (measured: 4x slower at 60,000 queued). These
    // settings last only until COMMIT.
    await client.query('SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off');
    const { rows } = await client.query<EventRow>(
      // The batch is picked first (LIMIT inside the CTE) and only then joined to messages, so a
      // pass joins one batch however long the backlog; with the LIMIT outside, stale statistics
      // made Postgres join every unprocessed report before cutting.
      `WITH e AS MATERIALIZED (
         SELECT * FROM delivery_event
         WHERE processed_at IS NULL AND retry_at <= $1 AND id > $3
         ORDER BY id
         LIMIT $2
         FOR UPDATE SKIP LOCKED
       )
       SELECT e.id, e.account_name, COALESCE(m1.id, m2.id) AS message_id,
              COALESCE(m1.phone, m2.phone) AS phone,
              message_status_rank(COALESCE(m1.status, m2.status)) AS message_rank,
              e.status, e.error_code, e.provider_status, e.description, e.occurred_at, e.received_at,
              e.provider_message_id, e.match_attempts
       FROM e
       LEFT JOIN message m1 ON m1.id = e.message_id
       LEFT JOIN LATERAL (
         SELECT id, status, phone FROM message m
         WHERE e.message_id IS NULL AND m.provider_message_id = e.provider_message_id
           AND m.account_name = e.account_name
         LIMIT 1
       ) m2 ON true
       ORDER BY e.id`,
      [now, limit, afterId],
    );
    const result: FoldResult = {
      read: rows.length,
      applied: 0,
      stale: 0,
      waiting: 0,
      expired: 0,
      optedOut: 0,
      lastId: rows.at(-1)?.id ?? null,
    };
    if (rows.length === 0) return result;

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

    // A report saying the recipient opted out (Bandwidth 4775, Catapult 775, MessageMedia OPT_OUT)
    // suppresses the number like a STOP reply. This runs on the pool, before this transaction
    // commits: should the fold roll back, the reports are folded again and adding the numbers a
    // second time is a no-op, whereas suppressing after the commit could lose an opt-out.
    const optOuts = new Map<string, string>();
    for (const row of rows) {
      if (!row.message_id || !row.phone || (row.message_rank ?? 0) < statusRank('SENDING'))
        continue;
      const providerType = providerTypeOf(context, row.account_name);
      if (providerType && isProviderOptOut(providerType, row.error_code, row.provider_status)) {
        optOuts.set(row.phone, `provider opt-out (${row.error_code ?? row.provider_status})`);
      }
    }
    if (optOuts.size > 0) {
      result.optedOut = await addSuppressions(
        context,
        [...optOuts].map(([phone, reason]) => ({ phone, reason })),
      );
    }
    // The messages are locked in id order (the sorted sub-select) before any is updated. Two
    // folders hold different reports (SKIP LOCKED) but may hold reports for the same messages
    // (duplicates, a late "sent"), and an UPDATE … FROM otherwise locks rows in whatever order
    // its plan visits them: they deadlocked in bench/report-ingestion.bench.ts with 4 folders.
    // The sub-select also keeps each batch to primary-key lookups; joined to unnest() alone the
    // planner hashed the whole message table per batch. Same `id = ANY` hint on delivery_event.
    const applied = await client.query<{ id: string }>(
      `UPDATE message m SET
         status = u.status,
         error_code = COALESCE(u.error_code, m.error_code),
         error_message = COALESCE(u.description, m.error_message),
         final_at = CASE WHEN message_status_rank(u.status) = message_status_rank('DELIVERED') THEN u.occurred_at ELSE m.final_at END,
         provider_message_id = COALESCE(m.provider_message_id, u.provider_message_id),
         updated_at = $7
       FROM unnest($1::uuid[], $2::message_status[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
         AS u(id, status, error_code, description, occurred_at, provider_message_id)
       WHERE m.id = u.id
         AND m.id IN (SELECT id FROM message WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE)
         AND message_status_rank(u.status) > message_status_rank(m.status)
         -- A provider holding a message for later reports it "accepted"/"queued" (SENT) at once:
         -- before its time that is no news, and it stays SCHEDULED (cancellable, not complete).
         AND NOT (m.status = 'SCHEDULED' AND u.status = 'SENT' AND m.due_at > u.occurred_at)
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
       FROM unnest($1::bigint[], $2::text[]) AS u(id, outcome)
       WHERE e.id = u.id AND e.id = ANY($1::bigint[])`,
      [doneIds, doneOutcomes, now],
    );
    if (retryIds.length > 0) {
      await client.query(
        `UPDATE delivery_event e SET retry_at = u.retry_at, match_attempts = e.match_attempts + 1
         FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, retry_at)
         WHERE e.id = u.id AND e.id = ANY($1::bigint[])`,
        [retryIds, retryAt],
      );
    }
    return result;
  });
  if (folded.expired > 0)
    context.logger.warn(
      { count: folded.expired },
      'expired delivery reports that matched no message',
    );
  return folded;
}

/** The provider type of an account, or undefined for an account no longer configured. */
function providerTypeOf(context: AppContext, accountName: string): string | undefined {
  return context.config.accounts.find(accountName)?.provider;
}

/** A folder that keeps its place re-reads from the start at least this often (waiting reports). */
const RESCAN_EVERY_MS = 5000;

/**
 * Folds pass after pass, each starting after the last report the previous pass read while a
 * backlog lasts. Why: folded reports leave dead entries in the unprocessed-report index until
 * vacuum, and a pass that always started from the lowest id walked past all of them, so a pass
 * cost grew with the backlog already folded (the benchmark folded 11,000 reports/s from a
 * 65,000-report backlog but 5,000/s from 260,000). Reports left behind (waiting for a match,
 * or locked by another folder) are picked up when the folder starts over: after any pass that
 * was not full, and at least every 5 seconds.
 */
export class ReportFolder {
  private afterId = '0';
  private startedOverAt = performance.now();

  constructor(
    private readonly context: AppContext,
    private readonly limit = context.config.eventsBatchSize,
  ) {}

  async fold(): Promise<FoldResult> {
    if (performance.now() - this.startedOverAt >= RESCAN_EVERY_MS) this.startOver();
    const result = await foldReports(this.context, this.limit, this.afterId);
    if (result.read < this.limit || result.lastId === null) this.startOver();
    else this.afterId = result.lastId;
    return result;
  }

  private startOver(): void {
    this.afterId = '0';
    this.startedOverAt = performance.now();
  }
}
