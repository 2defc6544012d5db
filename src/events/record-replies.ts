import { maskPhone } from '../messages/phone.js';
import type { InboundReply } from '../providers/types.js';
import type { AppContext } from '../runtime/context.js';
import { addSuppressions } from '../suppressions/suppressions.js';
import { isOptOutReply, optOutPhone } from './opt-outs.js';

/** Suppression reason for a number that replied with an opt-out keyword. */
export const STOP_REPLY_REASON = 'STOP reply';

/**
 * Stores recipients' replies, linked to the message and campaign they answer where the provider
 * gives us that link (our id, or the provider's id of the original send). Duplicates are kept once.
 *
 * A reply that is an opt-out keyword (HERALD_OPT_OUT_KEYWORDS) puts its sender on the suppression
 * list first, before the reply is stored and so before the webhook is answered: if anything fails
 * the provider retries the callback and the opt-out is not lost. Adding a number twice is a no-op,
 * so a duplicate callback does no harm.
 */
export async function recordReplies(
  context: AppContext,
  accountName: string,
  replies: InboundReply[],
): Promise<number> {
  if (replies.length === 0) return 0;
  await suppressOptOuts(context, accountName, replies);
  const result = await context.db.pool.query(
    `INSERT INTO inbound_message
       (account_name, from_phone, to_address, body, provider_message_id, message_id, campaign_id, occurred_at, dedupe_key)
     SELECT $1, r.from_phone, r.to_address, r.body, r.provider_message_id, m.id, m.campaign_id, r.occurred_at, r.dedupe_key
     FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::text[], $8::timestamptz[], $9::text[])
       AS r(from_phone, to_address, body, provider_message_id, in_reply_to, in_reply_to_provider_id, occurred_at, dedupe_key)
     LEFT JOIN LATERAL (
       SELECT id, campaign_id FROM message
       WHERE id = r.in_reply_to
          OR (r.in_reply_to IS NULL AND provider_message_id = r.in_reply_to_provider_id AND account_name = $1)
       LIMIT 1
     ) m ON true
     ON CONFLICT (account_name, dedupe_key) DO NOTHING`,
    [
      accountName,
      replies.map((r) => r.from),
      replies.map((r) => r.to),
      replies.map((r) => r.body),
      replies.map((r) => r.providerMessageId ?? null),
      replies.map((r) => r.inReplyToMessageId ?? null),
      replies.map((r) => r.inReplyToProviderMessageId ?? null),
      replies.map((r) => r.occurredAt),
      replies.map(
        (r) => r.providerMessageId ?? [r.from, r.to, r.occurredAt.toISOString(), r.body].join('|'),
      ),
    ],
  );
  return result.rowCount ?? 0;
}

async function suppressOptOuts(
  context: AppContext,
  accountName: string,
  replies: InboundReply[],
): Promise<void> {
  const keywords = new Set(context.config.optOutKeywords);
  const phones = new Set<string>();
  for (const reply of replies) {
    if (!isOptOutReply(reply.body, keywords)) continue;
    const phone = optOutPhone(reply.from);
    if (phone) phones.add(phone);
    else
      context.logger.warn(
        { account: accountName },
        'opt-out reply from a sender that is not a phone number; nothing to suppress',
      );
  }
  if (phones.size === 0) return;
  const added = await addSuppressions(
    context,
    [...phones].map((phone) => ({ phone, reason: STOP_REPLY_REASON })),
  );
  context.logger.info(
    { account: accountName, phones: [...phones].map(maskPhone), added },
    'opt-out replies: numbers suppressed',
  );
}
