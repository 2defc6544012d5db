import { basicAuthorization } from '../basic-auth.js';
import { ourMessageId } from '../our-message-id.js';
import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import type { MessageStatus } from '../../generated/prisma/enums.js';
import { countSegments } from '../../messages/segments.js';
import {
  AccountError,
  AmbiguousSendError,
  PermanentSendError,
  ProviderError,
  RateLimitedError,
  RetryableSendError,
  WebhookAuthError,
  WebhookPayloadError,
} from '../errors.js';
import { ProviderHttpClient, retryAfterMs, type HttpResponse } from '../http-client.js';
import { DAY_MS, cancelFailure, sendAtRefusal } from '../native-scheduling.js';
import type {
  HealthResult,
  InboundReply,
  NativeScheduling,
  OutboundSms,
  ProviderAdapter,
  ProviderContext,
  ProviderDefinition,
  PulledEvents,
  SendResult,
  StatusReport,
  WebhookRequest,
  WebhookResult,
} from '../types.js';
import {
  hasValidSignature,
  hmacHeaders,
  parsePublicKey,
  type HmacCredentials,
} from './messagemedia-auth.js';

// Sinch MessageMedia Messages API v1 (specs/messagemedia-openapi.yaml, FACTS §3). Up to 100
// messages per request, all-or-nothing; our id travels in `metadata` and comes back on delivery
// reports and replies; reports are pushed to the per-message `callback_url`.

export const messageMediaOptionsSchema = z.object({
  /** Sent as the `Account` header: act for this sub-account. */
  subAccountId: z.string().min(1).optional(),
  /**
   * Public key (PEM, or the bare base64 `public_key` MessageMedia returns) of the enabled
   * signature key (Enterprise Webhooks). When set, every callback must carry a valid
   * X-Messagemedia-Signature.
   */
  signaturePublicKey: z.string().min(1).optional(),
  /** `source_number_type` for account.sender; inferred from its shape when absent. */
  sourceNumberType: z.enum(['INTERNATIONAL', 'ALPHANUMERIC', 'SHORTCODE']).optional(),
  /** Backoff when MessageMedia answers 429/503 without Retry-After (no rate limit is documented). */
  rateLimitBackoffMs: z.number().int().positive().default(5_000),
});
export type MessageMediaOptions = z.infer<typeof messageMediaOptionsSchema>;

export const MM_MAX_BATCH = 100;
/** `content` 1–5000 characters; `destination_number` ≤15 characters, E.164 (spec). */
export const MM_MAX_CONTENT = 5000;
/** The metadata key that carries our message id (echoed on delivery reports and replies). */
export const METADATA_KEY = 'herald_message_id';

const E164 = /^\+[1-9]\d{6,13}$/; // ≤15 characters with the +

/**
 * `scheduled` (ISO 8601, UTC) has no documented maximum. 45 days, because the spec says a message
 * can be fetched for 45 days, in the description of the very endpoint that cancels it
 * (`PUT /v1/messages/{id}`): if that counts from submission, a message held longer could no
 * longer be polled or cancelled before its time, and we promise both. Under either reading of
 * the 45 days, a message handed over at most 45 days early stays reachable until it goes.
 */
export const MM_SCHEDULING: NativeScheduling = { maxAheadMs: 45 * DAY_MS, cancellable: true };

/**
 * MessageMedia status words → ours (FACTS §3.3). queued/processed/enroute: MessageMedia holds the
 * message and has not finished with it, so SENT (handed over, awaiting a final report).
 * scheduled: held until its send time (native scheduling), so SCHEDULED, which ranks below SENT.
 */
export const MM_STATUS: Record<string, MessageStatus> = {
  queued: 'SENT',
  processed: 'SENT',
  scheduled: 'SCHEDULED',
  enroute: 'SENT',
  submitted: 'SENT',
  delivered: 'DELIVERED',
  expired: 'EXPIRED',
  rejected: 'REJECTED',
  undeliverable: 'UNDELIVERABLE',
  failed: 'FAILED',
  cancelled: 'CANCELLED',
};

