import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Account } from '../../config/accounts.js';
import { createLogger } from '../../logger.js';
import {
  AccountError,
  AmbiguousSendError,
  PermanentSendError,
  RateLimitedError,
  RetryableSendError,
  WebhookPayloadError,
} from '../errors.js';
import type {
  OutboundSms,
  ProviderAdapter,
  ProviderContext,
  SendResult,
  WebhookRequest,
} from '../types.js';
import { OPTUS_MAX_CONTENT, OptusProvider, optusProvider } from './optus.provider.js';
import { freezeClock } from '../../../test/helpers/frozen-clock.js';
import {
  startOpenApiFake,
  type FakeRequest,
  type FakeResponse,
  type OpenApiFake,
} from '../../../test/helpers/openapi-fake.js';

// The Optus v2 spec is a third-party mirror (see specs/SOURCES.md); the base path is the real one.
const BASE_PATH = '/rest/sms/v2';
const APP = 'herald-app';
const PASSWORD = 'pa:ss/word';
const BASIC = `Basic ${Buffer.from(`${APP}:${PASSWORD}`).toString('base64')}`;

const optusError = (statusCode: number, error: string): FakeResponse => ({
  status: statusCode,
  body: { message: 'SMS Gateway Service V2 error', statusCode, error },
});

/** What the fake answers to the next sends; default: accept with a fresh id. */
let answer: (request: FakeRequest) => FakeResponse;
const accept = (request: FakeRequest): FakeResponse => ({
  status: 202,
  body: {
    id: randomUUID(),
    status: 'accepted',
    detail: (request.body as { destination: string }).destination,
  },
});

function makeAdapter(baseUrl: string, overrides: Partial<Account> = {}): OptusProvider {
  const account: Account = {
    name: 'optus-unit',
    provider: 'optus',
    baseUrl,
    credentials: { applicationName: APP, password: PASSWORD },
    sender: 'Herald',
    rate: 10,
    concurrency: 2,
    deliveryPolicy: 'at-most-once',
    options: {},
    ...overrides,
  };
  const context: ProviderContext = {
    account,
    callbackUrl: 'http://127.0.0.1:1/webhooks/optus-unit/token',
    logger: createLogger({ level: 'silent' }),
  };
  return optusProvider.create(context) as OptusProvider;
}

const sms = (to = '+61412345678', body = 'Hello'): OutboundSms => ({
  messageId: randomUUID(),
  to,
  body,
});

function errorOf(result: SendResult | undefined) {
  expect(result?.ok).toBe(false);
  return (result as { ok: false; error: Error }).error;
}

