import {
  AccountError,
  AmbiguousSendError,
  PermanentSendError,
  RateLimitedError,
  RetryableSendError,
  type ProviderError,
} from '../errors.js';
import { retryAfterMs, type HttpResponse } from '../http-client.js';

/**
 * Exponential backoff for rate limits Telstra answers without a Retry-After (v2 429, v2 403
 * SpikeArrest, v3 429 without the header): 1 s, 2 s, 4 s … capped at a minute, reset by the
 * next success.
 */
export class Backoff {
  private streak = 0;

  next(): number {
    const ms = Math.min(60_000, 1_000 * 2 ** this.streak);
    this.streak = Math.min(this.streak + 1, 16);
    return ms;
  }

  reset(): void {
    this.streak = 0;
  }
}

/** Code and text of a Telstra error body: v2 `{status, code, message}`, v3 `{errors:[…]}`. */
export function errorDetails(response: HttpResponse): {
  code: string | undefined;
  message: string;
  field: string | undefined;
} {
  const body = response.json() as
    | {
        code?: unknown;
        message?: unknown;
        errors?: Array<{ code?: unknown; issue?: unknown; field?: unknown }>;
      }
    | undefined;
  const first = Array.isArray(body?.errors) ? body.errors[0] : undefined;
  const code =
    typeof first?.code === 'string'
      ? first.code
      : typeof body?.code === 'string'
        ? body.code
        : undefined;
  const message =
    typeof first?.issue === 'string'
      ? first.issue
      : typeof body?.message === 'string'
        ? body.message
        : // v2 often answers with plain text, or nothing: keep a little of it for operators.
          response.text.slice(0, 200) || `HTTP ${response.status}`;
  const field = typeof first?.field === 'string' ? first.field : undefined;
  return { code, message, field };
}

// 400 codes that are about the message (its number or body): it can never go as it is.
const V2_MESSAGE_REFUSALS = new Set([
  'TO-MSISDN-NOT-VALID',
  'TO-MSISDN-TOO-LONG',
  'BODY-TOO-LONG',
  'BODY-MISSING',
  'BODY-NOT-VALID',
  'DELIVERY-IMPOSSIBLE',
  'FREE-TRIAL-INVALID-BNUM',
  'TOO MANY DESTINATIONS',
]);

// 400 codes that are about the account or its sender: no message can go until an operator acts.
// FROM-MSISDN-TOO-LONG and SENDER-MISSING are listed as per-message in FACTS §1.6, but the `from`
// is the account's sender, so every message would fail the same way: we pause the account.
const V2_ACCOUNT_PROBLEMS = new Set([
  'NOT-PROVISIONED',
  'TECH-ERR',
  'FROM-MSISDN-TOO-LONG',
  'SENDER-MISSING',
  'FREE-TRIAL-NO-BNUM',
]);

/**
 * Whether a v2 400 is about one message (so, in a /multi batch, the other messages may be fine and
 * are worth sending one by one to find out).
 */
export function isV2MessageRefusal(error: ProviderError): boolean {
  return error instanceof PermanentSendError && error.finalStatus === 'REJECTED';
}

/**
 * Telstra v2 (FACTS §1.6) failure → exactly one typed outcome. 401 never gets here (the adapter
 * renews the token and retries once; a second 401 is an AccountError).
 */
