import { z } from 'zod';
import { countSegments } from '../../messages/segments.js';
import { AccountError, AmbiguousSendError, PermanentSendError, ProviderError } from '../errors.js';
import { ProviderHttpClient, type HttpRequest, type HttpResponse } from '../http-client.js';
import { DAY_MS, cancelFailure, sendAtRefusal } from '../native-scheduling.js';
import { isUuid } from '../our-message-id.js';
import type {
  HealthResult,
  NativeScheduling,
  OutboundSms,
  ProviderAdapter,
  ProviderContext,
  ProviderDefinition,
  SendResult,
  StatusReport,
  WebhookRequest,
  WebhookResult,
} from '../types.js';
import { TelstraTokens } from './telstra-auth.js';
import {
  Backoff,
  classifyV2Failure,
  classifyV3Failure,
  errorDetails,
  isV2MessageRefusal,
} from './telstra-errors.js';
import {
  MESSAGE_ID_PARAM,
  mapTelstraStatus,
  parseTelstraWebhook,
  parseTimestamp,
} from './telstra-webhook.js';

export const TELSTRA_V3_BASE_URL = 'https://products.api.telstra.com/messaging/v3';
export const TELSTRA_V2_BASE_URL = 'https://tapi.telstra.com/v2';
const TOKEN_URLS = {
  v2: 'https://tapi.telstra.com/v2/oauth/token',
  v3: 'https://products.api.telstra.com/v2/oauth/token',
} as const;
const DEFAULT_SCOPES = { v2: 'NSMS', v3: 'messages:read messages:write' } as const;

/** v2 body limits (FACTS §1.2, our reading): 1900 characters for one recipient, 500 for several. */
export const V2_MAX_BODY_SINGLE = 1900;
export const V2_MAX_BODY_MULTI = 500;
/** v3 `messageContent` maxLength (T3). */
export const V3_MAX_BODY = 1600;
/** `/messages/sms/multi` takes at most 10 messages (T2210). */
export const V2_MULTI_MAX = 10;

/**
 * v3 `scheduleSend` (ISO 8601 in UTC): "up to 10 days into the future", else FIELD_INVALID (T3).
 * A scheduled message is deleted with `DELETE /messages/{messageId}` until it is sent.
 */
export const V3_SCHEDULING: NativeScheduling = { maxAheadMs: 10 * DAY_MS, cancellable: true };
/**
 * v2 `scheduledDelivery` is a delay in whole minutes from when Telstra receives the request, with
 * no documented maximum (T2210). We cap it at 7 days, v2's longest `validity` (how long the
 * network keeps any message): a limit Telstra applies elsewhere, rather than a guess at a larger
 * one it might refuse or silently shorten. v2 has no cancel.
 */
export const V2_SCHEDULING: NativeScheduling = { maxAheadMs: 7 * DAY_MS, cancellable: false };

export const telstraOptionsSchema = z.strictObject({
  /** API generation. v2 was decommissioned by Telstra in 2024 and its keys do not work on v3. */
  version: z.enum(['v2', 'v3']).default('v3'),
  /** OAuth token endpoint; defaults per version. */
  tokenUrl: z.url({ protocol: /^https?$/ }).optional(),
  /** OAuth scope(s), space-separated; defaults `NSMS` (v2) or `messages:read messages:write` (v3). */
  scope: z.string().min(1).optional(),
  /**
   * v2 only: send through `/messages/sms/multi` (10 per request, reports matched by Telstra's
   * messageId) rather than one `/messages/sms` per message (our id in each notifyURL).
   */
  multi: z.boolean().default(true),
});
export type TelstraOptions = z.infer<typeof telstraOptionsSchema>;

const v2MessageSchema = z.object({
  to: z.string(),
  deliveryStatus: z.string().optional(),
  messageId: z.string().min(1),
});
const v2SentSchema = z.object({
  messages: z.array(v2MessageSchema).min(1),
  numberSegments: z.number().int().optional(),
});
const uuid = z.string().refine(isUuid);
const v3SentSchema = z.object({ messageId: z.union([uuid, z.array(uuid).length(1)]) });
const v2PollSchema = z
  .array(
    z.object({
      sentTimestamp: z.string().optional(),
      receivedTimestamp: z.string().optional(),
      deliveryStatus: z.string().min(1),
    }),
  )
  .min(1);
const v3PollSchema = z.object({
  status: z.string().min(1),
  createTimestamp: z.string().optional(),
  sentTimestamp: z.string().optional(),
  receivedTimestamp: z.string().optional(),
});

