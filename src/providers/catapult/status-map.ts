import type { MessageStatus } from '../../generated/prisma/enums.js';

/**
 * Catapult (Bandwidth v1) `state` / `deliveryState` / `deliveryCode` → Herald's statuses
 * (FACTS.md §5.3; the grouping is our judgement from Catapult's delivery-code table).
 */

type Final = Extract<
  MessageStatus,
  'FAILED' | 'EXPIRED' | 'REJECTED' | 'UNDELIVERABLE' | 'UNKNOWN'
>;

/**
 * 187–189 spam, 750/751/770 destination rejected, 775 opt-out → REJECTED; 700/720/740 invalid
 * service or address → UNDELIVERABLE; 902 → EXPIRED; 999 → UNKNOWN; 100 (not delivered to the
 * carrier), 482 (loop), 600–650 (carrier/destination failures) and anything else → FAILED.
 */
export function classifyDeliveryCode(code: number | undefined): Final {
  if (code === undefined || code === 0) return 'FAILED';
  if ((code >= 187 && code <= 189) || code === 750 || code === 751 || code === 770 || code === 775)
    return 'REJECTED';
  if (code === 700 || code === 720 || code === 740) return 'UNDELIVERABLE';
  if (code === 902) return 'EXPIRED';
  if (code === 999) return 'UNKNOWN';
  return 'FAILED';
}

/** Status of an outbound message from its `state`, `deliveryState` and `deliveryCode`. */
export function catapultStatus(
  state: string,
  deliveryState: string | undefined,
  code: number | undefined,
): MessageStatus {
  if (state === 'error') return classifyDeliveryCode(code);
  if (deliveryState === 'delivered') return 'DELIVERED';
  if (deliveryState === 'not-delivered') return classifyDeliveryCode(code);
  if (state === 'sent') return 'SENT';
  if (state === 'queued' || state === 'sending') return 'QUEUED';
  return 'UNKNOWN';
}
