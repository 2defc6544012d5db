import type { z } from 'zod';
import type { Logger } from '../logger.js';
import type { MessageStatus } from '../generated/prisma/enums.js';
import type { Account } from '../config/accounts.js';
import type { ProviderError } from './errors.js';

/** One SMS to hand to a provider. */
export interface OutboundSms {
  /** Our message id; travels with the message wherever the provider lets it, to match reports. */
  messageId: string;
  /** E.164. Adapters convert to the provider's own format. */
  to: string;
  body: string;
  /**
   * Native scheduling: the provider holds the message and sends it at this instant. Absent: send now.
   * The worker sets it only for accounts with native scheduling, at least a minute ahead and within
   * the provider's limit; adapters check again and refuse (PermanentSendError 'SCHEDULE_OUT_OF_RANGE',
   * no request made) a time that is not in the future or is beyond their limit.
   */
  sendAt?: Date;
  /**
   * SMS segments of `body` as counted at import: a hint for the account's segment rate gate
   * (README "Rate limits and pushback"), which charges a request the sum of its messages'
   * segments. Adapters ignore it; the provider counts segments its own way. Absent: 1.
   */
  segments?: number;
}

/**
 * What an account's provider offers for holding messages until a send time, so the worker can
 * hand a message over early instead of keeping it until it is due (and can tell whether a
 * campaign cancel can still reach it there).
 */
export interface NativeScheduling {
  /** The furthest ahead a send time may be, as the provider documents it (Optus: 60 days). */
  maxAheadMs: number;
  /** True when a handed-over message can still be cancelled at the provider (the adapter has cancelScheduled). */
  cancellable: boolean;
}

/** The provider's answer for one message of a batch, in the batch's order. */
export type SendResult =
  { ok: true; providerMessageId: string; segments?: number } | { ok: false; error: ProviderError };

/** A delivery report, in our vocabulary, with the provider's own words kept beside it. */
export interface StatusReport {
  /** Our id, where the provider carried it back. */
  messageId?: string;
  providerMessageId?: string;
  providerStatus: string;
  status: MessageStatus;
  errorCode?: string;
  description?: string;
  occurredAt: Date;
}

/** A reply (mobile-originated message) from a recipient. */
export interface InboundReply {
  /** The handset that sent it, E.164 where the provider gives it so. */
  from: string;
  /** Our number or sender id that it was sent to. */
  to: string;
  body: string;
  /** The provider's id of the reply itself. */
  providerMessageId?: string;
  /** Our message id it answers, where the provider links a reply to the original send. */
  inReplyToMessageId?: string;
  /** The provider's id of the message it answers, where given. */
  inReplyToProviderMessageId?: string;
  occurredAt: Date;
}

/** An incoming webhook request, as the adapter sees it. */
export interface WebhookRequest {
  method: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON (or form fields); undefined when there was no body. */
  body: unknown;
  /** The body exactly as received, for providers that sign it. */
  rawBody: string;
  /** Path and query as received, for providers that sign or carry data in the URL. */
  url: string;
}

export interface WebhookResult {
  reports: StatusReport[];
  replies: InboundReply[];
}

/** Reports and replies a provider kept for collection, with the way to say they were stored. */
export interface PulledEvents {
  reports: StatusReport[];
  replies: InboundReply[];
  /** Items the provider returned on this page, readable or not: 0 when nothing is left. */
  received: number;
  /**
   * Tells the provider these were stored, so it stops returning them. Call it only after they are
   * durably recorded: a crash before it means they are pulled again (and kept once, by dedupe).
   */
  confirm(): Promise<void>;
}

export interface HealthResult {
  ok: boolean;
  /** What the provider said, for operators. */
  detail: string;
}

/** A provider client for one account. One small class per provider implements it. */
export interface ProviderAdapter {
  /** The most messages one request may carry (1 where the provider has no bulk send). */
  readonly maxBatchSize: number;
  /**
   * Sends a batch of at most `maxBatchSize` messages. Per-message outcomes come back in order;
   * a failure of the whole request (rate limit, outage, bad credentials) is thrown as a
   * ProviderError and applies to every message in the batch.
   */
  sendBatch(messages: OutboundSms[]): Promise<SendResult[]>;
  /**
   * Authenticates and parses a status or reply callback. Throws WebhookAuthError or
   * WebhookPayloadError. The generic signed token in the URL is checked before this is called.
   */
  parseWebhook(request: WebhookRequest): WebhookResult;
  /**
   * Asks the provider for the current status of messages it accepted, where it offers polling.
   * Returns the reports it could get (messages it does not know are left out).
   */
  pollStatus?(providerMessageIds: string[]): Promise<StatusReport[]>;
  /**
   * Collects one page of the reports and replies the provider keeps until they are confirmed
   * (MessageMedia's check-and-confirm endpoints): a second path for callbacks that never reached
   * us. Throws a ProviderError when the provider refuses or is down.
   */
  pullEvents?(): Promise<PulledEvents>;
  /**
   * Cancels one message handed over with a send time that has not come.
   * 'cancelled': it will not be sent. 'not-cancellable': the provider says it can no longer be
   * cancelled (already sent, unknown id, not scheduled). Throws a ProviderError (rate-limited,
   * retryable, account) when the request itself failed, so the caller can try again later.
   * An AmbiguousSendError means no answer came after the request was written: the message may be
   * cancelled already, and a retry may then answer 'not-cancellable'; its status (polling, reports)
   * tells which.
   */
  cancelScheduled?(providerMessageId: string): Promise<'cancelled' | 'not-cancellable'>;
  /** The provider's documented health check, where it has one. */
  checkHealth?(): Promise<HealthResult>;
  /** Releases connections. */
  close(): Promise<void>;
}

export interface ProviderContext {
  account: Account;
  /** Where this account's provider posts reports: carries an unguessable signed token. */
  callbackUrl: string;
  logger: Logger;
}

/** What the registry knows of a provider type. Adding a provider = one of these + a registry line. */
export interface ProviderDefinition {
  readonly type: string;
  readonly defaultBaseUrl: string;
  /** Credential names an account of this type must supply (each read from the environment). */
  readonly credentialKeys: readonly string[];
  /** Credential names it may supply (e.g. OAuth instead of Basic). */
  readonly optionalCredentialKeys?: readonly string[];
  /**
   * Schema of the account's `options` (provider-specific settings), checked when the accounts
   * file is loaded so a mistake is reported at boot, naming the account and the field.
   */
  readonly optionsSchema?: z.ZodType;
  /**
   * The longest message body (in characters) the provider accepts for this account, so the import
   * can reject a row whose message would be refused, before anything is sent.
   */
  maxBodyChars?(account: Account): number;
  /** Native scheduling for this account, or undefined where the provider (or this account's API version) has none. */
  nativeScheduling?(account: Account): NativeScheduling | undefined;
  create(context: ProviderContext): ProviderAdapter;
}
