import type { AppContext } from '../runtime/context.js';
import { startDueCampaigns } from './campaign-lifecycle.js';
import { enqueuePlan } from './campaign-service.js';
import { rerouteToFallback } from './fallback-route.js';

const STALE_BATCH = 5000;
const RECOVERY_PAGE = 5000;

export interface SweepResult {
  /** Scheduled campaigns whose start time came. */
  started: number;
  /** Queued messages moved to their campaign's fallback account (its own account is down). */
  rerouted: number;
  planned: number;
  requeued: number;
  completed: number;
}

/**
 * The periodic pass that keeps Postgres and Redis agreeing (runs once per interval cluster-wide,
 * as a BullMQ job scheduler job):
 * - starts SCHEDULED campaigns whose time has come;
 * - moves the queued messages of running campaigns whose account's circuit is open to their
 *   fallback account, where they name one (fallback-route.ts);
 * - asks a planner to top up every running campaign's queue;
 * - re-adds jobs for messages QUEUED or SENDING for longer than the stale limit: their job was lost
 *   (Redis restarted empty, a planner died mid-page). Re-adding is a no-op for a job that still
 *   exists, and the send worker's claim decides what a re-run may do;
 * - marks a running campaign COMPLETED when nothing is left to send (or held by a provider).
 */
export async function sweep(context: AppContext): Promise<SweepResult> {
  const { db, clock, config } = context;
  const started = await startDueCampaigns(context);
  const rerouted = await rerouteToFallback(context);
  const running = await db.prisma.campaign.findMany({
    where: { status: 'RUNNING' },
    select: { id: true },
  });
  for (const campaign of running) await enqueuePlan(context, campaign.id);

  const staleBefore = new Date(clock.now().getTime() - config.staleAfterMs);
  // Re-added to the queue of the account each message is routed to (the campaign's, or its
  // fallback's).
  const stale = await db.pool.query<{ id: string; campaign_id: string; account_name: string }>(
    `UPDATE message m SET updated_at = $2
     FROM (
       SELECT m.id, COALESCE(m.route_account, c.account_name) AS account_name
       FROM message m JOIN campaign c ON c.id = m.campaign_id
       WHERE m.status IN ('QUEUED', 'SENDING') AND m.updated_at < $1
         AND (m.due_at IS NULL OR m.due_at < $1) AND c.status = 'RUNNING'
       LIMIT $3 FOR UPDATE OF m SKIP LOCKED
     ) s
     WHERE m.id = s.id
     RETURNING m.id, m.campaign_id, s.account_name`,
    [staleBefore, clock.now(), STALE_BATCH],
  );
  await context.queues.addSends(
    stale.rows.map((row) => ({
      account: row.account_name,
      messageId: row.id,
      campaignId: row.campaign_id,
    })),
  );
  if (stale.rows.length > 0)
    context.logger.warn({ count: stale.rows.length }, 're-enqueued stale messages');

  // Done when nothing is left to send and no provider still holds a message for later: until
  // then the campaign can still be paused or cancelled (cancelling those at the provider).
  const completed = await db.pool.query<{ id: string }>(
    `UPDATE campaign c SET status = 'COMPLETED', completed_at = $1, updated_at = $1
     WHERE c.status = 'RUNNING' AND NOT EXISTS (
       SELECT 1 FROM campaign_counter k
       WHERE k.campaign_id = c.id AND k.status IN ('PENDING', 'QUEUED', 'SENDING')
       GROUP BY k.status HAVING sum(k.count) > 0
     ) AND NOT EXISTS (
       SELECT 1 FROM message m
       WHERE m.campaign_id = c.id AND m.status = 'SCHEDULED' AND m.due_at > $1
     )
     RETURNING c.id`,
    [clock.now()],
  );
  for (const row of completed.rows)
    context.logger.info({ campaignId: row.id }, 'campaign completed');
  return {
    started,
    rerouted,
    planned: running.length,
    requeued: stale.rows.length,
    completed: completed.rows.length,
  };
}

/**
 * Redis lost its data (restarted without persistence, failed over to an empty replica, flushed):
 * every queued job is gone, and so is the sweep's own job scheduler. Waiting for
 * HERALD_STALE_AFTER_MS would stall every campaign for minutes, so a marker key tells us at once:
 * it is written when a planner first sees this Redis and is never removed or expired, so its
 * absence means the data went away. Any planner that finds it missing (SET NX: exactly one wins)
 * re-creates it, restores the sweep scheduler and re-adds a job for every QUEUED or SENDING message
 * of a running campaign, from Postgres. Jobs that still exist are not duplicated (jobId = message
 * id), so a false alarm (a brand-new Redis) costs one pass over the in-flight messages.
 */
export const redisMarkerKey = (prefix: string) => `${prefix}:redis-marker`;

export async function checkRedisMarker(
  context: AppContext,
  restoreSchedulers: () => Promise<void>,
): Promise<{ lost: boolean; requeued: number }> {
  const { redis, config, logger } = context;
  const created = await redis.set(
    redisMarkerKey(config.queuePrefix),
    new Date().toISOString(),
    'NX',
  );
  if (created !== 'OK') return { lost: false, requeued: 0 };
  await restoreSchedulers();
  const requeued = await requeueInFlight(context);
  if (requeued > 0)
    logger.warn(
      { requeued },
      'Redis had lost its data; re-enqueued in-flight messages from Postgres',
    );
  return { lost: true, requeued };
}

/**
 * Adds a job for every QUEUED/SENDING message of a running campaign. QUEUED ones keep their due
 * time; SENDING ones wait one job-lock period first, so a worker that is still sending one (its job
 * vanished with Redis, not its process) records the provider's answer before the re-run looks at it.
 */
async function requeueInFlight(context: AppContext): Promise<number> {
  const { db, clock, config } = context;
  let after = '00000000-0000-0000-0000-000000000000';
  let total = 0;
  for (;;) {
    const now = clock.now();
    const page = await db.pool.query<{
      id: string;
      campaign_id: string;
      account_name: string;
      status: string;
      due_at: Date | null;
    }>(
      `SELECT m.id, m.campaign_id, COALESCE(m.route_account, c.account_name) AS account_name,
              m.status, m.due_at
       FROM message m JOIN campaign c ON c.id = m.campaign_id
       WHERE c.status = 'RUNNING' AND m.status IN ('QUEUED', 'SENDING') AND m.id > $1
       ORDER BY m.id LIMIT $2`,
      [after, RECOVERY_PAGE],
    );
    if (page.rows.length === 0) break;
    after = page.rows[page.rows.length - 1]!.id;
    // To the queue of the account each message is routed to (a SENDING one is being sent by it).
    await context.queues.addSends(
      page.rows.map((row) => ({
        account: row.account_name,
        messageId: row.id,
        campaignId: row.campaign_id,
        delayMs:
          row.status === 'SENDING'
            ? config.jobLockMs
            : row.due_at
              ? row.due_at.getTime() - now.getTime()
              : 0,
      })),
    );
    total += page.rows.length;
  }
  return total;
}
