import { jobs, type SendJob } from '../queues/jobs.js';
import type { AppContext } from '../runtime/context.js';
import { enqueuePlan } from './campaign-service.js';

const STALE_BATCH = 5000;

export interface SweepResult {
  planned: number;
  requeued: number;
  completed: number;
}

/**
 * The periodic pass that keeps Postgres and Redis agreeing (runs once per interval cluster-wide,
 * as a BullMQ job scheduler job):
 * - asks a planner to top up every running campaign's queue;
 * - re-adds jobs for messages QUEUED or SENDING for longer than the stale limit: their job was lost
 *   (Redis restarted empty, a planner died mid-page). Re-adding is a no-op for a job that still
 *   exists, and the send worker's claim decides what a re-run may do;
 * - marks a running campaign COMPLETED when nothing is left to send.
 */
export async function sweep(context: AppContext): Promise<SweepResult> {
  const { db, clock, config } = context;
  const running = await db.prisma.campaign.findMany({
    where: { status: 'RUNNING' },
    select: { id: true },
  });
  for (const campaign of running) await enqueuePlan(context, campaign.id);

  const staleBefore = new Date(clock.now().getTime() - config.staleAfterMs);
  const stale = await db.pool.query<{ id: string; campaign_id: string; account_name: string }>(
    `UPDATE message m SET updated_at = $2
     FROM (
       SELECT m.id, c.account_name FROM message m JOIN campaign c ON c.id = m.campaign_id
       WHERE m.status IN ('QUEUED', 'SENDING') AND m.updated_at < $1
         AND (m.due_at IS NULL OR m.due_at < $1) AND c.status = 'RUNNING'
       LIMIT $3 FOR UPDATE OF m SKIP LOCKED
     ) s
     WHERE m.id = s.id
     RETURNING m.id, m.campaign_id, s.account_name`,
    [staleBefore, clock.now(), STALE_BATCH],
  );
  const byAccount = new Map<string, typeof stale.rows>();
  for (const row of stale.rows) {
    const rows = byAccount.get(row.account_name) ?? [];
    rows.push(row);
    byAccount.set(row.account_name, rows);
  }
  for (const [account, rows] of byAccount) {
    await context.queues.send(account).addBulk(
      rows.map((row) => ({
        name: jobs.send.name,
        data: { messageId: row.id, campaignId: row.campaign_id } satisfies SendJob,
        opts: { ...jobs.send.options, jobId: row.id },
      })),
    );
  }
  if (stale.rows.length > 0)
    context.logger.warn({ count: stale.rows.length }, 're-enqueued stale messages');

  const completed = await db.pool.query<{ id: string }>(
    `UPDATE campaign c SET status = 'COMPLETED', completed_at = $1, updated_at = $1
     WHERE c.status = 'RUNNING' AND NOT EXISTS (
       SELECT 1 FROM campaign_counter k
       WHERE k.campaign_id = c.id AND k.status IN ('PENDING', 'QUEUED', 'SENDING')
       GROUP BY k.status HAVING sum(k.count) > 0
     )
     RETURNING c.id`,
    [clock.now()],
  );
  for (const row of completed.rows)
    context.logger.info({ campaignId: row.id }, 'campaign completed');
  return { planned: running.length, requeued: stale.rows.length, completed: completed.rows.length };
}
