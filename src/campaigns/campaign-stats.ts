import type { MessageStatus } from '../generated/prisma/enums.js';
import { ALL_STATUSES, FAILURE_STATUSES } from '../messages/status.js';
import type { AppContext } from '../runtime/context.js';
import { getCampaign } from './campaign-service.js';

export interface CampaignStats {
  campaign: {
    id: string;
    name: string;
    account: string;
    /** Where its messages go while its account is down, or null (they wait). */
    fallbackAccount: string | null;
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
  /** Held by the provider until their time (SCHEDULED: native scheduling). */
  scheduledAtProvider: number;
  /** delivered ÷ (delivered + failed), or null before any final report. */
  deliveryRate: number | null;
  /**
   * While the campaign runs: messages handed over per second since it started, and the estimated
   * time left at that rate for the messages not yet sent. Null when not running or nothing is
   * sent yet. An average over the whole run, which an account's fixed rate makes a fair guess;
   * `campaign status --watch` uses its own recent rate instead.
   */
  eta: { ratePerSecond: number; remainingSeconds: number; finishesAt: Date } | null;
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
      fallbackAccount: campaign.fallbackAccount,
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
    scheduledAtProvider: counts.SCHEDULED,
    deliveryRate:
      counts.DELIVERED + failed > 0 ? counts.DELIVERED / (counts.DELIVERED + failed) : null,
    eta: estimate(context, campaign.status, campaign.startedAt, total - remaining, remaining),
  };
}

function estimate(
  context: AppContext,
  status: string,
  startedAt: Date | null,
  processed: number,
  remaining: number,
): CampaignStats['eta'] {
  if (status !== 'RUNNING' || !startedAt || processed === 0) return null;
  const now = context.clock.now();
  const elapsed = (now.getTime() - startedAt.getTime()) / 1000;
  if (elapsed <= 0) return null;
  const ratePerSecond = processed / elapsed;
  const remainingSeconds = remaining / ratePerSecond;
  return {
    ratePerSecond,
    remainingSeconds,
    finishesAt: new Date(now.getTime() + remainingSeconds * 1000),
  };
}

export interface ThroughputBucket {
  /** Start of the bucket. */
  at: Date;
  /** Messages handed to the provider in it (sent_at). */
  sent: number;
  /** Final reports in it (final_at, the provider's clock): delivered, and every failure. */
  delivered: number;
  failed: number;
}

export interface CampaignReport extends CampaignStats {
  /** Failures grouped by final status and reason code, most frequent first. */
  failuresByReason: Array<{ status: MessageStatus; code: string; count: number }>;
  segments: number;
  /**
   * Messages handed to each account (accepted by its provider, or sent with no answer yet or
   * ever: SENDING, UNKNOWN), most first: the campaign's own, and its fallback's while that was
   * down (message.account_name).
   */
  handedOverByAccount: Array<{ account: string; messages: number }>;
  /** Of those, handed to an account other than the campaign's: its fallback. */
  viaFallback: number;
  /**
   * Cost of the segments sent, where the account has a `pricePerSegment`; `estimatedTotal` adds
   * the messages not yet sent at the campaign's average segments per message so far.
   */
  cost: { currency: string; pricePerSegment: number; spent: number; estimatedTotal: number } | null;
  firstSentAt: Date | null;
  lastSentAt: Date | null;
  /** Messages handed to the provider per second between the first and last send. */
  sendRate: number | null;
  /** Sends and final reports over time, in buckets of `throughputBucketSeconds`. */
  throughput: ThroughputBucket[];
  throughputBucketSeconds: number;
  /** Replies received to this campaign's messages, and its recipients now on the suppression list. */
  replies: number;
  optedOut: number;
  /**
   * Delivery reports on the campaign's account that matched no message: still waiting to be
   * matched, and given up on after HERALD_UNMATCHED_REPORT_TTL_MS (README "Delivery guarantees").
   */
  unmatchedReports: { account: string; waiting: number; expired: number };
}

