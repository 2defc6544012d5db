/**
 * What went wrong with a send, as a decision the worker can act on without reading HTTP codes.
 * Adapters translate their provider's answers into exactly one of these.
 */
export abstract class ProviderError extends Error {
  abstract readonly kind: 'permanent' | 'rate-limited' | 'retryable' | 'ambiguous' | 'account';
  constructor(
    /** Stable code for reports, e.g. the provider's own error code. */
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** This message can never be sent as it is (bad number, body too long, rejected content). */
export class PermanentSendError extends ProviderError {
  override readonly name = 'PermanentSendError';
  readonly kind = 'permanent';
  constructor(
    code: string,
    message: string,
    /** How the message ends: REJECTED when the provider refused it, otherwise FAILED. */
    readonly finalStatus: 'FAILED' | 'REJECTED' | 'UNDELIVERABLE' = 'FAILED',
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** The provider asked us to slow down; nothing was sent. Pauses only this account's queue. */
export class RateLimitedError extends ProviderError {
  override readonly name = 'RateLimitedError';
  readonly kind = 'rate-limited';
  constructor(
    code: string,
    message: string,
    /** How long to wait before the next send, from Retry-After or our own backoff. */
    readonly retryAfterMs: number,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** Definitely not sent (connection refused, a 5xx the provider documents as not sent): retry. */
export class RetryableSendError extends ProviderError {
  override readonly name = 'RetryableSendError';
  readonly kind = 'retryable';
}

/** The request was written but no answer came: the provider may or may not have sent it. */
export class AmbiguousSendError extends ProviderError {
  override readonly name = 'AmbiguousSendError';
  readonly kind = 'ambiguous';
}

/** The account cannot send at all (bad credentials, not provisioned, out of credit). */
export class AccountError extends ProviderError {
  override readonly name = 'AccountError';
  readonly kind = 'account';
}

/** A webhook that is not from the provider: answered 401, changes nothing. */
export class WebhookAuthError extends Error {
  override readonly name = 'WebhookAuthError';
}

/** A webhook whose payload we cannot read: answered 400, changes nothing. */
export class WebhookPayloadError extends Error {
  override readonly name = 'WebhookPayloadError';
}