const sendResponseSchema = z.object({
  messages: z.array(z.object({ message_id: z.string().min(1) }).loose()),
});

const metadataSchema = z.record(z.string(), z.unknown()).nullish();

const deliveryReportSchema = z.object({
  delivery_report_id: z.string().nullish(),
  message_id: z.string().min(1),
  status: z.string().min(1),
  error_code: z.union([z.string(), z.number()]).nullish(),
  submitted_date: z.string().nullish(),
  date_received: z.string().nullish(),
  metadata: metadataSchema,
});

const replySchema = z.object({
  reply_id: z.string().nullish(),
  message_id: z.string().nullish(),
  content: z.string(),
  source_number: z.string().min(1),
  destination_number: z.string().nullish(),
  date_received: z.string().nullish(),
  metadata: metadataSchema,
});

const messageStatusSchema = z.object({
  message_id: z.string().min(1),
  status: z.string().min(1),
  metadata: metadataSchema,
});

export class MessageMediaProvider implements ProviderAdapter {
  readonly maxBatchSize = MM_MAX_BATCH;
  private readonly http: ProviderHttpClient;
  private readonly options: MessageMediaOptions;
  private readonly basePath: string;
  private readonly hmac: HmacCredentials | undefined;
  private readonly basic: string;
  private readonly publicKey: KeyObject | undefined;

  constructor(private readonly context: ProviderContext) {
    const { account } = context;
    this.options = messageMediaOptionsSchema.parse(account.options ?? {});
    const { apiKey, apiSecret, hmacKey, hmacSecret } = account.credentials;
    this.basic = basicAuthorization(apiKey ?? '', apiSecret ?? '');
    // HMAC when its key pair is configured: the secret never crosses the wire.
    this.hmac = hmacKey && hmacSecret ? { key: hmacKey, secret: hmacSecret } : undefined;
    this.publicKey = this.options.signaturePublicKey
      ? parsePublicKey(this.options.signaturePublicKey)
      : undefined;
    this.http = new ProviderHttpClient({
      baseUrl: account.baseUrl,
      concurrency: account.concurrency,
    });
    this.basePath = new URL(account.baseUrl).pathname.replace(/\/+$/, '');
  }

  async sendBatch(messages: OutboundSms[]): Promise<SendResult[]> {
    // Refuse here what MessageMedia would refuse: one invalid message would make it reject the
    // whole batch (all-or-nothing), so it must never reach the request.
    const results: Array<SendResult | undefined> = messages.map((m) => {
      const invalid = validate(m);
      return invalid ? { ok: false, error: invalid } : undefined;
    });
    const valid = messages.map((m, i) => ({ m, i })).filter(({ i }) => results[i] === undefined);
    for (let start = 0; start < valid.length; start += MM_MAX_BATCH) {
      const chunk = valid.slice(start, start + MM_MAX_BATCH);
      const sent = await this.sendChunk(chunk.map(({ m }) => m));
      chunk.forEach(({ i }, k) => (results[i] = sent[k]));
    }
    return results as SendResult[];
  }

