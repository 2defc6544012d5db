import { AccountError, PermanentSendError, type ProviderError } from './errors.js';
import type { NativeScheduling, OutboundSms } from './types.js';

/** Providers state their scheduling limits in days. */
export const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Why this message's send time must not be handed to the provider, or undefined when it may (or
 * the message has none). Adapters call it before any request and fail the message with it.
 *
 * The worker keeps send times in range already; this is the adapter's own check because the cost
 * of a wrong one is high: a provider without scheduling would send at once, and one with a limit
 * refuses a time beyond it or in the past (Optus 400/422, Telstra FIELD_INVALID) or, where it
 * documents nothing, might send at once too. An invalid Date is out of range.
 */
export function sendAtRefusal(
  message: OutboundSms,
  scheduling: NativeScheduling | undefined,
  now: number = Date.now(),
): PermanentSendError | undefined {
  const { sendAt } = message;
  if (sendAt === undefined) return undefined;
  if (!scheduling) {
    return new PermanentSendError(
      'SCHEDULE_UNSUPPORTED',
      'this provider cannot hold a message until a send time',
    );
  }
  const ahead = sendAt.getTime() - now;
  if (ahead > 0 && ahead <= scheduling.maxAheadMs) return undefined;
  return new PermanentSendError(
    'SCHEDULE_OUT_OF_RANGE',
    Number.isNaN(ahead)
      ? 'the send time is not a valid date'
      : ahead <= 0
        ? `the send time ${sendAt.toISOString()} is not in the future`
        : `the send time ${sendAt.toISOString()} is more than ${scheduling.maxAheadMs / DAY_MS} days ahead`,
  );
}

/**
 * What a cancelScheduled throws for a refused cancel request. The send classifiers call an
 * answer that refuses the request itself (405, 415, 422…) permanent, which fails one message;
 * a refused cancel fails no message, and retrying it will not help until an operator fixes the
 * account or its baseUrl, so it is an AccountError. Other failures (rate limit, outage) are kept.
 */
export function cancelFailure(error: ProviderError): ProviderError {
  if (!(error instanceof PermanentSendError)) return error;
  return new AccountError(error.code, `the provider refused the cancel request: ${error.message}`, {
    cause: error,
  });
}
