import { ConflictError, UserError } from '../errors.js';
import type { Campaign } from '../generated/prisma/client.js';
import { parseSendTime } from '../messages/zoned-time.js';
import { jobs, type SendJob } from '../queues/jobs.js';
import type { AppContext } from '../runtime/context.js';
import { enqueuePlan, getCampaign } from './campaign-service.js';

/**
 * The campaign's life after creation, besides start (campaign-service.ts):
 *
 *   DRAFT ─schedule─► SCHEDULED ─(due; the sweeper)─► RUNNING ◄─resume─ PAUSED
 *     │                  │ reschedule                   │ └──pause──────►┘
 *     └──────────────────┴───────────cancel─────────────┴──► CANCELLED
 */

const REQUEUE_PAGE = 1000;

async function transition(
  context: AppContext,
  id: string,
  from: Campaign['status'][],
  data: Partial<Pick<Campaign, 'status' | 'scheduledAt' | 'startedAt' | 'completedAt'>>,
  action: string,
): Promise<Campaign> {
  const campaign = await getCampaign(context, id);
  const updated = await context.db.prisma.campaign.updateMany({
    where: { id, status: { in: from } },
    data,
  });
  if (updated.count === 0) {
    throw new ConflictError(
      'CAMPAIGN_STATE_CONFLICT',
      `cannot ${action} campaign ${id}: it is ${campaign.status} (${action} needs ${from.join(' or ')})`,
    );
  }
  return getCampaign(context, id);
}

/**
 * Schedules (or reschedules) a DRAFT or SCHEDULED campaign to start at `at`: ISO 8601 with an
 * offset, or a local time read in the campaign's time zone. A time in the past is refused.
 */
export async function scheduleCampaign(
  context: AppContext,
  id: string,
  at: string,
): Promise<Campaign> {
  const campaign = await getCampaign(context, id);
  const when = parseSendTime(at, campaign.timezone);
  if (!when) {
    throw new UserError(
      'SCHEDULE_INVALID',
      `"${at}" is not a date and time: write 2026-12-04T10:00:00+11:00, or 2026-12-04 10:00 (read in ${campaign.timezone})`,
    );
  }
  if (when <= context.clock.now()) {
    throw new UserError(
      'SCHEDULE_IN_PAST',
      `${when.toISOString()} is in the past; start the campaign now instead`,
    );
  }
  const recipients = await context.db.prisma.message.count({ where: { campaignId: id } });
  if (recipients === 0)
    throw new ConflictError(
      'CAMPAIGN_EMPTY',
      `campaign ${id} has no recipients; import a list first`,
    );
  return transition(
    context,
    id,
    ['DRAFT', 'SCHEDULED'],
    { status: 'SCHEDULED', scheduledAt: when },
    'schedule',
  );
}

/** Stops new sends within seconds: workers only claim messages of RUNNING campaigns. */
export function pauseCampaign(context: AppContext, id: string): Promise<Campaign> {
  return transition(context, id, ['RUNNING'], { status: 'PAUSED' }, 'pause');
}

/**
 * Carries on where the pause stopped. Messages that were queued when it paused had their jobs
 * end without sending; they are enqueued again (same job ids), then the planner continues.
 */
export async function resumeCampaign(context: AppContext, id: string): Promise<Campaign> {
  const campaign = await transition(context, id, ['PAUSED'], { status: 'RUNNING' }, 'resume');
  await requeueQueued(context, campaign);
  await enqueuePlan(context, id);
  return campaign;
}

export interface CancelResult {
  campaign: Campaign;
  /** Messages that will now never be sent. */
  cancelled: number;
  /** Messages already handed to the provider (or being handed over): beyond recall. */
  alreadyHandedOver: number;
}

/** Cancels a campaign that has not finished: every message not yet handed over becomes CANCELLED. */
export async function cancelCampaign(context: AppContext, id: string): Promise<CancelResult> {
  const campaign = await transition(
    context,
    id,
    ['DRAFT', 'SCHEDULED', 'RUNNING', 'PAUSED'],
    { status: 'CANCELLED', completedAt: context.clock.now() },
    'cancel',
  );
  const cancelled = await context.db.pool.query(
    `UPDATE message SET status = 'CANCELLED', error_code = 'CAMPAIGN_CANCELLED',
       error_message = 'the campaign was cancelled', updated_at = $2
     WHERE campaign_id = $1 AND status IN ('PENDING', 'QUEUED')`,
    [id, context.clock.now()],
  );
  const handed = await context.db.pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM message WHERE campaign_id = $1 AND status IN ('SENDING', 'UNKNOWN', 'SENT')`,
    [id],
  );
  context.logger.info({ campaignId: id, cancelled: cancelled.rowCount }, 'campaign cancelled');
  return {
    campaign,
    cancelled: cancelled.rowCount ?? 0,
    alreadyHandedOver: Number(handed.rows[0]!.n),
  };
}

/** SCHEDULED campaigns whose time has come → RUNNING, handed to the planner. Run by the sweeper. */
export async function startDueCampaigns(context: AppContext): Promise<number> {
  const now = context.clock.now();
  const started = await context.db.pool.query<{ id: string }>(
    `UPDATE campaign SET status = 'RUNNING', started_at = $1, updated_at = $1
     WHERE status = 'SCHEDULED' AND scheduled_at <= $1 RETURNING id`,
    [now],
  );
  for (const { id } of started.rows) {
    await enqueuePlan(context, id);
    context.logger.info({ campaignId: id }, 'scheduled campaign started');
  }
  return started.rows.length;
}

async function requeueQueued(context: AppContext, campaign: Campaign): Promise<void> {
  const queue = context.queues.send(campaign.accountName);
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const { rows } = await context.db.pool.query<{ id: string; due_at: Date | null }>(
      `SELECT id, due_at FROM message WHERE campaign_id = $1 AND status = 'QUEUED' AND id > $2 ORDER BY id LIMIT $3`,
      [campaign.id, after, REQUEUE_PAGE],
    );
    if (rows.length === 0) return;
    const now = context.clock.now().getTime();
    await queue.addBulk(
      rows.map((row) => ({
        name: jobs.send.name,
        data: { messageId: row.id, campaignId: campaign.id } satisfies SendJob,
        opts: {
          ...jobs.send.options,
          jobId: row.id,
          delay: row.due_at ? Math.max(0, row.due_at.getTime() - now) : 0,
        },
      })),
    );
    after = rows[rows.length - 1]!.id;
  }
}