/**
 * Telstra Messaging API, v2 or v3 (`options.version`).
 *
 * How our message id travels, and why:
 * - v3: one recipient per `POST /messages`. `to` may be an array of 500, but `messageContent` is
 *   one text for all of them and our bodies are personalised, and the response's id array is not
 *   documented to follow the `to` order. Each request carries a `statusCallbackUrl` with our id
 *   in its query, and our id as a tag; status callbacks echo neither tags nor anything else of
 *   ours, so the URL is what brings the id back.
 * - v2 (default `multi`): `/messages/sms/multi`, 10 messages per request, one `notifyURL` for all
 *   (the account's callback URL). v2 echoes no `userMsgRef`, so reports are matched by Telstra's
 *   messageId, which we read from the response (checked against each `to`, in order) and the worker
 *   stores; a report arriving before that waits in the folder. This costs a tenth of the requests.
 *   `/multi` has no `from`, so an account with a `sender`, a body over 500 characters, or
 *   `multi: false` uses `/messages/sms`, one request per message, whose `notifyURL` carries our
 *   id (so even a send whose answer was lost is matched when its receipt comes). When `/multi`
 *   refuses a batch for one message's number or body (all-or-nothing 400), each message is sent
 *   again alone to isolate it: a 400 means nothing of the batch was sent. A message with a send
 *   time also goes alone: `scheduledDelivery` is documented for `/messages/sms` only.
 */
export class TelstraProvider implements ProviderAdapter {
  readonly maxBatchSize: number;
  /** v3 only: set in the constructor, so that a v2 adapter has none (v2 cannot cancel). */
  readonly cancelScheduled?: (
    providerMessageId: string,
  ) => Promise<'cancelled' | 'not-cancellable'>;
  private readonly version: 'v2' | 'v3';
  private readonly scheduling: NativeScheduling;
  private readonly useMulti: boolean;
  private readonly http: ProviderHttpClient;
  private readonly tokens: TelstraTokens;
  private readonly backoff = new Backoff();

  constructor(private readonly context: ProviderContext) {
    const options = telstraOptionsSchema.parse(context.account.options ?? {});
    const { account } = context;
    this.version = options.version;
    // defaultBaseUrl is v3's; a v2 account that did not set baseUrl gets v2's here.
    const baseUrl =
      this.version === 'v2' && account.baseUrl === TELSTRA_V3_BASE_URL
        ? TELSTRA_V2_BASE_URL
        : account.baseUrl;
    this.useMulti = this.version === 'v2' && options.multi && !account.sender;
    this.maxBatchSize = this.version === 'v2' ? V2_MULTI_MAX : 1;
    this.scheduling = this.version === 'v2' ? V2_SCHEDULING : V3_SCHEDULING;
    if (this.version === 'v3') this.cancelScheduled = (id) => this.deleteV3(id);
    this.http = new ProviderHttpClient({ baseUrl, concurrency: account.concurrency });
    this.tokens = new TelstraTokens({
      tokenUrl: options.tokenUrl ?? TOKEN_URLS[this.version],
      clientId: account.credentials.clientId ?? '',
      clientSecret: account.credentials.clientSecret ?? '',
      scope: options.scope ?? DEFAULT_SCOPES[this.version],
      logger: context.logger,
    });
  }

  async sendBatch(messages: OutboundSms[]): Promise<SendResult[]> {
    const results = new Array<SendResult | undefined>(messages.length);
    const limit = this.version === 'v3' ? V3_MAX_BODY : V2_MAX_BODY_SINGLE;
    const multi: number[] = [];
    const single: number[] = [];
    messages.forEach((m, i) => {
      const length = [...m.body].length;
      if (length === 0) {
        results[i] = {
          ok: false,
          error: new PermanentSendError('BODY_MISSING', 'the message body is empty'),
        };
      } else if (length > limit) {
        results[i] = {
          ok: false,
          error: new PermanentSendError(
            'BODY_TOO_LONG',
            `body is ${length} characters; Telstra ${this.version} takes ${limit}`,
          ),
        };
      } else if (this.useMulti && length <= V2_MAX_BODY_MULTI && !m.sendAt) {
        // /multi items document no scheduledDelivery (T2210 MessageMulti): scheduled ones go singly.
        multi.push(i);
      } else single.push(i);
    });
    if (multi.length === 1) single.push(multi.pop()!);

    const jobs: Array<Promise<void>> = single.map(async (i) => {
      results[i] = await this.sendOne(messages[i]!);
    });
    if (multi.length > 0) {
      jobs.push(
        this.sendMulti(multi.map((i) => messages[i]!)).then((out) =>
          out.forEach((r, k) => (results[multi[k]!] = r)),
        ),
      );
    }
    await Promise.all(jobs);
    const final = results.map((r) => r!);
    // One request failing as a whole for every message: thrown, as the contract asks.
    const first = final[0];
    if (first && !first.ok && final.every((r) => !r.ok && r.error === first.error))
      throw first.error;
    return final;
  }