  /**
   * One request for up to 100 messages. A 400/422 means nothing of it was sent (all-or-nothing),
   * so instead of failing all of them for one bad message the batch is split in halves and each
   * half sent again, down to the message MessageMedia refuses; that one alone fails permanently.
   * (Pre-validation makes this rare; it costs about 2·log2(n) extra requests per bad message.)
   */
  private async sendChunk(messages: OutboundSms[]): Promise<SendResult[]> {
    let response: HttpResponse;
    try {
      response = await this.request('POST', '/v1/messages', {
        messages: messages.map((m) => ({
          content: m.body,
          destination_number: m.to,
          format: 'SMS',
          delivery_report: true,
          callback_url: this.context.callbackUrl,
          metadata: { [METADATA_KEY]: m.messageId },
          ...this.source(),
          // toISOString: ISO 8601 in UTC, as the spec asks for `scheduled`.
          ...(m.sendAt ? { scheduled: m.sendAt.toISOString() } : {}),
        })),
      });
    } catch (error) {
      return failAll(messages, error);
    }
    if (response.status === 202 || response.status === 200) {
      const parsed = sendResponseSchema.safeParse(response.json());
      if (!parsed.success || parsed.data.messages.length !== messages.length) {
        // Accepted, but we cannot tell which message got which id.
        const error = new AmbiguousSendError(
          'MM_BAD_RESPONSE',
          `unreadable ${response.status} answer to a send`,
        );
        return messages.map(() => ({ ok: false, error }));
      }
      return parsed.data.messages.map((item, k) => ({
        ok: true,
        providerMessageId: item.message_id,
        segments: countSegments(messages[k]!.body).segments,
      }));
    }
    if ((response.status === 400 || response.status === 422) && messages.length > 1) {
      this.context.logger.warn(
        { account: this.context.account.name, status: response.status, batch: messages.length },
        'MessageMedia refused a batch; splitting it to find the refused message',
      );
      const half = Math.ceil(messages.length / 2);
      const first = await this.sendChunk(messages.slice(0, half));
      const second = await this.sendChunk(messages.slice(half));
      return [...first, ...second];
    }
    return failAll(messages, this.classify(response));
  }

  private source(): { source_number?: string; source_number_type?: string } {
    const sender = this.context.account.sender;
    if (!sender) return {}; // the account's default number
    const type =
      this.options.sourceNumberType ??
      (/^\+[1-9]\d+$/.test(sender)
        ? 'INTERNATIONAL'
        : /^\d{3,8}$/.test(sender)
          ? 'SHORTCODE'
          : 'ALPHANUMERIC');
    return { source_number: sender, source_number_type: type };
  }

