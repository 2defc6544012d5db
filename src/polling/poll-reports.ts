import pLimit from 'p-limit';
import { recordReplies } from '../events/record-replies.js';
import { recordReports } from '../events/record-reports.js';
import type { ProviderAdapter, StatusReport } from '../providers/types.js';
import type { AppContext } from '../runtime/context.js';

/** Provider ids per pollStatus call: small enough that one slow call does not hold a whole pass. */
const POLL_CHUNK = 100;

/** Pages of kept events pulled per account per pass at most (each up to 100 of each kind). */
const MAX_PULL_PAGES = 20;

export interface PollResult {
  /** Accounts whose provider offers polling and had messages due. */
  accounts: number;
  /** Messages asked about. */
  asked: number;
  /** Reports the providers gave back (stored for folding; some may say nothing new). */
  reports: number;
  /** Reports and replies collected from providers that keep them until confirmed. */
  pulled: number;
}

interface DueMessage {
  id: string;
  provider_message_id: string;
}

/**
 * The polling fallback: for each account whose adapter has `pollStatus`, asks the provider about
 * messages SENT at least HERALD_POLL_AFTER_MS ago without a final report (or held by the
 * provider for a time that passed that long ago: SCHEDULED, native scheduling), at most
 * HERALD_POLL_BATCH_SIZE per account per pass, and stores what it answers with recordReports.
 * Folding stays the one place that changes a message's status, so a polled report and a late
 * webhook for the same status are one report (same dedupe key), and a polled "still sent"
 * changes nothing.
 *
 * Each message picked has its updated_at set to now in the same statement, so it is asked about
 * at most once per HERALD_POLL_AFTER_MS whatever the answer, and the oldest unasked go first
 * (a provider that no longer knows a message does not starve the rest). Runs as a periodic
 * control job (BullMQ job scheduler): one pass at a time across all processes. The providers'
 * budgets are the adapters' business (Bandwidth's 3,500 requests per 5 minutes is a reservoir in
 * its adapter; ids over budget are simply not answered and come round again).
 */
export async function pollSentMessages(context: AppContext): Promise<PollResult> {
  const result: PollResult = { accounts: 0, asked: 0, reports: 0, pulled: 0 };
  result.pulled = await pullKeptEvents(context);
  const now = context.clock.now();
  const cutoff = new Date(now.getTime() - context.config.pollAfterMs);
  // Campaigns with messages awaiting a report, from the counters: the message query below then
  // stays on the (campaign_id, status) index instead of scanning every message.
  const { rows: campaigns } = await context.db.pool.query<{ campaign_id: string }>(
    `SELECT campaign_id FROM campaign_counter WHERE status IN ('SENT', 'SCHEDULED')
     GROUP BY campaign_id HAVING sum(count) > 0`,
  );
  if (campaigns.length === 0) return result;
  const campaignIds = campaigns.map((c) => c.campaign_id);

  for (const account of context.config.accounts.all()) {
    let adapter: ProviderAdapter;
    try {
      adapter = context.providers.get(account.name);
    } catch (error) {
      // One account that cannot be set up must not stop the others' polling.
      context.logger.warn({ account: account.name, err: error }, 'cannot poll this account');
      continue;
    }
    if (!adapter.pollStatus) continue;
    const { rows: due } = await context.db.pool.query<DueMessage>(
      `UPDATE message m SET updated_at = $4
       FROM (
         SELECT id FROM message
         WHERE campaign_id = ANY($1::uuid[]) AND status IN ('SENT', 'SCHEDULED')
           AND account_name = $2 AND provider_message_id IS NOT NULL AND updated_at < $3
           AND (status = 'SENT' OR due_at < $3)
         ORDER BY updated_at LIMIT $5
         FOR UPDATE SKIP LOCKED
       ) due
       WHERE m.id = due.id AND m.status IN ('SENT', 'SCHEDULED')
       RETURNING m.id, m.provider_message_id`,
      [campaignIds, account.name, cutoff, now, context.config.pollBatchSize],
    );
    if (due.length === 0) continue;
    result.accounts += 1;
    result.asked += due.length;
    const ourId = new Map(due.map((m) => [m.provider_message_id, m.id]));
    const chunks: string[][] = [];
    for (let i = 0; i < due.length; i += POLL_CHUNK)
      chunks.push(due.slice(i, i + POLL_CHUNK).map((m) => m.provider_message_id));
    const limit = pLimit(2);
    const answers = await Promise.all(
      chunks.map((ids) =>
        limit(async (): Promise<StatusReport[]> => {
          try {
            return await adapter.pollStatus!(ids);
          } catch (error) {
            // One account's outage must not stop the others' polling; these come round again.
            context.logger.warn(
              { account: account.name, err: error, messages: ids.length },
              'polling for delivery status failed',
            );
            return [];
          }
        }),
      ),
    );
    // Our id where the adapter gave only the provider's, so the folder matches it directly.
    const reports = answers.flat().map((r) => ({
      ...r,
      messageId: r.messageId ?? (r.providerMessageId ? ourId.get(r.providerMessageId) : undefined),
    }));
    await recordReports(context, account.name, reports);
    result.reports += reports.length;
    context.logger.info(
      { account: account.name, asked: due.length, answered: reports.length },
      'polled providers for messages without a final report',
    );
  }
  return result;
}

/**
 * For providers that keep reports and replies until they are confirmed (MessageMedia), collects
 * them page by page, stores them as the webhook would (reports for folding, replies with opt-out
 * handling), and only then confirms them. Whatever a push delivered too is kept once (dedupe).
 */
async function pullKeptEvents(context: AppContext): Promise<number> {
  let pulled = 0;
  for (const account of context.config.accounts.all()) {
    let adapter: ProviderAdapter;
    try {
      adapter = context.providers.get(account.name);
    } catch {
      continue; // reported by the polling below
    }
    if (!adapter.pullEvents) continue;
    try {
      for (let page = 0; page < MAX_PULL_PAGES; page++) {
        const events = await adapter.pullEvents();
        if (events.received === 0) break;
        await recordReports(context, account.name, events.reports);
        await recordReplies(context, account.name, events.replies);
        await events.confirm();
        pulled += events.reports.length + events.replies.length;
      }
    } catch (error) {
      // One account's outage must not stop the others; unconfirmed events come round again.
      context.logger.warn(
        { account: account.name, err: error },
        'collecting kept delivery reports failed',
      );
    }
  }
  if (pulled > 0) context.logger.info({ pulled }, 'collected kept delivery reports and replies');
  return pulled;
}
