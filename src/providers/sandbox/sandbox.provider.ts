import { z } from 'zod';
import type { MessageStatus } from '../../generated/prisma/enums.js';
import {
  AccountError,
  AmbiguousSendError,
  PermanentSendError,
  RateLimitedError,
  RetryableSendError,
  WebhookPayloadError,
  type ProviderError,
} from '../errors.js';
import { ProviderHttpClient, retryAfterMs, type HttpResponse } from '../http-client.js';
import type {
  OutboundSms,
  ProviderAdapter,
  ProviderContext,
  ProviderDefinition,
  SendResult,
  WebhookRequest,
  WebhookResult,
} from '../types.js';

const sendResponseSchema = z.object({
  messages: z.array(
    z.union([
      z.object({
        id: z.string().min(1),
        status: z.literal('accepted'),
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

const STATUS_MAP: Record<string, MessageStatus> = {
  sent: 'SENT',
  delivered: 'DELIVERED',
  failed: 'FAILED',
  expired: 'EXPIRED',
  undeliverable: 'UNDELIVERABLE',
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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
      item.status === 'accepted'
        ? { ok: true, providerMessageId: item.id, segments: item.segments }
        : {
            ok: false,
            error: new PermanentSendError(item.error.code, item.error.message, 'REJECTED'),
          },
    );
  }

  parseWebhook(request: WebhookRequest): WebhookResult {
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
          messageId: reference && UUID.test(reference) ? reference : undefined,
          providerMessageId: report.id,
          providerStatus: report.status,
          status: STATUS_MAP[report.status] ?? 'UNKNOWN',
          errorCode: report.error_code ?? undefined,
          occurredAt: new Date(report.timestamp),
        },
      ],
    };
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
  create: (context) => new SandboxProvider(context),
};