export function classifyV2Failure(response: HttpResponse, backoff: Backoff): ProviderError {
  const { code, message } = errorDetails(response);
  const status = response.status;
  const label = code ?? `HTTP_${status}`;
  const text = `${code ?? ''} ${message}`;
  if (status === 400) {
    if (/invalid 'from' address/i.test(text))
      return new AccountError('INVALID-FROM-ADDRESS', message);
    if (code && V2_ACCOUNT_PROBLEMS.has(code)) return new AccountError(code, message);
    if (code && V2_MESSAGE_REFUSALS.has(code))
      return new PermanentSendError(code, message, 'REJECTED');
    if (/suspicious content/i.test(text))
      return new PermanentSendError('SUSPICIOUS-CONTENT', message, 'REJECTED');
    // DR-NOTIFY-URL-MISSING and anything undocumented: a request Telstra will never take as is.
    return new PermanentSendError(label, message, 'FAILED');
  }
  if (status === 401)
    return new AccountError('UNAUTHORIZED', 'Telstra refused a freshly issued token');
  if (status === 403) {
    if (/MSG_Monetization_ERR/i.test(text))
      return new AccountError('MSG_Monetization_ERR', message);
    if (/SpikeArrest/i.test(text)) {
      // SpikeArrest (A): the free-trial quota is used up — the account cannot send.
      if (/quota|free trial|upgrade/i.test(message))
        return new AccountError('SpikeArrest', message);
      // SpikeArrest (B), or unspecified: too many concurrent calls — slow down, nothing was sent.
      return new RateLimitedError('SpikeArrest', message, backoff.next());
    }
    // "accepted but account does not have permission".
    return new AccountError(label === 'HTTP_403' ? 'FORBIDDEN' : label, message);
  }
  if (status === 404) {
    if (code === 'TO-MSISDN-NOT-VALID') return new PermanentSendError(code, message, 'REJECTED');
    // RESOURCE-NOT-FOUND: the number's subscription expired (re-provision), or a wrong URL.
    return new AccountError(code ?? 'RESOURCE-NOT-FOUND', message);
  }
  if (status === 429) {
    return new RateLimitedError(label, message, retryAfterMs(response.headers) ?? backoff.next());
  }
  return classifyCommon(status, label, message);
}

const V3_ACCOUNT_CODES = new Set([
  'SENDERNAME_ERR',
  'ACCOUNT_ERR',
  'ACCOUNT_NOT_LINKED',
  'ACCOUNT_LIMIT_ERROR',
  'RESOURCE_AUTH_ERR',
  'INSUFFICIENT_SCOPE',
  'RESOURCE_NOT_FOUND',
]);

/** Telstra v3 failure (spec tables per status, FACTS §1.8) → exactly one typed outcome. */
export function classifyV3Failure(response: HttpResponse, backoff: Backoff): ProviderError {
  const { code, message, field } = errorDetails(response);
  const status = response.status;
  const label = code ?? `HTTP_${status}`;
  if (status === 429) {
    return new RateLimitedError(label, message, retryAfterMs(response.headers) ?? backoff.next());
  }
  if (code && V3_ACCOUNT_CODES.has(code)) return new AccountError(code, message);
  if (status === 400) {
    // A bad `from` is the account's sender: every message would fail the same way.
    if (field === 'from') return new AccountError(label, message);
    if (code === 'TAGS_ERR') return new PermanentSendError(code, message, 'FAILED');
    // RECIPIENT_OPTOUT, MODERATION_ERR, FIELD_INVALID/LENGTH/MISSING on `to` or the content…
    return new PermanentSendError(label, message, 'REJECTED');
  }
  if (status === 401) return new AccountError(label, 'Telstra refused a freshly issued token');
  if (status === 402) {
    // FREE_TRIAL_INTERNATIONAL_ERR: this destination only; the others are account-wide.
    if (code === 'FREE_TRIAL_INTERNATIONAL_ERR')
      return new PermanentSendError(code, message, 'REJECTED');
    return new AccountError(label, message);
  }
  if (status === 403) return new AccountError(label, message);
  if (status === 404) {
    // RESOURCE_TEMP_ERR: "an active incident is causing a temporary issue" — refused, retry later.
    if (code === 'RESOURCE_TEMP_ERR') return new RetryableSendError(code, message);
    return new AccountError(label, message);
  }
  if (status === 500 && code === 'INTERNAL_TIMEOUT') {
    // Timed out inside Telstra: it may have queued the message. No idempotency key exists, so
    // this is the worker's at-most-once / at-least-once decision, not ours.
    return new AmbiguousSendError(code, message);
  }
  return classifyCommon(status, label, message);
}

/**
 * Statuses with the same meaning in both versions. 5xx: Telstra has no idempotency key, so a
 * retry is safe only where the answer says the request was not routed. 500 (v2 "Unable to route
 * the message to a Target Endpoint", v3 INTERNAL_SERVER_ERR / NETWORK_ERR "try again") and 503
 * ("currently unavailable") are refusals at the gateway: retry with backoff (FACTS §1.6). 502,
 * 504 and other 5xx come from a gateway that may have forwarded the request: ambiguous.
 */
function classifyCommon(status: number, label: string, message: string): ProviderError {
  if (status === 500 || status === 503) return new RetryableSendError(label, message);
  if (status >= 500 && status !== 501) return new AmbiguousSendError(label, message);
  // 405, 413, 415, 422, 501 and anything else: a request Telstra will never accept as it is.
  return new PermanentSendError(label, message, 'FAILED');
}
