import { parse as parseQueryString } from 'node:querystring';
import { z } from 'zod';
import { ConfigError } from '../../errors.js';
import {
  AccountError,
  AmbiguousSendError,
  PermanentSendError,
  RateLimitedError,
  RetryableSendError,
  WebhookAuthError,
  WebhookPayloadError,
  type ProviderError,
} from '../errors.js';
import { ProviderHttpClient, retryAfterMs, type HttpResponse } from '../http-client.js';
import { sendAtRefusal } from '../native-scheduling.js';
import type {
  OutboundSms,
  ProviderAdapter,
  ProviderContext,
  ProviderDefinition,
  SendResult,
  StatusReport,
  WebhookRequest,
  WebhookResult,
} from '../types.js';
import { basicAuthorization, hasBasicCredentials } from '../basic-auth.js';
import { textLength } from '../../messages/segments.js';
import { ourMessageId } from '../our-message-id.js';
import { catapultStatus } from './status-map.js';

/**
 * Bandwidth "Catapult" API v1 (legacy; `https://api.catapult.inetwork.com/v1`), FACTS.md §5.
 * Bandwidth never published a machine-readable definition of it; this follows its prose docs.
 *
 * - Send: `POST /v1/users/{userId}/messages` with one message → 201 + `Location`, or a JSON array
 *   of up to 50 → 202 with one result per item, in order. Our message id travels as `tag`.
 * - Auth: Basic `apiToken:apiSecret`.
 * - Reports: per-message `callbackUrl` (this account's webhook URL, with `callbackUsername`/
 *   `callbackPassword` embedded as URL credentials when configured, then required as Basic auth).
 * - Polling: `GET /v1/users/{userId}/messages/{id}`.
 */

export const MAX_BATCH = 50;
export const MAX_TEXT_LENGTH = 2048;

// 400 message-delay-limit (the account's send queue is full) carries no wait: back off 10 s,
// doubling while it stays full, up to 2 minutes.
const QUEUE_FULL_BACKOFF_MS = 10_000;
const QUEUE_FULL_BACKOFF_MAX_MS = 120_000;
// 403 message-rate-limit: "You can send N messages per M seconds"; wait M seconds (at least 1).
const RATE_LIMIT_DEFAULT_MS = 1_000;

export const catapultOptionsSchema = z.strictObject({
  /** Catapult user id, `u-…` (the `{userId}` in every path). */
  userId: z.string().regex(/^u-[A-Za-z0-9]+$/, 'must be a Catapult user id (u-…)'),
});

const errorSchema = z.object({
  category: z.string().optional(),
  code: z.string().optional(),
  message: z.string().optional(),
});

const batchResultSchema = z.array(
  z.union([
    z.object({ result: z.literal('accepted'), location: z.string().min(1) }),
    z.object({ result: z.literal('error'), error: errorSchema }),
  ]),
);

const numericCode = z.union([z.number().int(), z.string().regex(/^\d+$/).transform(Number)]);
const timestamp = z.string().refine((value) => !Number.isNaN(Date.parse(value)), 'not a date-time');

const smsEventSchema = z.object({
  eventType: z.string().min(1),
  direction: z.enum(['in', 'out']),
  messageId: z.string().min(1),
  from: z.string().optional(),
  to: z.string().optional(),
  text: z.string().optional().nullable(),
  time: timestamp,
  state: z.string().min(1),
  deliveryState: z.string().optional().nullable(),
  deliveryCode: numericCode.optional().nullable(),
  deliveryDescription: z.string().optional().nullable(),
  tag: z.string().optional().nullable(),
});

const messageResourceSchema = z.object({
  id: z.string().min(1),
  direction: z.string().optional(),
  state: z.string().min(1),
  deliveryState: z.string().optional().nullable(),
  deliveryCode: numericCode.optional().nullable(),
  deliveryDescription: z.string().optional().nullable(),
  tag: z.string().optional().nullable(),
});

export class CatapultProvider implements ProviderAdapter {
  readonly maxBatchSize = MAX_BATCH;
  private readonly http: ProviderHttpClient;
  private readonly authorization: string;
  private readonly sender: string;
  private readonly messagesPath: string;
  private readonly callbackUrl: string;
  private readonly callbackCredentials: { user: string; password: string } | undefined;
  private queueFullStreak = 0;
  private pollBlockedUntil = 0;

