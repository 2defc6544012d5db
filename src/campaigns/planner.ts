import type { Job } from 'bullmq';
import { withTransaction } from '../db/database.js';
import { nativeSchedulingFor } from '../providers/registry.js';
import { jobs } from '../queues/jobs.js';
import type { AppContext } from '../runtime/context.js';
import { decideSendTime, nativeHorizonMs, timingRules } from '../scheduling/send-time.js';
import { currentRoute } from './fallback-route.js';
import { queueRoom } from './queue-room.js';

const PAGE_SIZE = 1000;

interface PageRow {
  id: string;
  due_at: Date | null;
  timezone: string | null;
}

/**
 * Moves a running campaign's due messages from Postgres into its account's send queue, or into
 * its fallback account's while its account's circuit is open (see fallback-route.ts): the page's
 * messages get that route in the same statement that makes them QUEUED.
 *
 * Each page is locked with `FOR UPDATE SKIP LOCKED`, so planners running at once on many machines
 * take disjoint pages. For each message the send-time rule (src/scheduling/send-time.ts) decides:
 * - due now, or within the horizon (its own time, or the send window's next opening) → QUEUED,
 *   with a job delayed by exactly the time left (jobId = message id);
 * - further off than the horizon (a window pushed it) → stays PENDING with that time as `due_at`,
 *   so later passes skip it until it comes near;
 * - missed its time by more than the maximum lateness → EXPIRED, never sent.
 * A planner that dies between the commit and adding the jobs leaves QUEUED messages without jobs;
 * the sweeper re-adds them once stale, and the send worker's claim makes a second job harmless.
 *
 * Redis stays bounded: only messages due within the horizon are taken (for an account that
 * schedules natively, within the provider's own limit: they are handed over early), and no more
 * than about a minute of the account's rate is kept waiting.
 */
export async function planCampaign(
  context: AppContext,
  campaignId: string,
): Promise<{ enqueued: number; deferred: number; expired: number }> {
  const { db, queues, clock, config } = context;
  const totals = { enqueued: 0, deferred: 0, expired: 0 };
  for (;;) {
    const campaign = await db.prisma.campaign.findUnique({
      where: { id: campaignId },
      select: {
        status: true,
        accountName: true,
        timezone: true,
        sendWindow: true,
        maxLatenessMs: true,
        fallbackAccount: true,
      },
    });
    if (campaign?.status !== 'RUNNING') break;
    // Decided again for every page: a circuit that opens or closes meanwhile takes effect at once.
    const route = await currentRoute(context, { id: campaignId, ...campaign });
    const { account } = route;
    // The account that will send decides whether a provider holds messages until their time.
    const native = nativeSchedulingFor(account);
    const rules = timingRules(campaign, config.maxLatenessMs);
    const budget = await queueRoom(context, account);
    if (budget <= 0) break;

    const now = clock.now();
    const horizonMs = Math.max(config.planHorizonMs, native ? nativeHorizonMs(native) : 0);
    const limit = Math.min(PAGE_SIZE, budget);
    const page = await withTransaction(db.pool, async (client) => {
      // Two range scans of the due index (message_due_idx) rather than one with
      // `due_at IS NULL OR due_at <= $2`: Postgres cannot bound an index scan by an OR, and walked
      // every pending message of the campaign to find the few due (measured: 700,000 index entries
      // read for 115 rows at 1,000,000 pending; bench/reminder-redis.bench.ts).
      const { rows } = await client.query<PageRow>(
        `SELECT id, due_at, timezone FROM message
         WHERE campaign_id = $1 AND status = 'PENDING' AND due_at IS NULL
         ORDER BY due_at NULLS FIRST, id
         LIMIT $2
         FOR UPDATE SKIP LOCKED`,
        [campaignId, limit],
      );
      if (rows.length < limit) {
        const timed = await client.query<PageRow>(
          `SELECT id, due_at, timezone FROM message
           WHERE campaign_id = $1 AND status = 'PENDING' AND due_at <= $2
           ORDER BY due_at, id
           LIMIT $3
           FOR UPDATE SKIP LOCKED`,
          [campaignId, new Date(now.getTime() + horizonMs), limit - rows.length],
        );
        rows.push(...timed.rows);
      }
      const queued: Array<{ id: string; at: Date | null }> = [];
      const deferred: Array<{ id: string; until: Date }> = [];
      const expired: Array<{ id: string; code: string; reason: string }> = [];
      for (const row of rows) {
        const decision = decideSendTime(
          { dueAt: row.due_at, timezone: row.timezone },
          rules,
          now,
          native,
        );
        if (decision.action === 'expire') expired.push({ id: row.id, ...decision });
        else if (decision.action === 'send') queued.push({ id: row.id, at: null });
        else if (decision.until.getTime() - now.getTime() <= config.planHorizonMs)
          queued.push({ id: row.id, at: decision.until });
        else deferred.push({ id: row.id, until: decision.until });
      }
      await client.query(
        `UPDATE message SET status = 'QUEUED', queued_at = $2, updated_at = $2, route_account = $3
         WHERE id = ANY($1::uuid[])`,
        [queued.map((q) => q.id), now, route.viaFallback ? account.name : null],
      );
      if (deferred.length > 0)
        await client.query(
          `UPDATE message m SET due_at = u.until, updated_at = $3
           FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, until) WHERE m.id = u.id`,
          [deferred.map((d) => d.id), deferred.map((d) => d.until), now],
        );
      if (expired.length > 0)
        await client.query(
          `UPDATE message m SET status = 'EXPIRED', error_code = u.code, error_message = u.reason,
             updated_at = $4
           FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(id, code, reason) WHERE m.id = u.id`,
          [expired.map((e) => e.id), expired.map((e) => e.code), expired.map((e) => e.reason), now],
        );
      return { size: rows.length, queued, deferred: deferred.length, expired: expired.length };
    });
    // BullMQ counts a delay from when the job is added, so it is measured now, after the claim's
    // round trips: measured from `now` above, every job of a page went late by them.
    const addedAt = clock.now().getTime();
    await queues.addSends(
      page.queued.map((q) => ({
        account: account.name,
        messageId: q.id,
        campaignId,
        delayMs: q.at ? q.at.getTime() - addedAt : 0,
      })),
    );
    totals.enqueued += page.queued.length;
    totals.deferred += page.deferred;
    totals.expired += page.expired;
    // A short page means nothing more is due: asking again would only walk the index twice.
    if (page.size < limit) break;
  }
  if (totals.enqueued + totals.deferred + totals.expired > 0)
    context.logger.debug({ campaignId, ...totals }, 'planned messages');
  if (totals.expired > 0)
    context.logger.warn(
      { campaignId, expired: totals.expired },
      'messages missed their send time (workers were down?) and expired',
    );
  return totals;
}

export async function processPlanJob(
  context: AppContext,
  job: Job,
): Promise<{ enqueued: number; deferred: number; expired: number }> {
  const { campaignId } = jobs.planCampaign.schema.parse(job.data);
  return planCampaign(context, campaignId);
}