  /** One message: v3 `POST /messages`, or v2 `POST /messages/sms` with our id in the notifyURL. */
  private async sendOne(sms: OutboundSms): Promise<SendResult> {
    try {
      return this.version === 'v3' ? await this.sendV3(sms) : await this.sendV2Single(sms);
    } catch (error) {
      if (error instanceof ProviderError) return { ok: false, error };
      throw error;
    }
  }

  private async sendV3(sms: OutboundSms): Promise<SendResult> {
    const refusal = sendAtRefusal(sms, this.scheduling);
    if (refusal) throw refusal;
    const from = this.context.account.sender;
    if (!from) {
      throw new AccountError(
        'TELSTRA_FROM_MISSING',
        'Telstra v3 needs the account sender (virtual number or senderName)',
      );
    }
    const response = await this.call({
      method: 'POST',
      path: '/messages',
      body: JSON.stringify({
        to: v3Number(sms.to),
        from,
        messageContent: sms.body,
        deliveryNotification: true,
        statusCallbackUrl: this.callbackFor(sms.messageId),
        tags: [sms.messageId],
        // toISOString: UTC with "Z", 24 characters (the spec's maxLength), as its example has it.
        ...(sms.sendAt ? { scheduleSend: sms.sendAt.toISOString() } : {}),
      }),
    });
    if (response.status !== 201) throw classifyV3Failure(response, this.backoff);
    this.backoff.reset();
    const parsed = v3SentSchema.safeParse(response.json());
    if (!parsed.success) {
      throw new AmbiguousSendError(
        'TELSTRA_BAD_RESPONSE',
        'Telstra accepted the message but its answer is unreadable',
      );
    }
    const id = Array.isArray(parsed.data.messageId)
      ? parsed.data.messageId[0]!
      : parsed.data.messageId;
    return { ok: true, providerMessageId: id, segments: countSegments(sms.body).segments };
  }

  private async sendV2Single(sms: OutboundSms): Promise<SendResult> {
    // One instant for the check and the delay, taken as late as possible: just before the request.
    const now = Date.now();
    const refusal = sendAtRefusal(sms, this.scheduling, now);
    if (refusal) throw refusal;
    const sender = this.context.account.sender;
    const response = await this.call({
      method: 'POST',
      path: '/messages/sms',
      body: JSON.stringify({
        to: sms.to,
        body: sms.body,
        ...(sender ? { from: sender } : {}),
        notifyURL: this.callbackFor(sms.messageId),
        userMsgRef: sms.messageId,
        ...(sms.sendAt ? { scheduledDelivery: v2DelayMinutes(sms.sendAt, now) } : {}),
      }),
    });
    if (response.status !== 201) throw classifyV2Failure(response, this.backoff);
    this.backoff.reset();
    const parsed = v2SentSchema.safeParse(response.json());
    if (!parsed.success || parsed.data.messages.length !== 1) {
      throw new AmbiguousSendError(
        'TELSTRA_BAD_RESPONSE',
        'Telstra accepted the message but its answer is unreadable',
      );
    }
    return {
      ok: true,
      providerMessageId: parsed.data.messages[0]!.messageId,
      segments: parsed.data.numberSegments ?? countSegments(sms.body).segments,
    };
  }

  private async sendMulti(batch: OutboundSms[]): Promise<SendResult[]> {
    let response: HttpResponse;
    try {
      response = await this.call({
        method: 'POST',
        path: '/messages/sms/multi',
        body: JSON.stringify({
          smsMulti: batch.map((m) => ({ to: m.to, body: m.body })),
          notifyURL: this.context.callbackUrl,
        }),
      });
    } catch (error) {
      if (!(error instanceof ProviderError)) throw error;
      return batch.map(() => ({ ok: false, error }));
    }
    if (response.status !== 200) {
      const error = classifyV2Failure(response, this.backoff);
      if (isV2MessageRefusal(error)) {
        // The whole batch was refused for one message: find which by sending each alone.
        this.context.logger.debug(
          { code: error.code, size: batch.length },
          'telstra multi refused; sending singly',
        );
        return Promise.all(batch.map((m) => this.sendOne(m)));
      }
      return batch.map(() => ({ ok: false, error }));
    }
    this.backoff.reset();
    const parsed = v2SentSchema.safeParse(response.json());
    const matched = parsed.success ? matchByRecipient(batch, parsed.data.messages) : undefined;
    return batch.map((m, i): SendResult => {
      const item = matched?.[i];
      if (!item) {
        return {
          ok: false,
          error: new AmbiguousSendError(
            'TELSTRA_UNMATCHED_RESPONSE',
            'Telstra accepted the batch but its answer does not say which id is whose',
          ),
        };
      }
      return {
        ok: true,
        providerMessageId: item.messageId,
        segments: countSegments(m.body).segments,
      };
    });
  }