  constructor(private readonly context: ProviderContext) {
    const { account } = context;
    const where = `account ${account.name} (catapult)`;
    const parsed = catapultOptionsSchema.safeParse(account.options);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ConfigError(`${where}: options.${issue.path.join('.')}: ${issue.message}`);
    }
    if (!account.sender)
      throw new ConfigError(`${where}: "sender" is required (one of your Catapult numbers, E.164)`);
    this.sender = account.sender;
    const { apiToken, apiSecret, callbackUsername, callbackPassword } = account.credentials;
    if (!apiToken || !apiSecret)
      throw new ConfigError(`${where}: credentials apiToken and apiSecret are required`);
    this.authorization = basicAuthorization(apiToken, apiSecret);
    if (Boolean(callbackUsername) !== Boolean(callbackPassword)) {
      throw new ConfigError(
        `${where}: credentials.callbackUsername and callbackPassword go together`,
      );
    }
    const callbackUrl = new URL(context.callbackUrl);
    if (callbackUsername && callbackPassword) {
      this.callbackCredentials = { user: callbackUsername, password: callbackPassword };
      // Catapult authenticates its callbacks with credentials embedded in the URL (URL-encoded).
      callbackUrl.username = encodeURIComponent(callbackUsername);
      callbackUrl.password = encodeURIComponent(callbackPassword);
    }
    this.callbackUrl = callbackUrl.href;
    this.http = new ProviderHttpClient({
      baseUrl: account.baseUrl,
      concurrency: account.concurrency,
    });
    this.messagesPath = `/v1/users/${encodeURIComponent(parsed.data.userId)}/messages`;
  }

  async sendBatch(messages: OutboundSms[]): Promise<SendResult[]> {
    const results: Array<SendResult | undefined> = messages.map((m) => {
      // Catapult has no scheduling field: a message with a send time would go at once.
      const unsupported = sendAtRefusal(m, undefined);
      if (unsupported) return { ok: false, error: unsupported };
      const length = textLength(m.body);
      if (length === 0)
        return {
          ok: false,
          error: new PermanentSendError('BODY_EMPTY', 'the message body is empty'),
        };
      if (length <= MAX_TEXT_LENGTH) return undefined;
      return {
        ok: false,
        error: new PermanentSendError(
          'BODY_TOO_LONG',
          `the body has ${length} characters; Catapult takes at most ${MAX_TEXT_LENGTH}`,
        ),
      };
    });
    const toSend = messages.filter((_, i) => results[i] === undefined);
    if (toSend.length > 0) {
      const sent =
        toSend.length === 1 ? [await this.sendSingle(toSend[0]!)] : await this.sendArray(toSend);
      let next = 0;
      for (let i = 0; i < results.length; i++)
        if (results[i] === undefined) results[i] = sent[next++];
    }
    return results as SendResult[];
  }

  private item(message: OutboundSms) {
    return {
      from: this.sender,
      to: message.to,
      text: message.body,
      tag: message.messageId,
      receiptRequested: 'all',
      callbackUrl: this.callbackUrl,
    };
  }

  private post(body: unknown): Promise<HttpResponse> {
    return this.http.request({
      method: 'POST',
      path: this.messagesPath,
      headers: {
        authorization: this.authorization,
        'content-type': 'application/json',
        accept: 'application/json',
      },
      body: JSON.stringify(body),
    });
  }

  private async sendSingle(message: OutboundSms): Promise<SendResult> {
    const response = await this.post(this.item(message));
    if (response.status === 201 || response.status === 202) {
      const id = idFromLocation(header(response, 'location'));
      if (!id)
        throw new AmbiguousSendError(
          'CATAPULT_NO_LOCATION',
          `Catapult answered ${response.status} without a message Location`,
        );
      this.queueFullStreak = 0;
      return { ok: true, providerMessageId: id };
    }
    const failure = this.classifyFailure(response);
    this.context.logger.debug(
      { messageId: message.messageId, status: response.status, code: failure.code },
      'catapult refused',
    );
    if (failure.kind === 'permanent') return { ok: false, error: failure };
    throw failure;
  }

  private async sendArray(messages: OutboundSms[]): Promise<SendResult[]> {
    const response = await this.post(messages.map((m) => this.item(m)));
    if (response.status !== 202 && response.status !== 201) {
      const failure = this.classifyFailure(response);
      this.context.logger.debug(
        { count: messages.length, status: response.status, code: failure.code },
        'catapult refused a batch',
      );
      throw failure;
    }
    const parsed = batchResultSchema.safeParse(response.json());
    if (!parsed.success || parsed.data.length !== messages.length) {
      // Accepted, but we cannot tell which message got which id.
      throw new AmbiguousSendError(
        'CATAPULT_BAD_RESPONSE',
        `unreadable ${response.status} batch response from Catapult`,
      );
    }
    this.queueFullStreak = 0;
    return parsed.data.map((item): SendResult => {
      if (item.result === 'accepted') {
        const id = idFromLocation(item.location);
        return id
          ? { ok: true, providerMessageId: id }
          : {
              ok: false,
              error: new AmbiguousSendError(
                'CATAPULT_NO_LOCATION',
                'accepted without a message location',
              ),
            };
      }
      return { ok: false, error: this.itemError(item.error) };
    });
  }

  /** One batch item's error: a rate limit holds the message back; anything else refuses it. */
  private itemError(error: z.infer<typeof errorSchema>): ProviderError {
    const code = error.code ?? 'CATAPULT_ITEM_ERROR';
    const message = `Catapult refused the message: ${error.message ?? code}`;
    if (error.category === 'limit' || code === 'message-delay-limit') {
      return new RateLimitedError(code, message, rateLimitWait(error.message));
    }
    return new PermanentSendError(code, message, 'FAILED');
  }

  private classifyFailure(response: HttpResponse): ProviderError {
    const parsed = errorSchema.safeParse(response.json());
    const body = parsed.success ? parsed.data : {};
    const status = response.status;
    const code = body.code ?? `HTTP_${status}`;
    const message = `Catapult answered ${status}${body.message ? `: ${body.message}` : ` ${code}`}`;
    // POST messages is throttled with 403 category "limit" (message-rate-limit…), not 429.
    if (status === 403 && (body.category === 'limit' || code.startsWith('message-rate-limit'))) {
      return new RateLimitedError(code, message, rateLimitWait(body.message));
    }
    // 400 message-delay-limit: the account's message queue is full.
    if (status === 400 && code === 'message-delay-limit') {
      this.queueFullStreak += 1;
      const wait = Math.min(
        QUEUE_FULL_BACKOFF_MS * 2 ** (this.queueFullStreak - 1),
        QUEUE_FULL_BACKOFF_MAX_MS,
      );
      return new RateLimitedError(code, message, wait);
    }
    if (status === 429)
      return new RateLimitedError(
        code,
        message,
        rateLimitResetWait(response) ?? RATE_LIMIT_DEFAULT_MS,
      );
    if (status === 401) return new AccountError(code, message);
    if (status >= 500) return new RetryableSendError(code, message);
    // 403 multi-message-limit and any other 4xx: Catapult will never take this request as it is.
    if (status >= 400) return new PermanentSendError(code, message, 'FAILED');
    return new AmbiguousSendError(code, message);
  }

  parseWebhook(request: WebhookRequest): WebhookResult {
    if (this.callbackCredentials) {
      const { user, password } = this.callbackCredentials;
      if (!hasBasicCredentials(request.headers, user, password)) {
        throw new WebhookAuthError('missing or wrong Basic credentials on a Catapult callback');
      }
    }
    // Catapult POSTs JSON by default; an application set to callbackHttpMethod GET sends the
    // same fields as query parameters.
    let body = request.body;
    if (body === undefined && request.method === 'GET') {
      const query = request.url.split('?')[1];
      if (query) body = parseQueryString(query);
    }
    if (body === undefined || body === null)
      throw new WebhookPayloadError('empty or unreadable Catapult callback');
    const parsed = smsEventSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new WebhookPayloadError(
        `not a Catapult sms event (${issue.path.join('.') || 'body'}: ${issue.message})`,
      );
    }
    const event = parsed.data;
    // Only SMS events are ours (MMS, calls and other events are acknowledged and ignored).
    if (event.eventType !== 'sms') return { reports: [], replies: [] };
    const occurredAt = new Date(event.time);
    if (event.direction === 'in') {
      if (event.state !== 'received') return { reports: [], replies: [] };
      if (!event.from) throw new WebhookPayloadError('Catapult inbound sms without "from"');
      return {
        reports: [],
        replies: [
          {
            from: event.from,
            to: event.to ?? '',
            body: event.text ?? '',
            providerMessageId: event.messageId,
            occurredAt,
          },
        ],
      };
    }
    return { reports: [toReport(event.messageId, event, occurredAt)], replies: [] };
  }

  async pollStatus(providerMessageIds: string[]): Promise<StatusReport[]> {
    const reports = await Promise.all(providerMessageIds.map((id) => this.pollOne(id)));
    return reports.filter((r): r is StatusReport => r !== undefined);
  }

  private async pollOne(id: string): Promise<StatusReport | undefined> {
    if (Date.now() < this.pollBlockedUntil) return undefined;
    let response: HttpResponse;
    try {
      response = await this.http.request({
        method: 'GET',
        path: `${this.messagesPath}/${encodeURIComponent(id)}`,
        headers: { authorization: this.authorization, accept: 'application/json' },
      });
    } catch (error) {
      this.context.logger.warn(
        { providerMessageId: id, code: (error as ProviderError).code },
        'catapult poll failed',
      );
      return undefined;
    }
    if (response.status === 429) {
      const wait = rateLimitResetWait(response) ?? 60_000;
      this.pollBlockedUntil = Date.now() + wait;
      this.context.logger.warn({ waitMs: wait }, 'catapult polling rate-limited');
      return undefined;
    }
    if (response.status !== 200) {
      if (response.status !== 404)
        this.context.logger.warn(
          { providerMessageId: id, status: response.status },
          'catapult poll refused',
        );
      return undefined;
    }
    const parsed = messageResourceSchema.safeParse(response.json());
    if (!parsed.success || parsed.data.direction === 'in') return undefined;
    return toReport(id, parsed.data, new Date());
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

function toReport(
  providerMessageId: string,
  event: {
    state: string;
    deliveryState?: string | null;
    deliveryCode?: number | null;
    deliveryDescription?: string | null;
    tag?: string | null;
  },
  occurredAt: Date,
): StatusReport {
  const deliveryState = event.deliveryState ?? undefined;
  const code = event.deliveryCode ?? undefined;
  return {
    messageId: ourMessageId(event.tag),
    providerMessageId,
    providerStatus: deliveryState ? `${event.state}/${deliveryState}` : event.state,
    status: catapultStatus(event.state, deliveryState, code),
    errorCode: code !== undefined && code !== 0 ? String(code) : undefined,
    description: event.deliveryDescription ?? undefined,
    occurredAt,
  };
}

function header(response: HttpResponse, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The message id: the last path segment of `…/messages/{id}`. */
function idFromLocation(location: string | undefined): string | undefined {
  if (!location) return undefined;
  const path = location.split('?')[0]!.replace(/\/+$/, '');
  const id = decodeURIComponent(path.slice(path.lastIndexOf('/') + 1));
  return id.length > 0 ? id : undefined;
}

/** "You can send N messages per M seconds" → M seconds (at least one second). */
function rateLimitWait(message: string | undefined): number {
  const match = /per\s+(\d+(?:\.\d+)?)\s*second/i.exec(message ?? '');
  return match ? Math.max(RATE_LIMIT_DEFAULT_MS, Number(match[1]) * 1000) : RATE_LIMIT_DEFAULT_MS;
}

/** `X-RateLimit-Reset` (epoch milliseconds) → how long until then; else Retry-After. */
function rateLimitResetWait(response: HttpResponse, now = Date.now()): number | undefined {
  const reset = Number(header(response, 'x-ratelimit-reset'));
  if (Number.isFinite(reset) && reset > 0) return Math.max(0, reset - now);
  return retryAfterMs(response.headers, now);
}

export const catapultProvider: ProviderDefinition = {
  type: 'catapult',
  maxBodyChars: () => MAX_TEXT_LENGTH,
  defaultBaseUrl: 'https://api.catapult.inetwork.com',
  credentialKeys: ['apiToken', 'apiSecret'],
  optionalCredentialKeys: ['callbackUsername', 'callbackPassword'],
  optionsSchema: catapultOptionsSchema,
  create: (context) => new CatapultProvider(context),
};
