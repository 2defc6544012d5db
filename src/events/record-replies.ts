import type { InboundReply } from '../providers/types.js';
import type { AppContext } from '../runtime/context.js';

/**
 * Stores recipients' replies, linked to the message and campaign they answer where the provider
 * gives us that link (our id, or the provider's id of the original send). Duplicates are kept once.
 */
export async function recordReplies(
  context: AppContext,
  accountName: string,
  replies: InboundReply[],
): Promise<number> {
  if (replies.length === 0) return 0;
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