  private request(
    method: 'GET' | 'POST' | 'PUT',
    path: string,
    json?: unknown,
  ): Promise<HttpResponse> {
    const body = json === undefined ? undefined : JSON.stringify(json);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.options.subAccountId) headers.account = this.options.subAccountId;
    if (this.hmac)
      Object.assign(headers, hmacHeaders(this.hmac, method, this.basePath + path, body));
    else headers.authorization = this.basic;
    return this.http.request({ method, path, headers, body });
  }

  /** Every documented failure → one typed outcome (FACTS §3.5). */
  private classify(response: HttpResponse): ProviderError {
    const body = response.json() as { message?: unknown; details?: unknown } | undefined;
    const detail = [body?.message, ...(Array.isArray(body?.details) ? body.details : [])]
      .filter((x): x is string => typeof x === 'string')
      .join('; ')
      .slice(0, 300);
    const status = response.status;
    const message = `MessageMedia answered ${status}${detail ? `: ${detail}` : ''}`;
    if (status === 401) return new AccountError('MM_UNAUTHORIZED', message);
    if (status === 403) return new AccountError('MM_FORBIDDEN', message); // unauthorised or disabled feature
    if (status === 429 || status === 503) {
      return new RateLimitedError(
        `HTTP_${status}`,
        message,
        retryAfterMs(response.headers) ?? this.options.rateLimitBackoffMs,
      );
    }
    if (status >= 500) return new RetryableSendError(`HTTP_${status}`, message);
    if (status === 400 || status === 422)
      return new PermanentSendError(`MM_INVALID_REQUEST`, message, 'REJECTED');
    // A redirect or a missing endpoint: the account's baseUrl is wrong, nothing can go.
    if (status < 400 || status === 404 || status === 405) {
      return new AccountError(`HTTP_${status}`, `${message} (check the account's baseUrl)`);
    }
    return new PermanentSendError(`HTTP_${status}`, message, 'REJECTED');
  }

  parseWebhook(request: WebhookRequest): WebhookResult {
    if (this.publicKey && !hasValidSignature(this.publicKey, request)) {
      throw new WebhookAuthError('missing or invalid X-Messagemedia-Signature');
    }
    const body = request.body;
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      throw new WebhookPayloadError('MessageMedia callback body is not a JSON object');
    }
    // A reply has reply_id and content; a delivery report has delivery_report_id and status.
    if ('reply_id' in body || ('content' in body && !('status' in body))) {
      const parsed = replySchema.safeParse(body);
      if (!parsed.success) throw new WebhookPayloadError('unreadable MessageMedia reply');
      return { reports: [], replies: [this.toReply(parsed.data)] };
    }
    const parsed = deliveryReportSchema.safeParse(body);
    if (!parsed.success) throw new WebhookPayloadError('unreadable MessageMedia delivery report');
    return { replies: [], reports: [toReport(parsed.data)] };
  }

  private toReply(reply: z.infer<typeof replySchema>): InboundReply {
    return {
      from: reply.source_number,
      to: reply.destination_number ?? this.context.account.sender ?? '',
      body: reply.content,
      providerMessageId: reply.reply_id ?? undefined,
      inReplyToMessageId: ourId(reply.metadata),
      inReplyToProviderMessageId: reply.message_id ?? undefined,
      occurredAt: parseDate(reply.date_received),
    };
  }

  /**
   * The spec's check-and-confirm pattern: `GET /v1/delivery_reports` and `GET /v1/replies` each
   * return up to 100 events not yet confirmed (pushed or not); `confirm` posts their ids to
   * `…/confirmed` once Herald has stored them. An event that cannot be read is confirmed too,
   * and logged: left unconfirmed it would come back on every pass and block the page.
   */
  async pullEvents(): Promise<PulledEvents> {
    const page = async <T>(path: string, key: string, schema: z.ZodType<T>) => {
      const response = await this.request('GET', path);
      if (response.status !== 200) throw this.classify(response);
      const items = (response.json() as Record<string, unknown> | undefined)?.[key];
      const read: T[] = [];
      const ids: string[] = [];
      for (const item of Array.isArray(items) ? items : []) {
        const id = (item as Record<string, unknown>)?.[
          key === 'replies' ? 'reply_id' : 'delivery_report_id'
        ];
        if (typeof id === 'string') ids.push(id);
        const parsed = schema.safeParse(item);
        if (parsed.success) read.push(parsed.data);
        else
          this.context.logger.warn(
            { account: this.context.account.name, provider: 'messagemedia', id },
            `unreadable item in ${path}; confirming it so it does not block the rest`,
          );
      }
      return { read, ids };
    };
    const reports = await page('/v1/delivery_reports', 'delivery_reports', deliveryReportSchema);
    const replies = await page('/v1/replies', 'replies', replySchema);
    return {
      reports: reports.read.map(toReport),
      replies: replies.read.map((reply) => this.toReply(reply)),
      received: reports.ids.length + replies.ids.length,
      confirm: async () => {
        for (const [path, key, ids] of [
          ['/v1/delivery_reports/confirmed', 'delivery_report_ids', reports.ids],
          ['/v1/replies/confirmed', 'reply_ids', replies.ids],
        ] as const) {
          if (ids.length === 0) continue;
          const response = await this.request('POST', path, { [key]: ids });
          if (response.status >= 300) throw this.classify(response);
        }
      },
    };
  }

  /** `GET /v1/messages/{id}` per message (kept 45 days); unknown ids (404) are left out. */
  async pollStatus(providerMessageIds: string[]): Promise<StatusReport[]> {
    const reports = await Promise.all(
      providerMessageIds.map(async (id): Promise<StatusReport | undefined> => {
        const response = await this.request('GET', `/v1/messages/${encodeURIComponent(id)}`);
        if (response.status === 404) return undefined;
        if (response.status !== 200) throw this.classify(response);
        const parsed = messageStatusSchema.safeParse(response.json());
        if (!parsed.success) return undefined;
        return {
          messageId: ourId(parsed.data.metadata),
          providerMessageId: parsed.data.message_id,
          providerStatus: parsed.data.status,
          status: MM_STATUS[parsed.data.status] ?? 'UNKNOWN',
          occurredAt: new Date(),
        };
      }),
    );
    return reports.filter((r): r is StatusReport => r !== undefined);
  }

  /**
   * `PUT /v1/messages/{id}` `{"status":"cancelled"}`, which the spec allows only while the message
   * is `scheduled`. Our body is always the same valid one, so a 400 can only be about the message
   * (no longer scheduled); 404 is an unknown (or expired) id: neither can be cancelled.
   */
  async cancelScheduled(providerMessageId: string): Promise<'cancelled' | 'not-cancellable'> {
    const response = await this.request(
      'PUT',
      `/v1/messages/${encodeURIComponent(providerMessageId)}`,
      { status: 'cancelled' },
    );
    // The spec documents 200; a 204 says the same.
    if (response.status === 200 || response.status === 204) return 'cancelled';
    if (response.status === 400 || response.status === 404) return 'not-cancellable';
    throw cancelFailure(this.classify(response));
  }

  /**
   * MessageMedia documents no health check. This is a credential check: the read-only
   * `GET /v1/delivery_reports` (it lists unconfirmed reports and confirms nothing).
   */
  async checkHealth(): Promise<HealthResult> {
    let response: HttpResponse;
    try {
      response = await this.request('GET', '/v1/delivery_reports');
    } catch (error) {
      return { ok: false, detail: `unreachable: ${(error as Error).message}` };
    }
    if (response.status === 200)
      return { ok: true, detail: 'credentials accepted (GET /v1/delivery_reports 200)' };
    return { ok: false, detail: this.classify(response).message };
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

function toReport(report: z.infer<typeof deliveryReportSchema>): StatusReport {
  return {
    messageId: ourId(report.metadata),
    providerMessageId: report.message_id,
    providerStatus: report.status,
    status: MM_STATUS[report.status] ?? 'UNKNOWN',
    errorCode:
      report.error_code === undefined || report.error_code === null
        ? undefined
        : String(report.error_code),
    // submitted_date: "when the message status changed"; date_received: when the DR was made.
    occurredAt: parseDate(report.submitted_date ?? report.date_received),
  };
}

/** Refuses, without a request, what MessageMedia would refuse for this message (and its batch). */
function validate(message: OutboundSms): PermanentSendError | undefined {
  if (!E164.test(message.to)) {
    return new PermanentSendError(
      'INVALID_NUMBER',
      'destination is not an E.164 number of ≤15 characters',
      'FAILED',
    );
  }
  const length = [...message.body].length; // the spec's maxLength counts characters
  if (length === 0) return new PermanentSendError('EMPTY_BODY', 'message body is empty', 'FAILED');
  if (length > MM_MAX_CONTENT) {
    return new PermanentSendError(
      'BODY_TOO_LONG',
      `body exceeds ${MM_MAX_CONTENT} characters`,
      'FAILED',
    );
  }
  return sendAtRefusal(message, MM_SCHEDULING);
}

function failAll(messages: OutboundSms[], error: unknown): SendResult[] {
  if (!(error instanceof ProviderError)) throw error;
  return messages.map(() => ({ ok: false, error }));
}

function ourId(metadata: Record<string, unknown> | null | undefined): string | undefined {
  const value = metadata?.[METADATA_KEY];
  return ourMessageId(value);
}

function parseDate(text: string | null | undefined): Date {
  const time = text ? Date.parse(text) : Number.NaN;
  return Number.isNaN(time) ? new Date() : new Date(time);
}

export const messageMediaProvider: ProviderDefinition = {
  type: 'messagemedia',
  maxBodyChars: () => MM_MAX_CONTENT,
  defaultBaseUrl: 'https://api.messagemedia.com',
  credentialKeys: ['apiKey', 'apiSecret'],
  optionalCredentialKeys: ['hmacKey', 'hmacSecret'],
  optionsSchema: messageMediaOptionsSchema,
  nativeScheduling: () => MM_SCHEDULING,
  create: (context) => new MessageMediaProvider(context),
};
