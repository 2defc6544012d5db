import { ConflictError, UserError } from '../errors.js';
import type { Campaign } from '../generated/prisma/client.js';
import { formatDuration } from '../duration.js';
import { parseSendTime } from '../messages/zoned-time.js';
import { providerSchedulingOf } from '../providers/registry.js';
import { isTooLate } from '../scheduling/send-window.js';
import { jobs } from '../queues/jobs.js';
import type { AppContext } from '../runtime/context.js';
import { enqueuePlan, getCampaign } from './campaign-service.js';
import { checkBodiesFitFallback } from './fallback-account.js';

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
  // Recipients cannot be added once it is SCHEDULED: this is the last look before the sweeper
  // starts it (edits check again).
  await checkBodiesFitFallback(context, context.db.pool, campaign);
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
  /**
   * Messages already handed to the provider, beyond recall: sent, being sent, outcome unknown,
   * and those it holds until their time but cannot cancel (`scheduledNotCancellable`).
   */
  alreadyHandedOver: number;
  /** Held by a provider that cannot cancel them (Optus, Telstra v2): they will still be sent. */
  scheduledNotCancellable: number;
  /** Held by a provider that can cancel them: being cancelled there by a background job. */
  cancellingAtProvider: number;
}

/**
 * Cancels a campaign that has not finished: every message not yet handed over becomes CANCELLED.
 * Messages a provider holds until their time (native scheduling) are cancelled at the provider
 * where it can (a control job, see cancel-at-provider.ts) and counted as handed over where not.
 */
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
  // Held-for-later messages are counted per account they were handed to: with a fallback, some
  // may be held by a provider that can cancel and some by one that cannot.
  const { rows } = await context.db.pool.query<{
    account_name: string | null;
    handed: string;
    scheduled: string;
  }>(
    `SELECT account_name,
            count(*) FILTER (WHERE status IN ('SENDING', 'UNKNOWN', 'SENT')) AS handed,
            count(*) FILTER (WHERE status = 'SCHEDULED') AS scheduled
     FROM message WHERE campaign_id = $1 AND status IN ('SENDING', 'UNKNOWN', 'SENT', 'SCHEDULED')
     GROUP BY account_name`,
    [id],
  );
  let handed = 0;
  let cancellable = 0;
  let notCancellable = 0;
  for (const row of rows) {
    handed += Number(row.handed);
    const scheduled = Number(row.scheduled);
    const account = context.config.accounts.find(row.account_name ?? campaign.accountName);
    const canCancel =
      account !== undefined && (providerSchedulingOf(account)?.cancellable ?? false);
    if (canCancel) cancellable += scheduled;
    else notCancellable += scheduled;
  }
  if (cancellable > 0) {
    await context.queues.control.add(
      jobs.cancelScheduled.name,
      { campaignId: id },
      { ...jobs.cancelScheduled.options, jobId: `cancel-scheduled-${id}` },
    );
  }
  const result = {
    campaign,
    cancelled: cancelled.rowCount ?? 0,
    alreadyHandedOver: handed + notCancellable,
    scheduledNotCancellable: notCancellable,
    cancellingAtProvider: cancellable,
  };
  context.logger.info(
    {
      campaignId: id,
      cancelled: result.cancelled,
      alreadyHandedOver: result.alreadyHandedOver,
      cancellingAtProvider: result.cancellingAtProvider,
    },
    'campaign cancelled',
  );
  return result;
}

/**
 * SCHEDULED campaigns whose time has come → RUNNING, handed to the planner. Run by the sweeper.
 * A start missed by more than the campaign's maximum lateness (the workers were down) does not
 * send a promotion days late by surprise: its messages without a time of their own expire as
 * "missed its send time"; reminders with their own times are judged one by one as usual.
 */
export async function startDueCampaigns(context: AppContext): Promise<number> {
  const now = context.clock.now();
  const started = await context.db.pool.query<{
    id: string;
    scheduled_at: Date;
    max_lateness_ms: number | null;
  }>(
    `UPDATE campaign SET status = 'RUNNING', started_at = $1, updated_at = $1
     WHERE status = 'SCHEDULED' AND scheduled_at <= $1
     RETURNING id, scheduled_at, max_lateness_ms`,
    [now],
  );
  for (const row of started.rows) {
    const maxLatenessMs = row.max_lateness_ms ?? context.config.maxLatenessMs;
    if (isTooLate(row.scheduled_at, now, maxLatenessMs)) {
      const expired = await context.db.pool.query(
        `UPDATE message SET status = 'EXPIRED', error_code = 'MISSED_SEND_TIME', error_message = $3,
           updated_at = $2
         WHERE campaign_id = $1 AND status = 'PENDING' AND due_at IS NULL`,
        [
          row.id,
          now,
          `missed its send time: the campaign was to start at ${row.scheduled_at.toISOString()} and ` +
            `only started at ${now.toISOString()}, beyond the maximum lateness of ${formatDuration(maxLatenessMs)}`,
        ],
      );
      context.logger.warn(
        { campaignId: row.id, expired: expired.rowCount, scheduledAt: row.scheduled_at },
        'scheduled campaign started too late; its messages expired instead of going out late',
      );
    }
    await enqueuePlan(context, row.id);
    context.logger.info({ campaignId: row.id }, 'scheduled campaign started');
  }
  return started.rows.length;
}

/** Jobs again for the campaign's QUEUED messages, each on the queue of the account it is routed to. */
async function requeueQueued(context: AppContext, campaign: Campaign): Promise<void> {
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const { rows } = await context.db.pool.query<{
      id: string;
      due_at: Date | null;
      route: string;
    }>(
      `SELECT id, due_at, COALESCE(route_account, $4) AS route FROM message
       WHERE campaign_id = $1 AND status = 'QUEUED' AND id > $2 ORDER BY id LIMIT $3`,
      [campaign.id, after, REQUEUE_PAGE, campaign.accountName],
    );
    if (rows.length === 0) return;
    const now = context.clock.now().getTime();
    await context.queues.addSends(
      rows.map((row) => ({
        account: row.route,
        messageId: row.id,
        campaignId: campaign.id,
        delayMs: row.due_at ? row.due_at.getTime() - now : 0,
      })),
    );
    after = rows[rows.length - 1]!.id;
  }
}
