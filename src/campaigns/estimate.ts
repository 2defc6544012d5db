import type { AppContext } from '../runtime/context.js';
import { getCampaign } from './campaign-service.js';

export interface CampaignEstimate {
  /** Messages still to send. */
  messages: number;
  /** SMS segments they make (GSM-7 or UCS-2, counted at import). */
  segments: number;
  /** Messages of more than one segment. */
  multipart: number;
  pricePerSegment: number | null;
  /** segments × pricePerSegment, when the account has a price. */
  cost: number | null;
  currency: string | null;
}

/** What starting the campaign would send and cost, before it starts. */
export async function estimateCampaign(
  context: AppContext,
  campaignId: string,
): Promise<CampaignEstimate> {
  const campaign = await getCampaign(context, campaignId);
  const account = context.config.accounts.get(campaign.accountName);
  const { rows } = await context.db.pool.query<{
    messages: string;
    segments: string | null;
    multipart: string;
  }>(
    `SELECT count(*) AS messages, sum(segments) AS segments, count(*) FILTER (WHERE segments > 1) AS multipart
     FROM message WHERE campaign_id = $1 AND status IN ('PENDING', 'QUEUED')`,
    [campaignId],
  );
  const segments = Number(rows[0]!.segments ?? 0);
  const price = account.pricePerSegment ?? null;
  return {
    messages: Number(rows[0]!.messages),
    segments,
    multipart: Number(rows[0]!.multipart),
    pricePerSegment: price,
    cost: price === null ? null : Math.round(segments * price * 100) / 100,
    currency: price === null ? null : (account.currency ?? 'AUD'),
  };
}
