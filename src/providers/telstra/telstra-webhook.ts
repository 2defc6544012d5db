import { z } from 'zod';
import { ourMessageId } from '../our-message-id.js';
import type { MessageStatus } from '../../generated/prisma/enums.js';
import { WebhookPayloadError } from '../errors.js';
import type { InboundReply, StatusReport, WebhookRequest, WebhookResult } from '../types.js';

/** The query parameter of a per-message callback URL that carries our message id. */
export const MESSAGE_ID_PARAM = 'heraldMessageId';

/**
 * Telstra statuses (v2 upper-case words, v3 lower-case) → ours (FACTS §1.4 table, §1.8).
 * `MessageWaiting`/`queued`/`PEND`/`sent` all mean "Telstra has it and is working on it": SENT
 * (our QUEUED means our own queue, before the provider).
 */
const STATUS_MAP: Record<string, MessageStatus> = {
  MessageWaiting: 'SENT',
  PEND: 'SENT',
  SENT: 'SENT',
  DELIVRD: 'DELIVERED',
  READ: 'DELIVERED',
  EXPIRED: 'EXPIRED',
  DELETED: 'FAILED',
  UNDVBL: 'UNDELIVERABLE',
  REJECTED: 'REJECTED',
  REJECTD: 'REJECTED',
  queued: 'SENT',
  sent: 'SENT',
  delivered: 'DELIVERED',
  expired: 'EXPIRED',
  undeliverable: 'UNDELIVERABLE',
};

export function mapTelstraStatus(word: string): MessageStatus {
  return Object.hasOwn(STATUS_MAP, word) ? STATUS_MAP[word]! : 'UNKNOWN';
}

/** A Telstra timestamp; v2 reply examples have no zone ("2018-04-20T14:24:35"): read as UTC. */
export function parseTimestamp(value: string | undefined, fallback: Date): Date {
  if (!value) return fallback;
  const zoned = /[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`;
  const date = new Date(zoned);
  return Number.isNaN(date.getTime()) ? fallback : date;
}

const text = z.string().min(1);

// v2 delivery receipt (T229/T2210, S0): posted to the send's notifyURL at the final state only.
const v2Report = z.object({
  to: z.string().optional(),
  sentTimestamp: z.string().optional(),
  receivedTimestamp: z.string().optional(),
  messageId: text,
  deliveryStatus: text,
});
// v2 reply (S0, T2210): posted to the subscription's notifyURL.
const v2Reply = z.object({
  to: text,
  from: text,
  body: z.string(),
  sentTimestamp: z.string().optional(),
  messageId: z.string().optional(),
});
// v3 status callback (T3 statusCallbackUrl sample).
const v3Report = z.object({
  to: z.string().optional(),
  from: z.string().optional(),
  timestamp: z.string().optional(),
  messageId: text,
  status: text,
});
// v3 reply callback (the virtual number's replyCallbackUrl).
const v3Reply = z.object({
  to: text,
  from: text,
  timestamp: z.string().optional(),
  messageId: z.string().optional(),
  messageContent: z.string().optional(),
  multimedia: z.array(z.unknown()).optional(),
});

/** Our message id from the callback URL's query, when it is one of ours (a UUID). */
function messageIdFromUrl(url: string): string | undefined {
  const query = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
  const value = new URLSearchParams(query).get(MESSAGE_ID_PARAM);
  return ourMessageId(value);
}

/** Australian national numbers (04…) → E.164; anything else kept as given. */
function toE164(number: string): string {
  const compact = number.replace(/[\s-]/g, '');
  if (/^0[2-9]\d{8}$/.test(compact)) return `+61${compact.slice(1)}`;
  if (/^61[2-9]\d{8}$/.test(compact)) return `+${compact}`;
  return compact;
}

/**
 * Parses a Telstra callback of either version: delivery receipt / status callback, or a reply.
 * Telstra signs nothing; the signed token in the URL (checked by the route) is the
 * authentication. Our message id comes back in the URL's query where we sent a per-message
 * callback URL; otherwise the report is matched by Telstra's messageId.
 */
export function parseTelstraWebhook(request: WebhookRequest, now: Date): WebhookResult {
  if (request.method !== 'POST') {
    throw new WebhookPayloadError(`Telstra posts its callbacks; got ${request.method}`);
  }
  const body = request.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new WebhookPayloadError('not a Telstra callback: the body is not a JSON object');
  }
  const fields = body as Record<string, unknown>;
  const messageId = messageIdFromUrl(request.url);

  if ('deliveryStatus' in fields) {
    const report = parseOrThrow(v2Report, fields, 'v2 delivery receipt');
    return {
      replies: [],
      reports: [
        statusReport(
          report.deliveryStatus,
          report.messageId,
          messageId,
          parseTimestamp(report.sentTimestamp, now),
        ),
      ],
    };
  }
  if ('status' in fields) {
    const report = parseOrThrow(v3Report, fields, 'v3 status callback');
    return {
      replies: [],
      reports: [
        statusReport(
          report.status,
          report.messageId,
          messageId,
          parseTimestamp(report.timestamp, now),
        ),
      ],
    };
  }
  if ('body' in fields) {
    const reply = parseOrThrow(v2Reply, fields, 'v2 reply');
    return {
      reports: [],
      replies: [
        inbound(
          reply.from,
          reply.to,
          reply.body,
          reply.messageId,
          parseTimestamp(reply.sentTimestamp, now),
        ),
      ],
    };
  }
  if ('messageContent' in fields || 'multimedia' in fields) {
    const reply = parseOrThrow(v3Reply, fields, 'v3 reply');
    return {
      reports: [],
      replies: [
        inbound(
          reply.from,
          reply.to,
          reply.messageContent ?? '',
          reply.messageId,
          parseTimestamp(reply.timestamp, now),
        ),
      ],
    };
  }
  throw new WebhookPayloadError(
    'not a Telstra callback: no deliveryStatus, status, body or messageContent',
  );
}

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new WebhookPayloadError(
      `not a Telstra ${what}: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  return parsed.data;
}

function statusReport(
  word: string,
  providerMessageId: string,
  messageId: string | undefined,
  occurredAt: Date,
): StatusReport {
  return {
    messageId,
    providerMessageId,
    providerStatus: word,
    status: mapTelstraStatus(word),
    occurredAt,
  };
}

function inbound(
  from: string,
  to: string,
  body: string,
  providerMessageId: string | undefined,
  occurredAt: Date,
): InboundReply {
  return {
    from: toE164(from),
    to: toE164(to),
    body,
    providerMessageId: providerMessageId || undefined,
    occurredAt,
  };
}