describe('Optus SMS Gateway REST v2 adapter', () => {
  let fake: OpenApiFake;
  let adapter: OptusProvider;
  const polled = new Map<string, { reference: string; status: string }>();

  beforeAll(async () => {
    fake = await startOpenApiFake({
      spec: 'optus-sms-rest-v2.openapi.yml',
      basePath: BASE_PATH,
      validateResponses: true,
      handle(request) {
        if (request.method === 'GET') {
          const id = request.query.get('id')!;
          const known = polled.get(id);
          if (!known) return optusError(404, 'not_found');
          return {
            status: 200,
            body: {
              id,
              source: 'Herald',
              destination: '+61412345678',
              direction: 'MT',
              content: 'Hello',
              ...known,
            },
          };
        }
        return answer(request);
      },
    });
    adapter = makeAdapter(fake.url);
  });
  afterAll(async () => {
    await adapter.close();
    await fake.close();
  });
  afterEach(() => {
    answer = accept;
    expect(fake.violations).toEqual([]);
  });

  it('sends one message per request with Basic auth, E.164 destination and our id as reference', async () => {
    answer = accept;
    expect(adapter.maxBatchSize).toBe(1);
    const messages = [sms('+61412345678', 'Hello there'), sms('+64271234567', 'Kia ora')];
    const before = fake.requests.length;
    const results = await adapter.sendBatch(messages);

    const sent = fake.requests.slice(before);
    expect(sent).toHaveLength(2);
    for (const [i, request] of sent.entries()) {
      expect(request.method).toBe('POST');
      expect(request.path).toBe('/messages');
      expect(request.headers.authorization).toBe(BASIC);
      expect(request.body).toEqual({
        destination: messages[i]!.to,
        content: messages[i]!.body,
        reference: messages[i]!.messageId,
        mask: 'Herald',
      });
      const result = results[i]!;
      expect(result).toMatchObject({ ok: true, segments: 1 });
      expect((result as { providerMessageId: string }).providerMessageId).toMatch(
        /^[0-9a-f-]{36}$/,
      );
    }
  });

  it('sends a numeric sender as source, not mask', async () => {
    answer = accept;
    const numeric = makeAdapter(fake.url, { sender: '+61400000000' });
    try {
      const [result] = await numeric.sendBatch([sms()]);
      expect(result?.ok).toBe(true);
      expect(fake.requests.at(-1)!.body).toMatchObject({ source: '+61400000000' });
      expect(fake.requests.at(-1)!.body).not.toHaveProperty('mask');
    } finally {
      await numeric.close();
    }
  });

  it('refuses an oversize body or a non-E.164 number without a request', async () => {
    const before = fake.requests.length;
    const results = await adapter.sendBatch([
      sms('+61412345678', 'x'.repeat(OPTUS_MAX_CONTENT + 1)),
    ]);
    const tooLong = errorOf(results[0]);
    expect(tooLong).toBeInstanceOf(PermanentSendError);
    expect(tooLong).toMatchObject({ code: 'BODY_TOO_LONG' });
    const [badNumber] = await adapter.sendBatch([sms('0412345678')]);
    expect(errorOf(badNumber)).toMatchObject({ code: 'INVALID_NUMBER', kind: 'permanent' });
    expect(fake.requests.length).toBe(before);
    // Exactly at the limit goes.
    answer = accept;
    const [atLimit] = await adapter.sendBatch([sms('+61412345678', 'y'.repeat(OPTUS_MAX_CONTENT))]);
    expect(atLimit?.ok).toBe(true);
  });

  it.each([
    ['401 bad credentials', optusError(401, 'unauthorized'), AccountError, 'unauthorized'],
    ['400 invalid_json', optusError(400, 'invalid_json'), PermanentSendError, 'invalid_json'],
    ['400 missing_attrib', optusError(400, 'missing_attrib'), PermanentSendError, 'missing_attrib'],
    ['422 invalid_attrib', optusError(422, 'invalid_attrib'), PermanentSendError, 'invalid_attrib'],
    ['500 send_failed', optusError(500, 'send_failed'), RetryableSendError, 'send_failed'],
    ['502 outage', optusError(502, 'bad gateway'), RetryableSendError, 'HTTP_502'],
    ['503 without Retry-After', optusError(503, 'unavailable'), RateLimitedError, 'unavailable'],
  ] as const)('maps %s to one typed outcome', async (_, response, type, code) => {
    answer = () => response;
    const [result] = await adapter.sendBatch([sms()]);
    const error = errorOf(result);
    expect(error).toBeInstanceOf(type);
    expect(error).toMatchObject({ code });
    if (error instanceof PermanentSendError) expect(error.finalStatus).toBe('REJECTED');
    if (error instanceof RateLimitedError) expect(error.retryAfterMs).toBe(5_000);
  });

  it('honours Retry-After on 429', async () => {
    answer = () => ({ ...optusError(429, 'too_many_requests'), headers: { 'retry-after': '7' } });
    const [result] = await adapter.sendBatch([sms()]);
    const error = errorOf(result);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBe(7_000);
  });

  it('treats a dropped connection and an unreadable 202 as ambiguous (may have been sent)', async () => {
    answer = () => ({ status: 0 });
    const [dropped] = await adapter.sendBatch([sms()]);
    expect(errorOf(dropped)).toBeInstanceOf(AmbiguousSendError);
    answer = () => ({ status: 202, body: 'ok', headers: { 'content-type': 'text/plain' } });
    const [garbled] = await adapter.sendBatch([sms()]);
    expect(errorOf(garbled)).toMatchObject({ code: 'OPTUS_BAD_RESPONSE', kind: 'ambiguous' });
  });

  it('polls GET /messages?id= and leaves out ids Optus does not know', async () => {
    const known = randomUUID();
    const ourId = randomUUID();
    polled.set(known, { reference: ourId, status: 'received' });
    const reports = await adapter.pollStatus([known, randomUUID()]);
    expect(reports).toEqual([
      {
        messageId: ourId,
        providerMessageId: known,
        providerStatus: 'received',
        status: 'DELIVERED',
        occurredAt: expect.any(Date),
      },
    ]);
    expect(fake.requests.at(-1)!.headers.authorization).toBe(BASIC);
  });

  describe('native scheduling', () => {
    const DAY = 86_400_000;
    afterEach(() => vi.useRealTimers());

    it('offers 60 days ahead and no cancel', () => {
      const account = { options: {} } as Account;
      expect(optusProvider.nativeScheduling?.(account)).toEqual({
        maxAheadMs: 60 * DAY,
        cancellable: false,
      });
      expect((adapter as ProviderAdapter).cancelScheduled).toBeUndefined();
    });

    it('sends `scheduled` as an RFC 3339 UTC date-time (checked by the spec), and none without sendAt', async () => {
      answer = accept;
      const sendAt = new Date(Date.now() + 3 * DAY + 1234);
      const before = fake.requests.length;
      const results = await adapter.sendBatch([{ ...sms(), sendAt }, sms()]);
      expect(results.map((r) => r.ok)).toEqual([true, true]);
      const [scheduled, immediate] = fake.requests.slice(before);
      const body = scheduled!.body as { scheduled?: string };
      expect(body.scheduled).toBe(sendAt.toISOString());
      expect(body.scheduled).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(immediate!.body).not.toHaveProperty('scheduled');
      // afterEach: the fake found no spec violation (format: date-time).
    });

    it('accepts exactly 60 days ahead; refuses a millisecond more, now, the past or an invalid date without a request', async () => {
      answer = accept;
      const now = freezeClock();
      const before = fake.requests.length;
      const refused = await adapter.sendBatch(
        [now + 60 * DAY + 1, now, now - 60_000, Number.NaN].map((t) => ({
          ...sms(),
          sendAt: new Date(t),
        })),
      );
      for (const result of refused) {
        const error = errorOf(result);
        expect(error).toBeInstanceOf(PermanentSendError);
        expect(error).toMatchObject({ code: 'SCHEDULE_OUT_OF_RANGE', finalStatus: 'FAILED' });
      }
      expect(fake.requests.length).toBe(before);

      const atLimit = new Date(now + 60 * DAY);
      const [result] = await adapter.sendBatch([{ ...sms(), sendAt: atLimit }]);
      expect(result?.ok).toBe(true);
      expect(fake.requests.at(-1)!.body).toMatchObject({ scheduled: atLimit.toISOString() });
    });
  });

  describe('callbacks', () => {
    const webhook = (body: unknown): WebhookRequest => ({
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      rawBody: JSON.stringify(body),
      url: '/webhooks/optus-unit/token',
    });

    it('parses the spec StatusCallback shape {id, status, detail}', () => {
      const id = randomUUID();
      const result = adapter.parseWebhook(
        webhook({ id, status: 'received', detail: '+61412345678' }),
      );
      expect(result.replies).toEqual([]);
      expect(result.reports).toEqual([
        {
          messageId: undefined,
          providerMessageId: id,
          providerStatus: 'received',
          status: 'DELIVERED',
          description: undefined,
          occurredAt: expect.any(Date),
        },
      ]);
    });

    it('parses the asyncapi shape {message_id, reference, status} and returns our id', () => {
      const id = randomUUID();
      const ours = randomUUID();
      const [report] = adapter.parseWebhook(
        webhook({ message_id: id, reference: ours, status: 'rejected' }),
      ).reports;
      expect(report).toMatchObject({ messageId: ours, providerMessageId: id, status: 'REJECTED' });
      // A reference that is not one of our ids is left out.
      const [other] = adapter.parseWebhook(
        webhook({ message_id: id, reference: 'my-ref', status: 'bogus' }),
      ).reports;
      expect(other).toMatchObject({
        messageId: undefined,
        status: 'UNKNOWN',
        providerStatus: 'bogus',
      });
    });

    it.each([
      ['accepted', 'SENT'],
      ['frozen', 'SENT'],
      ['submitted', 'SENT'],
      ['received', 'DELIVERED'],
      ['blocked', 'REJECTED'],
      ['dead', 'FAILED'],
      ['deficient', 'FAILED'],
      ['expired', 'EXPIRED'],
    ])('maps status %s to %s', (word, status) => {
      const [report] = adapter.parseWebhook(webhook({ id: randomUUID(), status: word })).reports;
      expect(report?.status).toBe(status);
    });

    it('parses a reply callback into an InboundReply', () => {
      const id = randomUUID();
      const result = adapter.parseWebhook(
        webhook({
          id,
          source: '61412345678',
          destination: 'Herald',
          content: 'STOP',
          operator: 'Telstra',
        }),
      );
      expect(result.reports).toEqual([]);
      expect(result.replies).toEqual([
        {
          from: '+61412345678',
          to: 'Herald',
          body: 'STOP',
          providerMessageId: id,
          occurredAt: expect.any(Date),
        },
      ]);
    });

    it.each([
      ['no body', undefined],
      ['an array', [{ id: 'x', status: 'sent' }]],
      ['a status without id', { status: 'sent' }],
      ['a status of the wrong type', { id: 'x', status: 5 }],
      ['something else', { hello: 'world' }],
    ])('refuses %s with WebhookPayloadError', (_, body) => {
      expect(() => adapter.parseWebhook(webhook(body))).toThrow(WebhookPayloadError);
    });
  });

  describe('health', () => {
    // /healthz is documented in the official excerpt (docs/S1) but absent from the mirror spec,
    // so it is served by a plain server here; the Health Monitoring API has its own spec.
    let healthz: Server;
    let healthzAnswer = { status: 200, body: '' };
    let monitor: OpenApiFake;
    let restStatus = 'available';

    beforeAll(async () => {
      healthz = createServer((req, res) => {
        if (req.url !== `${BASE_PATH}/healthz` || req.method !== 'GET')
          return res.writeHead(404).end();
        res
          .writeHead(healthzAnswer.status, { 'content-type': 'application/json' })
          .end(healthzAnswer.body);
      });
      await new Promise<void>((resolve) => healthz.listen(0, '127.0.0.1', resolve));
      monitor = await startOpenApiFake({
        spec: 'optus-sms-status-health.openapi.json',
        basePath: '/rest/services/v1',
        validateResponses: true,
        handle: (request) => ({
          status: 200,
          body: { services: { [request.query.get('service') ?? 'rest']: { status: restStatus } } },
        }),
      });
    });
    afterAll(async () => {
      healthz.closeAllConnections();
      await new Promise((resolve) => healthz.close(resolve));
      await monitor.close();
    });

    it('reports GET /healthz, and the Health Monitoring API when configured', async () => {
      const base = `http://127.0.0.1:${(healthz.address() as AddressInfo).port}${BASE_PATH}`;
      const plain = makeAdapter(base);
      const monitored = makeAdapter(base, { options: { healthMonitorUrl: monitor.url } });
      try {
        expect(await plain.checkHealth()).toEqual({ ok: true, detail: 'healthz 200' });
        expect(await monitored.checkHealth()).toMatchObject({ ok: true });
        expect(monitor.requests.at(-1)!.query.getAll('service')).toEqual(['rest']);
        restStatus = 'unavailable';
        expect(await monitored.checkHealth()).toMatchObject({
          ok: false,
          detail: expect.stringMatching(/unavailable/),
        });
        healthzAnswer = {
          status: 500,
          body: JSON.stringify({
            message: 'SMS Gateway Service V2 error',
            statusCode: 500,
            error: 'db down',
          }),
        };
        expect(await plain.checkHealth()).toEqual({
          ok: false,
          detail: 'healthz answered 500 (db down)',
        });
        expect(monitor.violations).toEqual([]);
      } finally {
        await plain.close();
        await monitored.close();
      }
    });
  });
});