  /**
   * v3 `DELETE /messages/{messageId}` (T3 deleteMessageById): 204 deleted. Its 400s
   * (DELETE_INVALID_MSG_SENT already sent, ID_NOT_ASSIGNED not ours, TIMEFRAME_ERR over 30 days,
   * FIELD_* not an id) and a 404 for the message all say it cannot be deleted; so does a 409,
   * which the spec does not list but could only mean the message's state. RESOURCE_TEMP_ERR (404,
   * an incident), 401 (after one token renewal), 402/403, 429 and 5xx are the request's failure.
   */
  private async deleteV3(providerMessageId: string): Promise<'cancelled' | 'not-cancellable'> {
    // Not a v3 id (a v2 one, say): v3 cannot know it, so there is nothing to ask.
    if (!isUuid(providerMessageId)) return 'not-cancellable';
    const response = await this.call({
      method: 'DELETE',
      path: `/messages/${providerMessageId}`,
    });
    if (response.status === 204) {
      this.backoff.reset();
      return 'cancelled';
    }
    const { code } = errorDetails(response);
    if (response.status === 400 || response.status === 409) return 'not-cancellable';
    if (response.status === 404 && code !== 'RESOURCE_TEMP_ERR') return 'not-cancellable';
    throw cancelFailure(classifyV3Failure(response, this.backoff));
  }

  parseWebhook(request: WebhookRequest): WebhookResult {
    return parseTelstraWebhook(request, new Date());
  }

  /**
   * v2 `GET /messages/sms/{messageId}/status` (id URL-encoded), v3 `GET /messages/{messageId}`.
   * Ids Telstra no longer knows (v2 404 OLD-NONEXISTANT-MESSAGE-ID; v3 400/404) are left out; a
   * failure of the account (token, rate limit, outage) is thrown.
   */
  async pollStatus(providerMessageIds: string[]): Promise<StatusReport[]> {
    const reports: StatusReport[] = [];
    for (const id of providerMessageIds) {
      const report = this.version === 'v3' ? await this.pollV3(id) : await this.pollV2(id);
      if (report) reports.push(report);
    }
    return reports;
  }

  private async pollV2(id: string): Promise<StatusReport | undefined> {
    const response = await this.call({
      method: 'GET',
      path: `/messages/sms/${encodeURIComponent(id)}/status`,
    });
    if (response.status === 404 || response.status === 400) return undefined;
    if (response.status !== 200) throw classifyV2Failure(response, this.backoff);
    const parsed = v2PollSchema.safeParse(response.json());
    if (!parsed.success) return undefined;
    const item = parsed.data[0]!;
    return {
      providerMessageId: id,
      providerStatus: item.deliveryStatus,
      status: mapTelstraStatus(item.deliveryStatus),
      occurredAt: parseTimestamp(item.sentTimestamp ?? item.receivedTimestamp, new Date()),
    };
  }

  private async pollV3(id: string): Promise<StatusReport | undefined> {
    if (!uuid.safeParse(id).success) return undefined; // not a v3 id
    const response = await this.call({ method: 'GET', path: `/messages/${id}` });
    if (response.status === 404 || response.status === 400) return undefined;
    if (response.status !== 200) throw classifyV3Failure(response, this.backoff);
    const parsed = v3PollSchema.safeParse(response.json());
    if (!parsed.success) return undefined;
    const m = parsed.data;
    return {
      providerMessageId: id,
      providerStatus: m.status,
      status: mapTelstraStatus(m.status),
      occurredAt: parseTimestamp(
        m.receivedTimestamp ?? m.sentTimestamp ?? m.createTimestamp,
        new Date(),
      ),
    };
  }

  /** v2 `GET /messages/sms/healthcheck` (no auth); v3 `GET /health-check` (Bearer). */
  async checkHealth(): Promise<HealthResult> {
    try {
      const response =
        this.version === 'v3'
          ? await this.call({ method: 'GET', path: '/health-check' })
          : await this.http.request({
              method: 'GET',
              path: '/messages/sms/healthcheck',
              headers: { accept: 'application/json' },
            });
      const body = response.json() as { status?: unknown } | undefined;
      const status = typeof body?.status === 'string' ? body.status : undefined;
      if (response.status === 200 && status === 'up') return { ok: true, detail: 'up' };
      return { ok: false, detail: `HTTP ${response.status}${status ? ` status ${status}` : ''}` };
    } catch (error) {
      const code = error instanceof ProviderError ? error.code : 'UNKNOWN';
      return { ok: false, detail: `health check failed (${code})` };
    }
  }

