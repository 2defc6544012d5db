import pLimit from 'p-limit';
import type { AppContext } from '../runtime/context.js';

const PAGE = 200;

/**
 * Cancels at the provider every message of a cancelled campaign that the provider holds until its
 * time (status SCHEDULED, handed over by native scheduling), where the provider can cancel
 * (MessageMedia, Telstra v3). Run as a control job after the campaign is cancelled: thousands of
 * requests do not belong in the API call. A message the provider cancelled becomes CANCELLED; one
 * it says it can no longer cancel stays SCHEDULED, and its delivery report will say what happened.
 * A failed request (rate limit, outage) fails the job, which BullMQ retries with backoff; messages
 * already cancelled are not asked again.
 */
export async function cancelAtProvider(
  context: AppContext,
  campaignId: string,
): Promise<{ cancelled: number; notCancellable: number }> {
  const { db, logger } = context;
  const totals = { cancelled: 0, notCancellable: 0 };
  // Each message is cancelled through the account it was handed to: the campaign's, or its
  // fallback's for messages sent while the campaign's account was down.
  const { rows: accounts } = await db.pool.query<{ account_name: string }>(
    `SELECT DISTINCT account_name FROM message
     WHERE campaign_id = $1 AND status = 'SCHEDULED' AND account_name IS NOT NULL`,
    [campaignId],
  );
  for (const { account_name: name } of accounts) {
    const account = context.config.accounts.find(name);
    if (!account) continue; // no longer configured: nothing can reach it
    const adapter = context.providers.get(account.name);
    if (!adapter.cancelScheduled) continue;
    const limit = pLimit(account.concurrency);
    let after = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      const { rows } = await db.pool.query<{ id: string; provider_message_id: string }>(
        `SELECT id, provider_message_id FROM message
         WHERE campaign_id = $1 AND account_name = $2 AND status = 'SCHEDULED'
           AND provider_message_id IS NOT NULL AND id > $3
         ORDER BY id LIMIT $4`,
        [campaignId, account.name, after, PAGE],
      );
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.id;
      const answers = await Promise.allSettled(
        rows.map((row) => limit(() => adapter.cancelScheduled!(row.provider_message_id))),
      );
      const cancelled = rows.filter((_, i) => {
        const answer = answers[i]!;
        return answer.status === 'fulfilled' && answer.value === 'cancelled';
      });
      // Record what was cancelled before giving up on a failure, so a retry skips it.
      if (cancelled.length > 0)
        await db.pool.query(
          `UPDATE message SET status = 'CANCELLED', error_code = 'CAMPAIGN_CANCELLED',
             error_message = 'the campaign was cancelled; cancelled at the provider', updated_at = $2
           WHERE id = ANY($1::uuid[]) AND status = 'SCHEDULED'`,
          [cancelled.map((row) => row.id), context.clock.now()],
        );
      totals.cancelled += cancelled.length;
      totals.notCancellable += answers.filter(
        (a) => a.status === 'fulfilled' && a.value === 'not-cancellable',
      ).length;
      const failure = answers.find((a) => a.status === 'rejected');
      if (failure) throw (failure as PromiseRejectedResult).reason;
    }
  }
  logger.info({ campaignId, ...totals }, 'scheduled messages cancelled at the provider');
  return totals;
}
