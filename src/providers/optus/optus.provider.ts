import { z } from 'zod';
import { basicAuthorization } from '../basic-auth.js';
import { isUuid, ourMessageId } from '../our-message-id.js';
import type { MessageStatus } from '../../generated/prisma/enums.js';
import { countSegments } from '../../messages/segments.js';
import {
  AccountError,
  AmbiguousSendError,
  PermanentSendError,
  ProviderError,
  RateLimitedError,
  RetryableSendError,
  WebhookPayloadError,
} from '../errors.js';
import { ProviderHttpClient, retryAfterMs, type HttpResponse } from '../http-client.js';
import { DAY_MS, sendAtRefusal } from '../native-scheduling.js';
import type {
  HealthResult,
  InboundReply,
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

// Optus SMS Suite Mobile Gateway REST APIv2 (white-labelled Modica). Wire format: the third-party
// mirror of its OpenAPI file (specs/optus-sms-rest-v2.openapi.yml) plus the official doc excerpt
// (docs/S1). One destination per request; no signature on callbacks (the URL token authenticates
// them); no documented rate limit.

export const optusOptionsSchema = z.object({
  /**
   * Base URL of the Optus SMS Suite Health Monitoring API (no auth), e.g.
   * https://api.sms.optus.com.au/rest/services/v1. When set, checkHealth also asks it whether the
   * `rest` service is available.
   */
  healthMonitorUrl: z.url({ protocol: /^https?$/ }).optional(),
  /** Backoff when Optus answers 429/503 without Retry-After (none is documented). */
  rateLimitBackoffMs: z.number().int().positive().default(5_000),
});
export type OptusOptions = z.infer<typeof optusOptionsSchema>;

/** `content` ≤5000 characters (the spec's MessageDetails); segment limits are not documented. */
export const OPTUS_MAX_CONTENT = 5000;
/** `mask` (alphanumeric sender) ≤20 characters (spec). */
const MAX_MASK = 20;

const E164 = /^\+[1-9]\d{6,14}$/;

/**
 * `scheduled` (RFC 3339) holds a message "with an upper limit of 60 days" (spec, S1); a time
 * beyond it, in the past or not RFC 3339 is refused (400/422). Optus has no cancel.
 */
export const OPTUS_SCHEDULING: NativeScheduling = { maxAheadMs: 60 * DAY_MS, cancellable: false };

/** Provider status words → ours (FACTS §2.3). Accepted/queued/frozen: Optus holds it, not final. */
export const OPTUS_STATUS: Record<string, MessageStatus> = {
  accepted: 'SENT',
  queued: 'SENT',
  frozen: 'SENT',
  submitted: 'SENT',
  sent: 'SENT',
  received: 'DELIVERED',
  rejected: 'REJECTED',
  blocked: 'REJECTED',
  failed: 'FAILED',
  dead: 'FAILED',
  deficient: 'FAILED',
  expired: 'EXPIRED',
};

/** Error words Optus puts in `error` for a request it will never accept as it is. */
const PERMANENT_ERRORS = ['invalid_json', 'missing_attrib', 'invalid_attrib'];

const acceptedSchema = z.object({ id: z.string().min(1), status: z.string().optional() });

const messageDetailsSchema = z.object({
  id: z.string().min(1),
  status: z.string().min(1),
  reference: z.string().nullish(),
});

// Status callback: the spec's StatusCallback `{id, status, detail}`; the mirror's prose-derived
// asyncapi has `{message_id, reference?, status}` instead. Both are accepted.
const statusCallbackSchema = z.object({
  id: z.string().min(1).optional(),
  message_id: z.string().min(1).optional(),
  reference: z.string().nullish(),
  status: z.string().min(1),
  detail: z.string().nullish(),
});

const replyCallbackSchema = z.object({
  id: z.string().min(1).optional(),
  source: z.string().min(1),
  destination: z.string().nullish(),
  content: z.string(),
  operator: z.string().nullish(),
});

const healthMonitorSchema = z.object({
  services: z.record(z.string(), z.object({ status: z.string() }).loose()),
});

export class OptusProvider implements ProviderAdapter {
  readonly maxBatchSize = 1;
  private readonly http: ProviderHttpClient;
  private readonly monitor: ProviderHttpClient | undefined;
  private readonly options: OptusOptions;
  private readonly authorization: string;

  constructor(private readonly context: ProviderContext) {
    const { account } = context;
    // Accounts from a file are parsed already; tests and callers may hand raw options.
    this.options = optusOptionsSchema.parse(account.options ?? {});
    const { applicationName, password } = account.credentials;
    // Both are required credentials: the accounts file loader refuses an account without them.
    this.authorization = basicAuthorization(applicationName!, password!);
    this.http = new ProviderHttpClient({
      baseUrl: account.baseUrl,
      concurrency: account.concurrency,
    });
    this.monitor = this.options.healthMonitorUrl
      ? new ProviderHttpClient({ baseUrl: this.options.healthMonitorUrl, concurrency: 1 })
      : undefined;
  }

  /** One request per message (v2 has no bulk send); each outcome is that message's result. */
  async sendBatch(messages: OutboundSms[]): Promise<SendResult[]> {
    const results: SendResult[] = [];
    for (const message of messages) {
      try {
        results.push(await this.sendOne(message));
      } catch (error) {
        if (!(error instanceof ProviderError)) throw error;
        results.push({ ok: false, error });
      }
    }
    return results;
  }

  private async sendOne(message: OutboundSms): Promise<SendResult> {
    const invalid = this.validate(message);
    if (invalid) return { ok: false, error: invalid };
    const response = await this.http.request({
      method: 'POST',
      path: '/messages',
      headers: this.headers({ 'content-type': 'application/json' }),
      body: JSON.stringify({
        destination: message.to,
        content: message.body,
        // Echoed on retrieval and (in one documented shape) on DLRs.
        reference: message.messageId,
        ...this.sender(),
        // toISOString: RFC 3339 in UTC ("Z"), so no offset can be misread.
        ...(message.sendAt ? { scheduled: message.sendAt.toISOString() } : {}),
      }),
    });
    if (response.status < 200 || response.status >= 300) throw this.classify(response);
    const parsed = acceptedSchema.safeParse(response.json());
    if (!parsed.success) {
      // Optus took it (2xx) but we cannot tell its id: it may well be sent.
      throw new AmbiguousSendError(
        'OPTUS_BAD_RESPONSE',
        `unreadable ${response.status} answer to a send`,
      );
    }
    return {
      ok: true,
      providerMessageId: parsed.data.id,
      segments: countSegments(message.body).segments,
    };
  }

  /** Refuses, without a request, what Optus would refuse for this message whatever we retry. */
  private validate(message: OutboundSms): PermanentSendError | undefined {
    if (!E164.test(message.to)) {
      return new PermanentSendError(
        'INVALID_NUMBER',
        'destination is not an E.164 number',
        'FAILED',
      );
    }
    if (message.body.length === 0)
      return new PermanentSendError('EMPTY_BODY', 'message body is empty', 'FAILED');
    if ([...message.body].length > OPTUS_MAX_CONTENT) {
      return new PermanentSendError(
        'BODY_TOO_LONG',
        `body exceeds ${OPTUS_MAX_CONTENT} characters`,
        'FAILED',
      );
    }
    return sendAtRefusal(message, OPTUS_SCHEDULING);
  }

  /** A number goes as `source`; an alphanumeric sender id as `mask` (≤20 characters). */
  private sender(): { source?: string; mask?: string } {
    const sender = this.context.account.sender;
    if (!sender) return {};
    if (/^\+?\d+$/.test(sender)) return { source: sender };
    return { mask: sender.slice(0, MAX_MASK) };
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: this.authorization, accept: 'application/json', ...extra };
  }

  /** Every documented failure → one typed outcome (FACTS §2.5). */
  private classify(response: HttpResponse): ProviderError {
    const body = response.json() as { error?: unknown; message?: unknown } | undefined;
    const error = typeof body?.error === 'string' ? body.error : '';
    const text = `${error} ${typeof body?.message === 'string' ? body.message : ''}`;
    const known = (word: string) => text.includes(word);
    const code = error && /^[a-z_]+$/.test(error) ? error : `HTTP_${response.status}`;
    const message = `Optus answered ${response.status}${error ? ` (${error})` : ''}`;
    const status = response.status;

    if (status === 401 || status === 403) return new AccountError(code, message);
    // Not documented, but the one honest reading of 429/503 is "slow down"; nothing was queued.
    if (status === 429 || status === 503) {
      return new RateLimitedError(
        code,
        message,
        retryAfterMs(response.headers) ?? this.options.rateLimitBackoffMs,
      );
    }
    // send_failed: Optus could not queue the message (documented as not sent).
    if (known('send_failed') || status >= 500) return new RetryableSendError(code, message);
    const permanent = PERMANENT_ERRORS.find(known);
    if (permanent) return new PermanentSendError(permanent, message, 'REJECTED');
    // A redirect (plain http → https) or a missing endpoint: the account's baseUrl is wrong.
    if (status < 400 || status === 404 || status === 405) {
      return new AccountError(`HTTP_${status}`, `${message}: check the account's baseUrl`);
    }
    return new PermanentSendError(code, message, 'REJECTED');
  }

  parseWebhook(request: WebhookRequest): WebhookResult {
    const body = request.body;
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      throw new WebhookPayloadError('Optus callback body is not a JSON object');
    }
    // Status and reply callbacks may share one URL: a status callback carries `status`, a reply
    // carries `source` + `content`.
    if ('status' in body) return { reports: [this.parseStatus(body)], replies: [] };
    if ('content' in body && 'source' in body)
      return { reports: [], replies: [this.parseReply(body)] };
    throw new WebhookPayloadError('neither an Optus status nor a reply callback');
  }

  private parseStatus(body: object): StatusReport {
    const parsed = statusCallbackSchema.safeParse(body);
    const providerMessageId = parsed.success
      ? (parsed.data.id ?? parsed.data.message_id)
      : undefined;
    if (!parsed.success || !providerMessageId) {
      throw new WebhookPayloadError('Optus status callback lacks a message id or status');
    }
    const { status, reference, detail } = parsed.data;
    return {
      messageId: ourMessageId(reference),
      providerMessageId,
      providerStatus: status,
      status: OPTUS_STATUS[status] ?? 'UNKNOWN',
      // `detail` is the destination number in the examples: keep it out of our records then.
      description: detail && !/^\+?\d+$/.test(detail) ? detail : undefined,
      // Optus callbacks carry no timestamp.
      occurredAt: new Date(),
    };
  }

  private parseReply(body: object): InboundReply {
    const parsed = replyCallbackSchema.safeParse(body);
    if (!parsed.success) throw new WebhookPayloadError('unreadable Optus reply callback');
    const reply = parsed.data;
    return {
      from: toE164(reply.source),
      to: reply.destination ?? this.context.account.sender ?? '',
      body: reply.content,
      providerMessageId: reply.id,
      occurredAt: new Date(),
    };
  }

  /** `GET /messages?id=` per message (mirror spec only); unknown ids (404) are left out. */
  async pollStatus(providerMessageIds: string[]): Promise<StatusReport[]> {
    const reports = await Promise.all(
      providerMessageIds
        .filter((id) => isUuid(id))
        .map(async (id): Promise<StatusReport | undefined> => {
          const response = await this.http.request({
            method: 'GET',
            path: `/messages?id=${encodeURIComponent(id.toLowerCase())}`,
            headers: this.headers(),
          });
          if (response.status === 404) return undefined;
          if (response.status !== 200) throw this.classify(response);
          const parsed = messageDetailsSchema.safeParse(response.json());
          if (!parsed.success) return undefined;
          const { reference, status } = parsed.data;
          return {
            messageId: ourMessageId(reference),
            providerMessageId: parsed.data.id,
            providerStatus: status,
            status: OPTUS_STATUS[status] ?? 'UNKNOWN',
            occurredAt: new Date(),
          };
        }),
    );
    return reports.filter((r): r is StatusReport => r !== undefined);
  }

  /** `GET /healthz` on the v2 base (S1), plus the Health Monitoring API when configured. */
  async checkHealth(): Promise<HealthResult> {
    let healthz: HttpResponse;
    try {
      healthz = await this.http.request({
        method: 'GET',
        path: '/healthz',
        headers: this.headers(),
      });
    } catch (error) {
      return { ok: false, detail: `healthz unreachable: ${(error as Error).message}` };
    }
    if (healthz.status !== 200) {
      const body = healthz.json() as { error?: unknown } | undefined;
      return {
        ok: false,
        detail: `healthz answered ${healthz.status}${typeof body?.error === 'string' ? ` (${body.error})` : ''}`,
      };
    }
    if (!this.monitor) return { ok: true, detail: 'healthz 200' };
    let status: HttpResponse;
    try {
      status = await this.monitor.request({
        method: 'GET',
        path: '/status?service=rest',
        headers: { accept: 'application/json' },
      });
    } catch (error) {
      return { ok: false, detail: `health monitor unreachable: ${(error as Error).message}` };
    }
    const parsed = healthMonitorSchema.safeParse(status.json());
    const rest = parsed.success ? parsed.data.services.rest?.status : undefined;
    if (status.status !== 200 || !rest)
      return { ok: false, detail: `health monitor answered ${status.status}` };
    return { ok: rest === 'available', detail: `healthz 200; health monitor: rest ${rest}` };
  }

  async close(): Promise<void> {
    await Promise.all([this.http.close(), this.monitor?.close()]);
  }
}

/** Optus documents `source` only as "mobile number": give it a + when it is international digits. */
function toE164(number: string): string {
  const trimmed = number.trim();
  return /^[1-9]\d{7,14}$/.test(trimmed) ? `+${trimmed}` : trimmed;
}

export const optusProvider: ProviderDefinition = {
  type: 'optus',
  maxBodyChars: () => OPTUS_MAX_CONTENT,
  defaultBaseUrl: 'https://api.sms.optus.com.au/rest/sms/v2',
  credentialKeys: ['applicationName', 'password'],
  optionsSchema: optusOptionsSchema,
  nativeScheduling: () => OPTUS_SCHEDULING,
  create: (context) => new OptusProvider(context),
};
