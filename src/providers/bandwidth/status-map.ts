import type { MessageStatus } from '../../generated/prisma/enums.js';

/**
 * Bandwidth Messaging v2 status words and error codes → Herald's statuses (FACTS.md §4.3; the
 * grouping of codes is our judgement from Bandwidth's error-code tables).
 */

/** Callback `type` → status; `message-failed` is classified by its `errorCode` instead. */
export const CALLBACK_STATUS: Record<string, MessageStatus> = {
  'message-sending': 'QUEUED',
  'message-sent': 'SENT',
  'message-delivered': 'DELIVERED',
  'message-read': 'DELIVERED',
};

/** List (`GET /users/{accountId}/messages`) `messageStatus` → status; failures by `errorCode`. */
export const LIST_STATUS: Record<string, MessageStatus> = {
  ACCEPTED: 'QUEUED',
  QUEUED: 'QUEUED',
  SENDING: 'QUEUED',
  SENT: 'SENT',
  DELIVERED: 'DELIVERED',
};

const REJECTED = new Set([4403, 4421, 4470, 4750, 4751, 4752, 4753, 4770, 4775]);
const UNDELIVERABLE = new Set([
  4301, 4302, 4303, 4350, 4404, 4405, 4406, 4407, 4408, 4702, 4720, 4721, 4730,
]);

type FinalStatus = Extract<
  MessageStatus,
  'FAILED' | 'EXPIRED' | 'REJECTED' | 'UNDELIVERABLE' | 'UNKNOWN'
>;

/**
 * How a failed message ended, from Bandwidth's error code:
 * 4360 expiration passed → EXPIRED; 9902 delivery receipt timed out → UNKNOWN; spam, opt-out
 * (4775), blocked and carrier/handset rejections → REJECTED; invalid, unallocated, deactivated,
 * unreachable numbers and no route → UNDELIVERABLE; everything else (service and media problems,
 * volumetric limits 4780–4785, Bandwidth/carrier 5xxx, 9999, unknown codes) → FAILED.
 */
export function classifyErrorCode(
  code: number | undefined,
  fallback: FinalStatus = 'FAILED',
): FinalStatus {
  if (code === undefined) return fallback;
  if (code === 4360) return 'EXPIRED';
  if (code === 9902) return 'UNKNOWN';
  if (REJECTED.has(code) || (code >= 4431 && code <= 4434) || (code >= 4481 && code <= 4493))
    return 'REJECTED';
  if (UNDELIVERABLE.has(code)) return 'UNDELIVERABLE';
  return 'FAILED';
}
