import type pg from 'pg';
import type { ClaimedMessage } from './message-status.js';

/**
 * Most of a send's cost is its two status writes (the claim, then SENT), each firing the counter
 * triggers. Jobs running at once in one process are coalesced here into one statement per kind
 * (`= ANY($1)` / `UPDATE … FROM unnest(…)`), as the batcher coalesces provider requests.
 * The at-most-once order is unchanged: each job waits for its claim's commit before it sends, and
 * for its SENT write's commit before it completes. A failed statement fails every member, and each
 * member's own retry decides (db-retry.ts).
 */
export class StatusWriter {
  private readonly claims = new Coalescer<string, ClaimedMessage | undefined>((ids) =>
    this.claimMany(ids),
  );
  private readonly sents = new Coalescer<SentRecord, void>((records) => this.markSentMany(records));

  constructor(
    private readonly pool: pg.Pool,
    /** The context's clock, so status times follow it as the single-message writes do. */
    private readonly now: () => Date,
  ) {}

  /** As claimMessage() in message-status.ts, for one message among many at once. */
  claim(messageId: string): Promise<ClaimedMessage | undefined> {
    return this.claims.run(messageId);
  }

  /** As markSent() in message-status.ts, for one message among many at once. */
  markSent(
    messageId: string,
    result: { providerMessageId: string; segments?: number },
  ): Promise<void> {
    return this.sents.run({ messageId, ...result });
  }

  private async claimMany(ids: string[]): Promise<Array<ClaimedMessage | undefined>> {
    // Rows are locked in id order, so two statements that share a message (a duplicate job)
    // wait for each other instead of deadlocking.
    const result = await this.pool.query<ClaimedMessage & { id: string }>(
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
         WHERE m2.id = ANY($1::uuid[]) AND c.status = 'RUNNING'
           AND m2.status IN ('PENDING', 'QUEUED')
         ORDER BY m2.id
         FOR UPDATE OF m2
       ) t
       WHERE m.id = t.id AND m.status IN ('PENDING', 'QUEUED')
       RETURNING m.id, m.phone, m.fields, t.template, m.status`,
      [ids, this.now()],
    );
    const byId = new Map(result.rows.map((row) => [row.id, row]));
    return ids.map((id) => {
      const row = byId.get(id);
      // Two jobs of one message in one batch (a re-run racing the original): the row was
      // claimed once, so only the first may send; the other finds it SENDING, as it would alone.
      byId.delete(id);
      if (!row) return undefined;
      const { phone, fields, template, status } = row;
      return { phone, fields, template, status };
    });
  }

  private async markSentMany(records: SentRecord[]): Promise<void[]> {
    await this.pool.query(
      `UPDATE message m SET
         provider_message_id = u.provider_message_id, segments = u.segments,
         sent_at = $4, updated_at = $4,
         status = CASE WHEN message_status_rank(m.status) < message_status_rank('SENT') THEN 'SENT' ELSE m.status END
       FROM unnest($1::uuid[], $2::text[], $3::int[]) AS u(id, provider_message_id, segments)
       WHERE m.id = u.id`,
      [
        records.map((r) => r.messageId),
        records.map((r) => r.providerMessageId),
        records.map((r) => r.segments ?? null),
        this.now(),
      ],
    );
    return records.map(() => undefined);
  }
}

interface SentRecord {
  messageId: string;
  providerMessageId: string;
  segments?: number;
}

/** Up to this many items per statement (bind arrays, not parameters: no 65k limit concern). */
const MAX_ITEMS = 500;

/**
 * Collects the items asked for during one turn of the event loop (plus whatever arrives while a
 * statement is in flight) and runs them as one call. Nothing waits on a timer: under light load
 * each item goes alone, at once.
 */
class Coalescer<I, O> {
  private pending: Array<{ item: I; resolve(o: O): void; reject(e: unknown): void }> = [];
  private scheduled = false;
  private inFlight = 0;

  constructor(private readonly runMany: (items: I[]) => Promise<O[]>) {}

  run(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    // At most two statements of a kind in flight per process: the rest gather for the next one.
    if (this.scheduled || this.inFlight >= 2 || this.pending.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const batch = this.pending.splice(0, MAX_ITEMS);
      if (batch.length === 0) return;
      this.inFlight += 1;
      this.runMany(batch.map((b) => b.item))
        .then(
          (results) => batch.forEach((b, i) => b.resolve(results[i]!)),
          (error: unknown) => batch.forEach((b) => b.reject(error)),
        )
        .finally(() => {
          this.inFlight -= 1;
          this.schedule();
        });
      this.schedule();
    });
  }
}