  /**
   * An authorised call. A 401 means the token was refused (expired early, revoked): get a new one
   * and try once more; a second 401 is the account's problem.
   */
  private async call(request: Omit<HttpRequest, 'headers'>): Promise<HttpResponse> {
    const token = await this.tokens.get();
    const first = await this.http.request({
      ...request,
      headers: this.headers(token, request.body !== undefined),
    });
    if (first.status !== 401) return first;
    this.tokens.invalidate(token);
    this.context.logger.info('telstra refused the access token; renewing it');
    const fresh = await this.tokens.get();
    const second = await this.http.request({
      ...request,
      headers: this.headers(fresh, request.body !== undefined),
    });
    if (second.status === 401) {
      throw new AccountError(
        'UNAUTHORIZED',
        'Telstra refused a freshly issued access token (HTTP 401)',
      );
    }
    return second;
  }

  private headers(token: string, hasBody: boolean): Record<string, string> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      accept: 'application/json',
    };
    if (this.version === 'v3') {
      // Required on every v3 messages operation (T3 parameters), bodies or not.
      headers['content-type'] = 'application/json';
      headers['content-language'] = 'en-au';
      headers['accept-charset'] = 'utf-8';
      headers['telstra-api-version'] = '3.1.0';
    } else if (hasBody) {
      headers['content-type'] = 'application/json';
    }
    return headers;
  }

  /** The account's callback URL with our message id in the query. */
  private callbackFor(messageId: string): string {
    const url = new URL(this.context.callbackUrl);
    url.searchParams.set(MESSAGE_ID_PARAM, messageId);
    return url.toString();
  }

  async close(): Promise<void> {
    await Promise.all([this.http.close(), this.tokens.close()]);
  }
}

/**
 * v2 `scheduledDelivery`: whole minutes of delay, counted by Telstra from when it receives the
 * request, which is after `now`. Rounded up, so the message never goes before its time; v2 can
 * only be minute-precise, so it may go up to a minute after it.
 */
export function v2DelayMinutes(sendAt: Date, now: number): number {
  return Math.ceil((sendAt.getTime() - now) / 60_000);
}

/** v3 wants Australian numbers in national format (0412345678), others in E.164 (T3 `to`). */
export function v3Number(e164: string): string {
  return e164.startsWith('+61') ? `0${e164.slice(3)}` : e164;
}

/** The digits that identify a number whatever its format (+61412…, 0412…): the last nine. */
function numberKey(number: string): string {
  return number.replace(/\D/g, '').slice(-9);
}

/**
 * Which response entry belongs to which message of a /multi batch. The order is not documented,
 * so it is checked against each entry's `to`; if the order does not hold, entries are matched by
 * `to` where each number occurs once. Anything else is left unmatched (ambiguous).
 */
function matchByRecipient<T extends { to: string }>(
  sent: OutboundSms[],
  items: T[],
): Array<T | undefined> {
  if (
    items.length === sent.length &&
    items.every((item, i) => numberKey(item.to) === numberKey(sent[i]!.to))
  ) {
    return items;
  }
  const count = (keys: string[], key: string) => keys.filter((k) => k === key).length;
  const sentKeys = sent.map((m) => numberKey(m.to));
  const itemKeys = items.map((item) => numberKey(item.to));
  return sent.map((_, i) => {
    const key = sentKeys[i]!;
    if (count(sentKeys, key) !== 1 || count(itemKeys, key) !== 1) return undefined;
    return items[itemKeys.indexOf(key)];
  });
}

export const telstraProvider: ProviderDefinition = {
  type: 'telstra',
  maxBodyChars: (account) => (account.options.version === 'v2' ? V2_MAX_BODY_SINGLE : V3_MAX_BODY),
  // v3's; create() swaps in https://tapi.telstra.com/v2 for a v2 account that left baseUrl unset.
  defaultBaseUrl: TELSTRA_V3_BASE_URL,
  credentialKeys: ['clientId', 'clientSecret'],
  optionsSchema: telstraOptionsSchema,
  nativeScheduling: (account) => (account.options.version === 'v2' ? V2_SCHEDULING : V3_SCHEDULING),
  create: (context) => new TelstraProvider(context),
};
