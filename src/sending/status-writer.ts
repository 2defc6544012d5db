import type pg from 'pg';
import {
  claimMessages,
  markAccepted,
  type Accepted,
  type ClaimedMessage,
} from './message-status.js';

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
    claimMessages(this.pool, ids, this.now(), this.account),
  );
  private readonly accepted = new Coalescer<Accepted & { messageId: string }, void>(
    async (records) => {
      await markAccepted(this.pool, records, this.now());
      return records.map(() => undefined);
    },
  );

  constructor(
    private readonly pool: pg.Pool,
    /** The context's clock, so status times follow it as the single-message writes do. */
    private readonly now: () => Date,
    /** The worker's account: it claims only messages routed to it. */
    private readonly account: string,
  ) {}

  /** As claimMessage() in message-status.ts, for one message among many at once. */
  claim(messageId: string): Promise<ClaimedMessage | undefined> {
    return this.claims.run(messageId);
  }

  /** As markSent() in message-status.ts, for one message among many at once. */
  markSent(messageId: string, result: Accepted): Promise<void> {
    return this.accepted.run({ messageId, ...result });
  }
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
