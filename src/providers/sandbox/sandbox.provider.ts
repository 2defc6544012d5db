import pLimit from 'p-limit';
import { z } from 'zod';
import { ourMessageId } from '../our-message-id.js';
import type { MessageStatus } from '../../generated/prisma/enums.js';
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
import { cancelFailure, sendAtRefusal } from '../native-scheduling.js';
import { SANDBOX_MAX_SEND_AHEAD_MS } from './sandbox-server.js';
import type {
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

const sendResponseSchema = z.object({
  messages: z.array(
    z.union([
      z.object({
        id: z.string().min(1),
        // `scheduled`: accepted with a send_at, held until then.
        status: z.enum(['accepted', 'scheduled']),
        segments: z.number().int().optional(),
      }),
      z.object({
        status: z.literal('rejected'),
        error: z.object({ code: z.string(), message: z.string() }),
      }),
    ]),
  ),
});

const reportSchema = z.object({
  id: z.string().min(1),
  reference: z.string().optional().nullable(),
  status: z.string().min(1),
  error_code: z.string().optional().nullable(),
  timestamp: z.iso.datetime({ offset: true }),
});

/**
 * A reply (mobile-originated message) as the sandbox posts it: it has `from` and `body` and no
 * `status`. `reference` is our id of the message it answers, when the sandbox knows it.
 */
const replySchema = z.object({
  id: z.string().min(1),
  from: z.string().min(1),
  to: z.string().default(''),
  body: z.string(),
  reference: z.string().optional().nullable(),
  in_reply_to: z.string().optional().nullable(),
  timestamp: z.iso.datetime({ offset: true }),
});

/** `GET /v1/messages/{id}`. */
const messageSchema = z.object({
  id: z.string().min(1),
  reference: z.string().optional().nullable(),
  status: z.string().min(1),
  error_code: z.string().optional().nullable(),
  updated_at: z.iso.datetime({ offset: true }).optional(),
});

/** Status lookups in flight at once per pass (the sandbox has no documented polling budget). */
const POLL_CONCURRENCY = 8;

/** The sandbox holds a message up to 365 days (`send_at`) and cancels it until then (DELETE). */
export const SANDBOX_SCHEDULING: NativeScheduling = {
  maxAheadMs: SANDBOX_MAX_SEND_AHEAD_MS,
  cancellable: true,
};

const STATUS_MAP: Record<string, MessageStatus> = {
  scheduled: 'SCHEDULED',
  cancelled: 'CANCELLED',
  sent: 'SENT',
  delivered: 'DELIVERED',
  failed: 'FAILED',
  expired: 'EXPIRED',
  undeliverable: 'UNDELIVERABLE',
};

/** Adapter for the built-in sandbox provider (see sandbox-server.ts for its wire format). */
export class SandboxProvider implements ProviderAdapter {
  readonly maxBatchSize = 100;
  private readonly http: ProviderHttpClient;

  constructor(private readonly context: ProviderContext) {
    this.http = new ProviderHttpClient({
      baseUrl: context.account.baseUrl,
      concurrency: context.account.concurrency,
    });
  }

  async sendBatch(messages: OutboundSms[]): Promise<SendResult[]> {
    // A send time out of range fails that message here, and it stays out of the request.
    const results = messages.map((m): SendResult | undefined => {
      const refusal = sendAtRefusal(m, SANDBOX_SCHEDULING);
      return refusal && { ok: false, error: refusal };
    });
    const toSend = messages.filter((_, i) => results[i] === undefined);
    if (toSend.length === 0) return results as SendResult[];
    let sent: SendResult[];
    try {
      sent = await this.sendRequest(toSend);
    } catch (error) {
      // The request failed as a whole: thrown for the batch, unless some messages already
      // failed on their own, which keep their own reason.
      if (toSend.length === messages.length || !(error instanceof ProviderError)) throw error;
      sent = toSend.map(() => ({ ok: false, error }));
    }
    let next = 0;
    return results.map((r) => r ?? sent[next++]!);
  }

  private async sendRequest(messages: OutboundSms[]): Promise<SendResult[]> {
    const response = await this.http.request({
      method: 'POST',
      path: '/v1/messages',
      headers: {
        authorization: `Bearer ${this.context.account.credentials.apiKey}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        messages: messages.map((m) => ({
          to: m.to,
          body: m.body,
          reference: m.messageId,
          callback_url: this.context.callbackUrl,
          ...(m.sendAt ? { send_at: m.sendAt.toISOString() } : {}),
        })),
      }),
    });
    if (response.status !== 202) throw classifyFailure(response);
    const parsed = sendResponseSchema.safeParse(response.json());
    if (!parsed.success || parsed.data.messages.length !== messages.length) {
      // Accepted, but we cannot tell which message got which id: the outcome is unknown.
      throw new AmbiguousSendError(
        'SANDBOX_BAD_RESPONSE',
        'unreadable 202 response from the sandbox',
      );
    }
    return parsed.data.messages.map((item): SendResult =>
      item.status !== 'rejected'
        ? { ok: true, providerMessageId: item.id, segments: item.segments }
        : {
            ok: false,
            error: new PermanentSendError(item.error.code, item.error.message, 'REJECTED'),
          },
    );
  }

  parseWebhook(request: WebhookRequest): WebhookResult {
    const body = request.body as Record<string, unknown> | undefined;
    if (body && typeof body === 'object' && 'from' in body && !('status' in body)) {
      const reply = replySchema.safeParse(body);
      if (!reply.success) {
        throw new WebhookPayloadError(`not a sandbox reply: ${reply.error.issues[0]!.message}`);
      }
      const r = reply.data;
      const reference = r.reference ?? undefined;
      return {
        reports: [],
        replies: [
          {
            from: r.from,
            to: r.to,
            body: r.body,
            providerMessageId: r.id,
            inReplyToMessageId: ourMessageId(reference),
            inReplyToProviderMessageId: r.in_reply_to ?? undefined,
            occurredAt: new Date(r.timestamp),
          },
        ],
      };
    }
    const parsed = reportSchema.safeParse(request.body);
    if (!parsed.success) {
      throw new WebhookPayloadError(
        `not a sandbox delivery report: ${parsed.error.issues[0]!.message}`,
      );
    }
    const report = parsed.data;
    const reference = report.reference ?? undefined;
    return {
      replies: [],
      reports: [
        {
          messageId: ourMessageId(reference),
          providerMessageId: report.id,
          providerStatus: report.status,
          status: STATUS_MAP[report.status] ?? 'UNKNOWN',
          errorCode: report.error_code ?? undefined,
          occurredAt: new Date(report.timestamp),
        },
      ],
    };
  }

  /**
   * `GET /v1/messages/{id}` per message, a few at a time. Ids the sandbox no longer knows (404) and
   * lookups that fail are left out: the message stays SENT and is asked about on a later pass.
   */
  async pollStatus(providerMessageIds: string[]): Promise<StatusReport[]> {
    const limit = pLimit(POLL_CONCURRENCY);
    const reports = await Promise.all(
      providerMessageIds.map((id) => limit(() => this.pollOne(id))),
    );
    return reports.filter((r): r is StatusReport => r !== undefined);
  }

  private async pollOne(id: string): Promise<StatusReport | undefined> {
    let response: HttpResponse;
    try {
      response = await this.http.request({
        method: 'GET',
        path: `/v1/messages/${encodeURIComponent(id)}`,
        headers: { authorization: `Bearer ${this.context.account.credentials.apiKey}` },
      });
    } catch (error) {
      this.context.logger.warn({ providerMessageId: id, err: error }, 'sandbox poll failed');
      return undefined;
    }
    if (response.status !== 200) {
      if (response.status !== 404)
        this.context.logger.warn(
          { providerMessageId: id, status: response.status },
          'sandbox poll refused',
        );
      return undefined;
    }
    const parsed = messageSchema.safeParse(response.json());
    if (!parsed.success) return undefined;
    const message = parsed.data;
    const reference = message.reference ?? undefined;
    return {
      messageId: ourMessageId(reference),
      providerMessageId: message.id,
      providerStatus: message.status,
      status: STATUS_MAP[message.status] ?? 'UNKNOWN',
      errorCode: message.error_code ?? undefined,
      occurredAt: message.updated_at ? new Date(message.updated_at) : new Date(),
    };
  }

  /** `DELETE /v1/messages/{id}`: 204 cancelled; 409 NOT_SCHEDULED or 404 unknown cannot be. */
  async cancelScheduled(providerMessageId: string): Promise<'cancelled' | 'not-cancellable'> {
    const response = await this.http.request({
      method: 'DELETE',
      path: `/v1/messages/${encodeURIComponent(providerMessageId)}`,
      headers: { authorization: `Bearer ${this.context.account.credentials.apiKey}` },
    });
    if (response.status === 204) return 'cancelled';
    if (response.status === 409 || response.status === 404) return 'not-cancellable';
    throw cancelFailure(classifyFailure(response));
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

function classifyFailure(response: HttpResponse): ProviderError {
  const body = response.json() as { error?: { code?: string; message?: string } } | undefined;
  const code = body?.error?.code ?? `HTTP_${response.status}`;
  const message = body?.error?.message ?? `sandbox answered ${response.status}`;
  if (response.status === 401 || response.status === 403) return new AccountError(code, message);
  if (response.status === 429) {
    return new RateLimitedError(code, message, retryAfterMs(response.headers) ?? 1000);
  }
  // The sandbox documents every 5xx as "not sent".
  if (response.status >= 500) return new RetryableSendError(code, message);
  return new PermanentSendError(code, message);
}

export const sandboxProvider: ProviderDefinition = {
  type: 'sandbox',
  maxBodyChars: () => 1600, // the sandbox server's limit
  defaultBaseUrl: 'http://127.0.0.1:4010',
  credentialKeys: ['apiKey'],
  nativeScheduling: () => SANDBOX_SCHEDULING,
  create: (context) => new SandboxProvider(context),
};
