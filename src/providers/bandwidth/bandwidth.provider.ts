import Bottleneck from 'bottleneck';
import { z } from 'zod';
import { ConfigError } from '../../errors.js';
import type { MessageStatus } from '../../generated/prisma/enums.js';
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
import {
  ProviderHttpClient,
  retryAfterMs,
  type HttpRequest,
  type HttpResponse,
} from '../http-client.js';
import { sendAtRefusal } from '../native-scheduling.js';
import type {
  InboundReply,
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
import { OAuthTokenSource } from './oauth-token.js';
import { CALLBACK_STATUS, LIST_STATUS, classifyErrorCode } from './status-map.js';

/**
 * Bandwidth Messaging API v2 (`https://messaging.bandwidth.com/api/v2`), FACTS.md §4.
 *
 * - Send: `POST /users/{accountId}/messages` → 202 Message. One recipient per request: several
 *   `to` numbers would make a group message, not a bulk send. Our message id travels as `tag`.
 * - Auth: HTTP Basic (`username`/`password`) or OAuth2 client credentials (`clientId`/
 *   `clientSecret`, token cached, renewed a minute before expiry, one retry after a 401).
 * - Callbacks go to the Application's OutboundCallbackUrl/InboundCallbackUrl (set by the operator
 *   to this account's webhook URL), optionally with Basic credentials we then require.
 * - Polling: `GET /users/{accountId}/messages?messageId=…`, at most 3,500 requests / 5 minutes.
 */

export const DEFAULT_TOKEN_URL = 'https://api.bandwidth.com/api/v1/oauth2/token';
/** Bandwidth's `text` limit (messageText maxLength). */
export const MAX_TEXT_LENGTH = 2048;
/** The list endpoint's documented limit: 3,500 requests per 5 minutes (per source IP). */
export const POLL_BUDGET = { requests: 3500, intervalMs: 5 * 60_000 };

// A full account queue (429 max-message-queue-size-exceeded) has no Retry-After: back off 30 s,
// doubling while it stays full, up to 5 minutes.
const QUEUE_FULL_BACKOFF_MS = 30_000;
const QUEUE_FULL_BACKOFF_MAX_MS = 5 * 60_000;
const POLL_RETRY_AFTER_DEFAULT_MS = 60_000;

export const bandwidthOptionsSchema = z.strictObject({
  /** Bandwidth account id (the `{accountId}` in every path). */
  accountId: z.string().min(1),
  /** The messaging Application the sender number belongs to; its callback URLs get our reports. */
  applicationId: z.string().min(1),
  /** OAuth2 token endpoint, used when clientId/clientSecret are given. */
  tokenUrl: z.url({ protocol: /^https?$/ }).default(DEFAULT_TOKEN_URL),
  /** Sending priority of every message of this account. */
  priority: z.enum(['default', 'high']).optional(),
});

export type BandwidthOptions = z.infer<typeof bandwidthOptionsSchema>;

const sentMessageSchema = z.object({
  id: z.string().min(1),
  segmentCount: z.number().int().positive().optional(),
});

const errorBodySchema = z.object({
  type: z.string().optional(),
  description: z.string().optional(),
  fieldErrors: z
    .array(z.object({ fieldName: z.string().optional(), description: z.string().optional() }))
    .optional(),
});

const timestamp = z.string().refine((value) => !Number.isNaN(Date.parse(value)), 'not a date-time');
const numericCode = z.union([z.number().int(), z.string().regex(/^\d+$/).transform(Number)]);

const callbackSchema = z.object({
  type: z.string().min(1),
  time: timestamp,
  to: z.string().optional(),
  description: z.string().optional(),
  errorCode: numericCode.optional().nullable(),
  message: z.object({
    id: z.string().min(1),
    owner: z.string().optional(),
    direction: z.string().optional(),
    from: z.string().optional(),
    text: z.string().optional().nullable(),
    tag: z.string().optional().nullable(),
  }),
});

type Callback = z.infer<typeof callbackSchema>;

const listSchema = z.object({
  messages: z
    .array(
      z.object({
        messageId: z.string(),
        messageStatus: z.string(),
        errorCode: numericCode.optional().nullable(),
        segmentCount: z.number().int().optional().nullable(),
      }),
    )
    .default([]),
});

type Auth = { kind: 'basic'; header: string } | { kind: 'oauth'; tokens: OAuthTokenSource };

/** Test seams; production uses the defaults. */
export interface BandwidthInternals {
  /** The polling budget (requests per interval). */
  pollBudget?: { requests: number; intervalMs: number };
}

export class BandwidthProvider implements ProviderAdapter {
  readonly maxBatchSize = 1;
  private readonly http: ProviderHttpClient;
  private readonly options: BandwidthOptions;
  private readonly sender: string;
  private readonly auth: Auth;
  private readonly callbackCredentials: { user: string; password: string } | undefined;
  private readonly pollLimiter: Bottleneck;
  private readonly messagesPath: string;
  private queueFullStreak = 0;
  private pollBlockedUntil = 0;

  constructor(
    private readonly context: ProviderContext,
    internals: BandwidthInternals = {},
  ) {
    const { account } = context;
    const where = `account ${account.name} (bandwidth)`;
    const parsed = bandwidthOptionsSchema.safeParse(account.options);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ConfigError(`${where}: options.${issue.path.join('.')}: ${issue.message}`);
    }
    this.options = parsed.data;
    if (!account.sender) {
      throw new ConfigError(
        `${where}: "sender" is required (a Bandwidth number in E.164, or an alphanumeric sender id)`,
      );
    }
    this.sender = account.sender;
    const credentials = account.credentials;
    const pair = (a: string, b: string) => {
      if (Boolean(credentials[a]) !== Boolean(credentials[b])) {
        throw new ConfigError(
          `${where}: credentials.${a} and credentials.${b} go together; give both or neither`,
        );
      }
      return Boolean(credentials[a]);
    };
    const hasOAuth = pair('clientId', 'clientSecret');
    const hasBasic = pair('username', 'password');
    if (hasOAuth) {
      this.auth = {
        kind: 'oauth',
        tokens: new OAuthTokenSource(
          this.options.tokenUrl,
          credentials.clientId!,
          credentials.clientSecret!,
        ),
      };
    } else if (hasBasic) {
      this.auth = {
        kind: 'basic',
        header: basicAuthorization(credentials.username!, credentials.password!),
      };
    } else {
      throw new ConfigError(
        `${where}: needs credentials username and password (Basic) or clientId and clientSecret (OAuth2)`,
      );
    }
    this.callbackCredentials = pair('callbackUsername', 'callbackPassword')
      ? { user: credentials.callbackUsername!, password: credentials.callbackPassword! }
      : undefined;
    this.http = new ProviderHttpClient({
      baseUrl: account.baseUrl,
      concurrency: account.concurrency,
    });
    const budget = internals.pollBudget ?? POLL_BUDGET;
    this.pollLimiter = new Bottleneck({
      maxConcurrent: account.concurrency,
      reservoir: budget.requests,
      reservoirRefreshAmount: budget.requests,
      reservoirRefreshInterval: budget.intervalMs,
    });
    this.messagesPath = `/users/${encodeURIComponent(this.options.accountId)}/messages`;
  }

  async sendBatch(messages: OutboundSms[]): Promise<SendResult[]> {
    // maxBatchSize is 1; should more come, they go one request each, in order.
    const results: SendResult[] = [];
    for (const message of messages) {
      try {
        results.push(await this.sendOne(message));
      } catch (error) {
        // The first message's failure is the request's failure; later ones keep earlier results.
        if (results.length === 0 || !(error instanceof ProviderError)) throw error;
        results.push({ ok: false, error });
      }
    }
    return results;
  }

  private async sendOne(message: OutboundSms): Promise<SendResult> {
    // Bandwidth has no scheduling field: a message with a send time would go at once.
    const unsupported = sendAtRefusal(message, undefined);
    if (unsupported) return { ok: false, error: unsupported };
    const length = textLength(message.body);
    if (length === 0) {
      return {
        ok: false,
        error: new PermanentSendError('BODY_EMPTY', 'the message body is empty'),
      };
    }
    if (length > MAX_TEXT_LENGTH) {
      return {
        ok: false,
        error: new PermanentSendError(
          'BODY_TOO_LONG',
          `the body has ${length} characters; Bandwidth takes at most ${MAX_TEXT_LENGTH}`,
        ),
      };
    }
    const response = await this.authorizedRequest({
      method: 'POST',
      path: this.messagesPath,
      headers: { 'content-type': 'application/json; charset=utf-8', accept: 'application/json' },
      body: JSON.stringify({
        applicationId: this.options.applicationId,
        to: [message.to],
        from: this.sender,
        text: message.body,
        tag: message.messageId,
        ...(this.options.priority ? { priority: this.options.priority } : {}),
      }),
    });
    if (response.status >= 200 && response.status < 300) {
      const parsed = sentMessageSchema.safeParse(response.json());
      if (!parsed.success) {
        // Accepted, but without an id we cannot follow it: the outcome is unknown.
        throw new AmbiguousSendError(
          'BANDWIDTH_BAD_RESPONSE',
          `unreadable ${response.status} response from Bandwidth`,
        );
      }
      this.queueFullStreak = 0;
      this.context.logger.debug(
        { messageId: message.messageId, providerMessageId: parsed.data.id },
        'bandwidth accepted',
      );
      return { ok: true, providerMessageId: parsed.data.id, segments: parsed.data.segmentCount };
    }
    const failure = this.classifySendFailure(response);
    this.context.logger.debug(
      { messageId: message.messageId, status: response.status, code: failure.code },
      'bandwidth refused',
    );
    if (failure instanceof PermanentSendError) return { ok: false, error: failure };
    throw failure;
  }

  private classifySendFailure(response: HttpResponse): ProviderError {
    const parsed = errorBodySchema.safeParse(response.json());
    const body = parsed.success ? parsed.data : {};
    const code = body.type ?? `HTTP_${response.status}`;
    const fields = body.fieldErrors ?? [];
    const detail = [
      body.description,
      ...fields.map((f) => `${f.fieldName ?? '?'}: ${f.description ?? ''}`),
    ]
      .filter(Boolean)
      .join('; ');
    const message = `Bandwidth answered ${response.status}${detail ? `: ${detail}` : ''}`;
    const status = response.status;
    if (status === 400) {
      // A request-validation error about our own account settings (sender, application) would
      // refuse every message alike: stop the account instead of failing the whole campaign.
      const accountFields = new Set(['from', 'applicationId']);
      if (fields.length > 0 && fields.every((f) => accountFields.has(f.fieldName ?? ''))) {
        return new AccountError(code, message);
      }
      return new PermanentSendError(code, message, 'FAILED');
    }
    // 401 (after a token renewal) / 403: the credentials or the account are refused; 404: no such
    // account id on this path.
    if (status === 401 || status === 403 || status === 404) return new AccountError(code, message);
    if (status === 429) {
      this.queueFullStreak += 1;
      const backoff = Math.min(
        QUEUE_FULL_BACKOFF_MS * 2 ** (this.queueFullStreak - 1),
        QUEUE_FULL_BACKOFF_MAX_MS,
      );
      return new RateLimitedError(code, message, retryAfterMs(response.headers) ?? backoff);
    }
    // BWD: 4xx/5xx responses are "not billed nor will the message be sent".
    if (status >= 500) return new RetryableSendError(code, message);
    // 405/406/415 and other 4xx: a request Bandwidth will never take as it is.
    if (status >= 400) return new PermanentSendError(code, message, 'FAILED');
    // 1xx/3xx: not an answer Bandwidth documents; it may have acted on the request.
    return new AmbiguousSendError(code, message);
  }

  /** Sends with the account's credentials; with OAuth, a 401 renews the token and retries once. */
  private async authorizedRequest(request: HttpRequest): Promise<HttpResponse> {
    if (this.auth.kind === 'basic') {
      return this.http.request({
        ...request,
        headers: { ...request.headers, authorization: this.auth.header },
      });
    }
    const tokens = this.auth.tokens;
    const withToken = (token: string) =>
      this.http.request({
        ...request,
        headers: { ...request.headers, authorization: `Bearer ${token}` },
      });
    const token = await tokens.get();
    const response = await withToken(token);
    if (response.status !== 401) return response;
    // A 401 means nothing was sent: renew the token and try once more.
    this.context.logger.info('bandwidth refused the OAuth token; renewing it');
    tokens.invalidate(token);
    return withToken(await tokens.get());
  }

  parseWebhook(request: WebhookRequest): WebhookResult {
    if (this.callbackCredentials) {
      const { user, password } = this.callbackCredentials;
      if (!hasBasicCredentials(request.headers, user, password)) {
        throw new WebhookAuthError('missing or wrong Basic credentials on a Bandwidth callback');
      }
    }
    if (request.body === undefined || request.body === null) {
      throw new WebhookPayloadError('empty or unreadable Bandwidth callback');
    }
    // BWALL documents one event object; BWD shows the same event wrapped in an array.
    const events: unknown[] = Array.isArray(request.body) ? request.body : [request.body];
    const result: WebhookResult = { reports: [], replies: [] };
    for (const [index, raw] of events.entries()) {
      const parsed = callbackSchema.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new WebhookPayloadError(
          `not a Bandwidth message callback (event ${index}: ${issue.path.join('.') || 'body'}: ${issue.message})`,
        );
      }
      const event = parsed.data;
      if (event.type === 'message-received') {
        const reply = this.toReply(event);
        if (reply) result.replies.push(reply);
        continue;
      }
      const report = toReport(event);
      if (report) result.reports.push(report);
      // Other types (multichannel suggestion/location responses) are not ours: acknowledged, ignored.
    }
    return result;
  }

  private toReply(event: Callback): InboundReply | undefined {
    // Our own outbound messages must never be taken for replies (reply loops).
    if (event.message.direction !== undefined && event.message.direction !== 'in') return undefined;
    if (!event.message.from)
      throw new WebhookPayloadError('Bandwidth message-received without message.from');
    return {
      from: event.message.from,
      to: event.message.owner ?? event.to ?? '',
      body: event.message.text ?? '',
      providerMessageId: event.message.id,
      occurredAt: new Date(event.time),
    };
  }

  async pollStatus(providerMessageIds: string[]): Promise<StatusReport[]> {
    if (Date.now() < this.pollBlockedUntil) return [];
    // Only as many as the budget has left now; the rest wait for a later poll rather than here.
    const left = (await this.pollLimiter.currentReservoir()) ?? providerMessageIds.length;
    const chosen = providerMessageIds.slice(0, left);
    const reports = await Promise.all(
      chosen.map((id) => this.pollLimiter.schedule(() => this.pollOne(id))),
    );
    return reports.filter((r): r is StatusReport => r !== undefined);
  }

  private async pollOne(providerMessageId: string): Promise<StatusReport | undefined> {
    if (Date.now() < this.pollBlockedUntil) return undefined;
    let response: HttpResponse;
    try {
      response = await this.authorizedRequest({
        method: 'GET',
        path: `${this.messagesPath}?messageId=${encodeURIComponent(providerMessageId)}`,
        headers: { accept: 'application/json' },
      });
    } catch (error) {
      this.context.logger.warn(
        { providerMessageId, code: (error as ProviderError).code },
        'bandwidth poll failed',
      );
      return undefined;
    }
    if (response.status === 429) {
      const wait = retryAfterMs(response.headers) ?? POLL_RETRY_AFTER_DEFAULT_MS;
      this.pollBlockedUntil = Date.now() + wait;
      this.context.logger.warn({ waitMs: wait }, 'bandwidth polling rate-limited');
      return undefined;
    }
    if (response.status !== 200) {
      this.context.logger.warn(
        { providerMessageId, status: response.status },
        'bandwidth poll refused',
      );
      return undefined;
    }
    const parsed = listSchema.safeParse(response.json());
    if (!parsed.success) {
      this.context.logger.warn({ providerMessageId }, 'unreadable bandwidth message list');
      return undefined;
    }
    const item = parsed.data.messages.find((m) => m.messageId === providerMessageId);
    if (!item) return undefined;
    const code = item.errorCode ?? undefined;
    let status: MessageStatus;
    if (item.messageStatus === 'FAILED') status = classifyErrorCode(code || undefined, 'FAILED');
    else if (item.messageStatus === 'UNDELIVERED')
      status = classifyErrorCode(code || undefined, 'UNDELIVERABLE');
    else status = LIST_STATUS[item.messageStatus] ?? 'UNKNOWN';
    return {
      providerMessageId,
      providerStatus: item.messageStatus,
      status,
      errorCode: code ? String(code) : undefined,
      occurredAt: new Date(),
    };
  }

  async close(): Promise<void> {
    await this.pollLimiter.stop({ dropWaitingJobs: true });
    await this.http.close();
    if (this.auth.kind === 'oauth') await this.auth.tokens.close();
  }
}

function toReport(event: Callback): StatusReport | undefined {
  let status: MessageStatus | undefined;
  const code = event.errorCode ?? undefined;
  if (event.type === 'message-failed') status = classifyErrorCode(code, 'FAILED');
  else status = CALLBACK_STATUS[event.type];
  if (!status) return undefined;
  return {
    messageId: ourMessageId(event.message.tag),
    providerMessageId: event.message.id,
    providerStatus: event.type,
    status,
    errorCode: code !== undefined ? String(code) : undefined,
    description: event.description,
    occurredAt: new Date(event.time),
  };
}

export const bandwidthProvider: ProviderDefinition = {
  type: 'bandwidth',
  maxBodyChars: () => MAX_TEXT_LENGTH,
  defaultBaseUrl: 'https://messaging.bandwidth.com/api/v2',
  credentialKeys: [],
  optionalCredentialKeys: [
    'username',
    'password',
    'clientId',
    'clientSecret',
    'callbackUsername',
    'callbackPassword',
  ],
  optionsSchema: bandwidthOptionsSchema,
  create: (context) => new BandwidthProvider(context),
};
