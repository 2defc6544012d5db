import type { MessageStatus } from '../generated/prisma/enums.js';
import { ALL_STATUSES, FAILURE_STATUSES } from '../messages/status.js';
import type { AppContext } from '../runtime/context.js';
import { getCampaign } from './campaign-service.js';

export interface CampaignStats {
  campaign: {
    id: string;
    name: string;
    account: string;
    status: string;
    createdAt: Date;
    startedAt: Date | null;
    completedAt: Date | null;
  };
  total: number;
  counts: Record<MessageStatus, number>;
  /** Not yet sent: PENDING + QUEUED + SENDING. */
  remaining: number;
  /** Done sending, whatever the outcome: total − remaining. */
  processed: number;
  delivered: number;
  /** FAILED + EXPIRED + REJECTED + UNDELIVERABLE. */
  failed: number;
  /** Accepted by the provider, final report not yet in (SENT). */
  awaitingReport: number;
  /** delivered ÷ (delivered + failed), or null before any final report. */
  deliveryRate: number | null;
}

/** Live numbers from the trigger-maintained counters: cheap enough to poll every second. */
export async function getCampaignStats(
  context: AppContext,
  campaignId: string,
): Promise<CampaignStats> {
  const campaign = await getCampaign(context, campaignId);
  const { rows } = await context.db.pool.query<{ status: MessageStatus; count: string }>(
    'SELECT status, sum(count) AS count FROM campaign_counter WHERE campaign_id = $1 GROUP BY status',
    [campaignId],
  );
  const counts = Object.fromEntries(ALL_STATUSES.map((s) => [s, 0])) as Record<
    MessageStatus,
    number
  >;
  for (const row of rows) counts[row.status] = Number(row.count);
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const remaining = counts.PENDING + counts.QUEUED + counts.SENDING;
  const failed = FAILURE_STATUSES.reduce((sum, s) => sum + counts[s], 0);
  return {
    campaign: {
      id: campaign.id,
      name: campaign.name,
      account: campaign.accountName,
      status: campaign.status,
      createdAt: campaign.createdAt,
      startedAt: campaign.startedAt,
      completedAt: campaign.completedAt,
    },
    total,
    counts,
    remaining,
    processed: total - remaining,
    delivered: counts.DELIVERED,
    failed,
    awaitingReport: counts.SENT,
    deliveryRate:
      counts.DELIVERED + failed > 0 ? counts.DELIVERED / (counts.DELIVERED + failed) : null,
  };
}

export interface CampaignReport extends CampaignStats {
  /** Failures grouped by final status and reason code, most frequent first. */
  failuresByReason: Array<{ status: MessageStatus; code: string; count: number }>;
  segments: number;
  firstSentAt: Date | null;
  lastSentAt: Date | null;
  /** Messages handed to the provider per second between the first and last send. */
  sendRate: number | null;
}

/** The final (or current) report: stats plus the aggregates that need a scan of the messages. */
export async function getCampaignReport(
  context: AppContext,
  campaignId: string,
): Promise<CampaignReport> {
  const stats = await getCampaignStats(context, campaignId);
  const failures = await context.db.pool.query<{
    status: MessageStatus;
    code: string;
    count: string;
  }>(
    `SELECT status, COALESCE(error_code, 'UNSPECIFIED') AS code, count(*) AS count
     FROM message WHERE campaign_id = $1 AND status = ANY($2::message_status[])
     GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 50`,
    [campaignId, [...FAILURE_STATUSES, 'UNKNOWN', 'SUPPRESSED']],
  );
  const sends = await context.db.pool.query<{
    first: Date | null;
    last: Date | null;
    sent: string;
    segments: string | null;
  }>(
    `SELECT min(sent_at) AS first, max(sent_at) AS last, count(sent_at) AS sent, sum(segments) AS segments
     FROM message WHERE campaign_id = $1`,
    [campaignId],
  );
  const { first, last, sent, segments } = sends.rows[0]!;
  const seconds = first && last ? (last.getTime() - first.getTime()) / 1000 : 0;
  return {
    ...stats,
    failuresByReason: failures.rows.map((r) => ({
      status: r.status,
      code: r.code,
      count: Number(r.count),
    })),
    segments: Number(segments ?? 0),
    firstSentAt: first,
    lastSentAt: last,
    sendRate: seconds > 0 ? Number(sent) / seconds : null,
  };
}