/** At most this many buckets: minute buckets for a short campaign, wider for a long one. */
const MAX_BUCKETS = 240;
const BUCKET_SIZES = [60, 300, 900, 3600, 6 * 3600, 86_400];

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
    last_final: Date | null;
    sent: string;
    segments: string | null;
  }>(
    `SELECT min(sent_at) AS first, max(sent_at) AS last, max(final_at) AS last_final,
            count(sent_at) AS sent, sum(segments) AS segments
     FROM message WHERE campaign_id = $1`,
    [campaignId],
  );
  const { first, last, last_final: lastFinal, sent, segments } = sends.rows[0]!;
  const seconds = first && last ? (last.getTime() - first.getTime()) / 1000 : 0;

  const span = first
    ? Math.max(
        last?.getTime() ?? 0,
        lastFinal?.getTime() ?? 0,
        stats.campaign.status === 'RUNNING' ? context.clock.now().getTime() : 0,
      ) - first.getTime()
    : 0;
  const bucketSeconds =
    BUCKET_SIZES.find((size) => span / 1000 / size <= MAX_BUCKETS) ?? BUCKET_SIZES.at(-1)!;
  const throughput = first ? await throughputOf(context, campaignId, first, bucketSeconds) : [];

  const byAccount = await context.db.pool.query<{ account: string; messages: string }>(
    `SELECT account_name AS account, count(*) AS messages
     FROM message WHERE campaign_id = $1 AND account_name IS NOT NULL
       AND (provider_message_id IS NOT NULL OR status IN ('SENDING', 'UNKNOWN'))
     GROUP BY account_name ORDER BY count(*) DESC, account_name`,
    [campaignId],
  );
  const handedOverByAccount = byAccount.rows.map((r) => ({
    account: r.account,
    messages: Number(r.messages),
  }));

  const extras = await context.db.pool.query<{ replies: string; opted_out: string }>(
    `SELECT (SELECT count(*) FROM inbound_message WHERE campaign_id = $1) AS replies,
            (SELECT count(*) FROM message m JOIN suppression s ON s.phone = m.phone
             WHERE m.campaign_id = $1) AS opted_out`,
    [campaignId],
  );
  const unmatched = await context.db.pool.query<{ waiting: string; expired: string }>(
    `SELECT count(*) FILTER (WHERE processed_at IS NULL) AS waiting,
            count(*) FILTER (WHERE outcome = 'EXPIRED_UNMATCHED') AS expired
     FROM delivery_event WHERE account_name = $1
       AND (processed_at IS NULL OR outcome = 'EXPIRED_UNMATCHED')`,
    [stats.campaign.account],
  );

  const account = context.config.accounts.find(stats.campaign.account);
  const segmentCount = Number(segments ?? 0);
  const sentCount = Number(sent);
  let cost: CampaignReport['cost'] = null;
  if (account?.pricePerSegment !== undefined) {
    const perMessage = sentCount > 0 ? segmentCount / sentCount : 1;
    const spent = segmentCount * account.pricePerSegment;
    cost = {
      currency: account.currency ?? 'AUD',
      pricePerSegment: account.pricePerSegment,
      spent: round(spent),
      estimatedTotal: round(spent + stats.remaining * perMessage * account.pricePerSegment),
    };
  }

  return {
    ...stats,
    failuresByReason: failures.rows.map((r) => ({
      status: r.status,
      code: r.code,
      count: Number(r.count),
    })),
    segments: segmentCount,
    handedOverByAccount,
    viaFallback: handedOverByAccount
      .filter((a) => a.account !== stats.campaign.account)
      .reduce((sum, a) => sum + a.messages, 0),
    cost,
    firstSentAt: first,
    lastSentAt: last,
    sendRate: seconds > 0 ? sentCount / seconds : null,
    throughput,
    throughputBucketSeconds: bucketSeconds,
    replies: Number(extras.rows[0]!.replies),
    optedOut: Number(extras.rows[0]!.opted_out),
    unmatchedReports: {
      account: stats.campaign.account,
      waiting: Number(unmatched.rows[0]!.waiting),
      expired: Number(unmatched.rows[0]!.expired),
    },
  };
}

/** Money to 4 decimal places: prices per segment are often fractions of a cent. */
const round = (value: number) => Math.round(value * 10_000) / 10_000;

async function throughputOf(
  context: AppContext,
  campaignId: string,
  origin: Date,
  bucketSeconds: number,
): Promise<ThroughputBucket[]> {
  // date_bin (Postgres 14+) buckets from the first send, so the first bucket is a full one.
  const { rows } = await context.db.pool.query<{
    at: Date;
    sent: string;
    delivered: string;
    failed: string;
  }>(
    `WITH b AS (
       SELECT date_bin($3::interval, sent_at, $2) AS at, 1 AS sent, 0 AS delivered, 0 AS failed
       FROM message WHERE campaign_id = $1 AND sent_at IS NOT NULL
       UNION ALL
       SELECT date_bin($3::interval, final_at, $2), 0,
              (status = 'DELIVERED')::int, (status = ANY($4::message_status[]))::int
       FROM message WHERE campaign_id = $1 AND final_at IS NOT NULL
     )
     SELECT at, sum(sent) AS sent, sum(delivered) AS delivered, sum(failed) AS failed
     FROM b GROUP BY at ORDER BY at`,
    [campaignId, origin, `${bucketSeconds} seconds`, FAILURE_STATUSES],
  );
  return rows.map((r) => ({
    at: r.at,
    sent: Number(r.sent),
    delivered: Number(r.delivered),
    failed: Number(r.failed),
  }));
}
