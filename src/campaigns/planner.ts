import type { Job } from 'bullmq';
import { jobs, type SendJob } from '../queues/jobs.js';
import type { AppContext } from '../runtime/context.js';

const PAGE_SIZE = 1000;
/** However slow the account, keep at least this many jobs ready so workers never starve. */
const MIN_QUEUE_BUDGET = 1000;
/** Keep about this many seconds of the account's sending in Redis; the rest waits in Postgres. */
const QUEUE_SECONDS = 60;

/**
 * Moves a running campaign's due messages from Postgres into its account's send queue.
 *
 * Each page is claimed PENDING → QUEUED with `FOR UPDATE SKIP LOCKED`, so planners running at
 * once on many machines take disjoint pages, then added as jobs whose id is the message id. A
 * planner that dies between the two leaves QUEUED messages without jobs; the sweeper re-adds them
 * once stale, and the send worker's claim in Postgres makes a second job for one message harmless.
 *
 * Redis stays bounded: only messages due within the horizon are taken, and no more than about a
 * minute of the account's rate is kept waiting.
 */
export async function planCampaign(
  context: AppContext,
  campaignId: string,
): Promise<{ enqueued: number }> {
  const { db, queues, clock, config } = context;
  let enqueued = 0;
  for (;;) {
    const campaign = await db.prisma.campaign.findUnique({
      where: { id: campaignId },
      select: { status: true, accountName: true },
    });
    if (campaign?.status !== 'RUNNING') break;
    const account = config.accounts.get(campaign.accountName);
    const queue = queues.send(account.name);
    const counts = await queue.getJobCounts('wait', 'delayed', 'prioritized');
    const waiting = Object.values(counts).reduce((a, b) => a + b, 0);
    const budget = Math.max(MIN_QUEUE_BUDGET, Math.ceil(account.rate * QUEUE_SECONDS)) - waiting;
    if (budget <= 0) break;

    const now = clock.now();
    const horizon = new Date(now.getTime() + config.planHorizonMs);
    const claimed = await db.pool.query<{ id: string; due_at: Date | null }>(
      `UPDATE message m SET status = 'QUEUED', queued_at = $3, updated_at = $3
       FROM (
         SELECT id FROM message
         WHERE campaign_id = $1 AND status = 'PENDING' AND (due_at IS NULL OR due_at <= $2)
         ORDER BY due_at NULLS FIRST, id
         LIMIT $4
         FOR UPDATE SKIP LOCKED
       ) page
       WHERE m.id = page.id
       RETURNING m.id, m.due_at`,
      [campaignId, horizon, now, Math.min(PAGE_SIZE, budget)],
    );
    if (claimed.rows.length === 0) break;
    await queues.send(account.name).addBulk(
      claimed.rows.map((row) => ({
        name: jobs.send.name,
        data: { messageId: row.id, campaignId } satisfies SendJob,
        opts: {
          ...jobs.send.options,
          jobId: row.id,
          delay: row.due_at ? Math.max(0, row.due_at.getTime() - now.getTime()) : 0,
        },
      })),
    );
    enqueued += claimed.rows.length;
  }
  if (enqueued > 0) context.logger.debug({ campaignId, enqueued }, 'planned messages');
  return { enqueued };
}

export async function processPlanJob(context: AppContext, job: Job): Promise<{ enqueued: number }> {
  const { campaignId } = jobs.planCampaign.schema.parse(job.data);
  return planCampaign(context, campaignId);
}
