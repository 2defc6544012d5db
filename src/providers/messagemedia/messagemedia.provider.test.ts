import { createHash, createHmac, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Account } from '../../config/accounts.js';
import { createLogger } from '../../logger.js';
import {
  AccountError,
  AmbiguousSendError,
  PermanentSendError,
  RateLimitedError,
  RetryableSendError,
  WebhookAuthError,
  WebhookPayloadError,
} from '../errors.js';
import type { OutboundSms, ProviderContext, SendResult, WebhookRequest } from '../types.js';
import { freezeClock } from '../../../test/helpers/frozen-clock.js';
import {
  METADATA_KEY,
  MM_MAX_CONTENT,
  MessageMediaProvider,
  messageMediaProvider,
} from './messagemedia.provider.js';
import {
  startOpenApiFake,
  type FakeRequest,
  type FakeResponse,
  type OpenApiFake,
} from '../../../test/helpers/openapi-fake.js';

const API_KEY = 'mm-key';
const API_SECRET = 'mm-secret';
const HMAC_KEY = 'uCXUdoogNfCsehEClbO2';
const HMAC_SECRET = 'hmac-secret';
const CALLBACK = 'http://127.0.0.1:1/webhooks/mm-unit/token';
const BASIC = `Basic ${Buffer.from(`${API_KEY}:${API_SECRET}`).toString('base64')}`;

interface MmMessage {
  content: string;
  destination_number: string;
  metadata: Record<string, string>;
  scheduled?: string;
}

/** Checks a request's credentials as MessageMedia would: Basic, or HMAC per the spec. */
function authenticated(request: FakeRequest): boolean {
  const auth = String(request.headers.authorization ?? '');
  if (auth.startsWith('Basic ')) return auth === BASIC;
  const match =
    /^hmac username="([^"]+)", algorithm="hmac-sha256", headers="([^"]+)", signature="([^"]+)"$/.exec(
      auth,
    );
  if (!match || match[1] !== HMAC_KEY) return false;
  const date = String(request.headers.date ?? '');
  const lines = [`Date: ${date}`];
  if (request.rawBody) {
    const md5 = createHash('md5').update(request.rawBody).digest('hex');
    if (request.headers['content-md5'] !== md5 || match[2] !== 'Date Content-MD5 request-line')
      return false;
    lines.push(`Content-MD5: ${md5}`);
  } else if (match[2] !== 'Date request-line') return false;
  const query = request.query.toString();
  lines.push(`${request.method} ${request.path}${query ? `?${query}` : ''} HTTP/1.1`);
  const expected = createHmac('sha256', HMAC_SECRET).update(lines.join('\n')).digest('base64');
  return expected === match[3] && Math.abs(Date.parse(date) - Date.now()) < 60_000;
}

let answer: ((request: FakeRequest) => FakeResponse) | undefined;
/** Destinations MessageMedia refuses: a batch holding one gets 400 and nothing in it is sent. */
const refused = new Set<string>();
/** Our ids that MessageMedia accepted, with how many times. */
const accepted = new Map<string, number>();
/** What GET /v1/messages/{id} answers; sends add theirs (`scheduled` ones wait to be cancelled). */
const statuses = new Map<
  string,
  { status: string; metadata: Record<string, string>; scheduled?: string }
>();

function messageMedia(request: FakeRequest): FakeResponse {
  if (!authenticated(request))
    return { status: 403, body: { message: 'Invalid authentication credentials' } };
  if (answer) return answer(request);
  if (request.method === 'GET' && request.path === '/v1/delivery_reports')
    return { status: 200, body: { delivery_reports: [] } };
  if (request.method === 'PUT') {
    // Cancel: only a `scheduled` message can become `cancelled` (spec, CancelScheduledMessage).
    const known = statuses.get(request.path.split('/').at(-1)!);
    if (!known) return { status: 404, body: { message: 'Resource not found.' } };
    if (
      known.status !== 'scheduled' ||
      (request.body as { status?: unknown }).status !== 'cancelled'
    )
      return { status: 400, body: { message: 'Bad request', details: ['not scheduled'] } };
    known.status = 'cancelled';
    return { status: 200 };
  }
  if (request.method === 'GET') {
    const known = statuses.get(request.path.split('/').at(-1)!);
    if (!known) return { status: 404, body: { message: 'Resource not found.' } };
    return {
      status: 200,
      body: { message_id: request.path.split('/').at(-1), content: 'x', ...known },
    };
  }
  const { messages } = request.body as { messages: MmMessage[] };
  const bad = messages.filter((m) => refused.has(m.destination_number));
  if (bad.length > 0) {
    return {
      status: 400,
      body: {
        message: 'Invalid request',
        details: bad.map((m) => `bad number ${m.destination_number}`),
      },
    };
  }
  for (const m of messages)
    accepted.set(m.metadata[METADATA_KEY]!, (accepted.get(m.metadata[METADATA_KEY]!) ?? 0) + 1);
  const answered = messages.map((m) => ({ ...m, message_id: randomUUID(), status: 'queued' }));
  for (const m of answered) {
    statuses.set(m.message_id, {
      status: m.scheduled ? 'scheduled' : 'queued',
      metadata: m.metadata,
      ...(m.scheduled ? { scheduled: m.scheduled } : {}),
    });
  }
  return { status: 202, body: { messages: answered } };
}

function makeAdapter(baseUrl: string, overrides: Partial<Account> = {}): MessageMediaProvider {
  const account: Account = {
    name: 'mm-unit',
    provider: 'messagemedia',
    baseUrl,
    credentials: { apiKey: API_KEY, apiSecret: API_SECRET },
    sender: '+61491570157',
    rate: 10,
    concurrency: 4,
    deliveryPolicy: 'at-most-once',
    options: {},
    ...overrides,
  };
  const context: ProviderContext = {
    account,
    callbackUrl: CALLBACK,
    logger: createLogger({ level: 'silent' }),
  };
  return messageMediaProvider.create(context) as MessageMediaProvider;
}

let n = 0;
const sms = (body = 'Hello'): OutboundSms => ({
  messageId: randomUUID(),
  to: `+614915${String(70000 + (n++ % 29999)).padStart(5, '0')}`,
  body,
});

function errorOf(result: SendResult | undefined) {
  expect(result?.ok).toBe(false);
  return (result as { ok: false; error: Error }).error;
}

describe('MessageMedia adapter', () => {
  let fake: OpenApiFake;
  let adapter: MessageMediaProvider;

  beforeAll(async () => {
    fake = await startOpenApiFake({
      spec: 'messagemedia-openapi.yaml',
      validateResponses: true,
      handle: messageMedia,
    });
    adapter = makeAdapter(fake.url);
  });
  afterAll(async () => {
    await adapter.close();
    await fake.close();
  });
  afterEach(() => {
    answer = undefined;
    refused.clear();
    // The spec declares 202/400/403 for sends; 401, 429 and 5xx come from the prose docs (S2)
    // and our own assumptions, so only "not declared" is tolerated for those.
    const real = fake.violations.filter(
      (v) => !/response status (401|429|500|503) not declared/.test(v),
    );
    expect(real).toEqual([]);
    fake.violations.length = 0;
  });

  it('sends a batch in one request with Basic auth, metadata, callback URL and delivery reports', async () => {
    const messages = [sms('Hello one'), sms('Hello two'), sms('€uro ✓')];
    const before = fake.requests.length;
    const results = await adapter.sendBatch(messages);

    expect(adapter.maxBatchSize).toBe(100);
    const sent = fake.requests.slice(before);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.headers.authorization).toBe(BASIC);
    expect(sent[0]!.headers.account).toBeUndefined();
    expect(sent[0]!.body).toEqual({
      messages: messages.map((m) => ({
        content: m.body,
        destination_number: m.to,
        format: 'SMS',
        delivery_report: true,
        callback_url: CALLBACK,
        metadata: { [METADATA_KEY]: m.messageId },
        source_number: '+61491570157',
        source_number_type: 'INTERNATIONAL',
      })),
    });
    expect(results.map((r) => r.ok)).toEqual([true, true, true]);
    expect(results[2]).toMatchObject({ segments: 1 });
    for (const m of messages) expect(accepted.get(m.messageId)).toBe(1);
  });

  it('signs with HMAC when its key pair is configured, and sends the sub-account header', async () => {
    const hmac = makeAdapter(fake.url, {
      credentials: {
        apiKey: API_KEY,
        apiSecret: API_SECRET,
        hmacKey: HMAC_KEY,
        hmacSecret: HMAC_SECRET,
      },
      sender: 'Herald',
      options: { subAccountId: 'sub-1' },
    });
    try {
      const [result] = await hmac.sendBatch([sms()]);
      expect(result?.ok).toBe(true); // the fake verified the signature
      const request = fake.requests.at(-1)!;
      expect(request.headers.authorization).toMatch(
        /^hmac username="uCXUdoogNfCsehEClbO2", algorithm="hmac-sha256", headers="Date Content-MD5 request-line"/,
      );
      expect(request.headers['content-md5']).toMatch(/^[0-9a-f]{32}$/);
      expect(request.headers.account).toBe('sub-1');
      expect(request.body).toMatchObject({
        messages: [{ source_number: 'Herald', source_number_type: 'ALPHANUMERIC' }],
      });
      // A bodiless GET signs "Date request-line".
      expect(await hmac.pollStatus([randomUUID()])).toEqual([]);
      expect(fake.requests.at(-1)!.headers.authorization).toMatch(/headers="Date request-line"/);
      expect(fake.requests.at(-1)!.headers['content-md5']).toBeUndefined();
    } finally {
      await hmac.close();
    }
    // A wrong secret is refused by the fake (403) → AccountError.
    const wrong = makeAdapter(fake.url, {
      credentials: {
        apiKey: API_KEY,
        apiSecret: API_SECRET,
        hmacKey: HMAC_KEY,
        hmacSecret: 'nope',
      },
    });
    try {
      const [result] = await wrong.sendBatch([sms()]);
      expect(errorOf(result)).toBeInstanceOf(AccountError);
    } finally {
      await wrong.close();
    }
  });

  it('sends at most 100 messages per request', async () => {
    const messages = Array.from({ length: 101 }, () => sms());
    const before = fake.requests.length;
    const results = await adapter.sendBatch(messages);
    const sizes = fake.requests
      .slice(before)
      .map((r) => (r.body as { messages: unknown[] }).messages.length);
    expect(sizes).toEqual([100, 1]);
    expect(results.every((r) => r.ok)).toBe(true);
  });

  it('keeps invalid numbers and oversize bodies out of the batch, failing only them, with no request for them', async () => {
    const good = [sms(), sms()];
    const tooLong = sms('x'.repeat(MM_MAX_CONTENT + 1));
    const badNumber = { ...sms(), to: '0491570156' };
    const before = fake.requests.length;
    const results = await adapter.sendBatch([good[0]!, tooLong, badNumber, good[1]!]);
    expect(errorOf(results[1])).toMatchObject({ code: 'BODY_TOO_LONG', kind: 'permanent' });
    expect(errorOf(results[2])).toMatchObject({ code: 'INVALID_NUMBER', kind: 'permanent' });
    expect(results[0]?.ok && results[3]?.ok).toBe(true);
    const sent = fake.requests.slice(before);
    expect(sent).toHaveLength(1);
    expect(
      (sent[0]!.body as { messages: MmMessage[] }).messages.map((m) => m.metadata[METADATA_KEY]),
    ).toEqual(good.map((m) => m.messageId));
    const [onlyBad] = await adapter.sendBatch([sms('')]);
    expect(errorOf(onlyBad)).toMatchObject({ code: 'EMPTY_BODY' });
    expect(fake.requests.length).toBe(before + 1);
  });

  it('isolates the one message MessageMedia refuses in a batch (400, all-or-nothing) and sends the rest once', async () => {
    const messages = Array.from({ length: 10 }, () => sms());
    refused.add(messages[6]!.to);
    const results = await adapter.sendBatch(messages);
    results.forEach((result, i) => {
      if (i === 6) {
        const error = errorOf(result);
        expect(error).toBeInstanceOf(PermanentSendError);
        expect(error).toMatchObject({ code: 'MM_INVALID_REQUEST', finalStatus: 'REJECTED' });
        expect(error.message).toMatch(/bad number/);
      } else expect(result.ok).toBe(true);
    });
    for (const [i, m] of messages.entries())
      expect(accepted.get(m.messageId)).toBe(i === 6 ? undefined : 1);
  });

  it.each([
    [
      '403 bad credentials',
      { status: 403, body: { message: 'Invalid authentication credentials' } },
      AccountError,
      'MM_FORBIDDEN',
    ],
    [
      '401 (prose docs)',
      { status: 401, body: { message: 'Unauthorized' } },
      AccountError,
      'MM_UNAUTHORIZED',
    ],
    [
      '400 invalid request',
      { status: 400, body: { message: 'bad', details: ['x'] } },
      PermanentSendError,
      'MM_INVALID_REQUEST',
    ],
    [
      '500 server error',
      { status: 500, body: { message: 'oops' } },
      RetryableSendError,
      'HTTP_500',
    ],
    ['503 without Retry-After', { status: 503 }, RateLimitedError, 'HTTP_503'],
  ] as const)(
    'maps %s to one typed outcome for the whole batch',
    async (_, response, type, code) => {
      answer = () => response;
      const results = await adapter.sendBatch([sms()]);
      const error = errorOf(results[0]);
      expect(error).toBeInstanceOf(type);
      expect(error).toMatchObject({ code });
      if (error instanceof RateLimitedError) expect(error.retryAfterMs).toBe(5_000);
    },
  );

  it('honours Retry-After on 429 and calls a dropped connection or unreadable 202 ambiguous', async () => {
    answer = () => ({
      status: 429,
      headers: { 'retry-after': '3' },
      body: { message: 'slow down' },
    });
    const [limited] = await adapter.sendBatch([sms(), sms()]);
    expect((errorOf(limited) as RateLimitedError).retryAfterMs).toBe(3_000);
    answer = () => ({ status: 0 });
    expect(errorOf((await adapter.sendBatch([sms()]))[0])).toBeInstanceOf(AmbiguousSendError);
    answer = () => ({ status: 202, body: { messages: [] } });
    expect(errorOf((await adapter.sendBatch([sms()]))[0])).toMatchObject({
      code: 'MM_BAD_RESPONSE',
      kind: 'ambiguous',
    });
  });

  it('polls GET /v1/messages/{id}, returns our id from metadata, leaves out unknown ids', async () => {
    const id = randomUUID();
    const ours = randomUUID();
    statuses.set(id, { status: 'delivered', metadata: { [METADATA_KEY]: ours } });
    const reports = await adapter.pollStatus([id, randomUUID()]);
    expect(reports).toEqual([
      {
        messageId: ours,
        providerMessageId: id,
        providerStatus: 'delivered',
        status: 'DELIVERED',
        occurredAt: expect.any(Date),
      },
    ]);
  });

  it('pulls kept delivery reports and replies, and confirms exactly those it was given', async () => {
    const ours = randomUUID();
    const reportIds = [randomUUID(), randomUUID(), randomUUID()];
    const replyId = randomUUID();
    const confirmed: Record<string, unknown> = {};
    const kept = {
      delivery_reports: [
        {
          delivery_report_id: reportIds[0],
          message_id: randomUUID(),
          status: 'delivered',
          error_code: '220',
          submitted_date: '2026-12-01T00:00:01.000Z',
          date_received: '2026-12-01T00:00:02.000Z',
          source_number: '+61491570157',
          metadata: { [METADATA_KEY]: ours },
        },
        {
          delivery_report_id: reportIds[1],
          message_id: randomUUID(),
          status: 'failed',
          submitted_date: '2026-12-01T00:00:03.000Z',
        },
        // Unreadable (no status): still confirmed, or it would come back on every pass.
        { delivery_report_id: reportIds[2], message_id: randomUUID() },
      ],
      replies: [
        {
          reply_id: replyId,
          message_id: randomUUID(),
          content: 'STOP',
          source_number: '+61491570158',
          destination_number: '+61491570157',
          date_received: '2026-12-01T00:00:04.000Z',
          metadata: { [METADATA_KEY]: ours },
        },
      ],
    };
    answer = (request) => {
      if (request.method === 'GET' && request.path === '/v1/delivery_reports')
        return { status: 200, body: { delivery_reports: kept.delivery_reports } };
      if (request.method === 'GET' && request.path === '/v1/replies')
        return { status: 200, body: { replies: kept.replies } };
      confirmed[request.path] = request.body;
      return { status: 202 };
    };
    const events = await adapter.pullEvents();
    expect(events.received).toBe(4);
    expect(events.reports).toEqual([
      {
        messageId: ours,
        providerMessageId: kept.delivery_reports[0]!.message_id,
        providerStatus: 'delivered',
        status: 'DELIVERED',
        errorCode: '220',
        occurredAt: new Date('2026-12-01T00:00:01.000Z'),
      },
      expect.objectContaining({ status: 'FAILED', messageId: undefined }),
    ]);
    expect(events.replies).toEqual([
      expect.objectContaining({ from: '+61491570158', body: 'STOP', inReplyToMessageId: ours }),
    ]);
    expect(confirmed).toEqual({}); // nothing is confirmed before the caller has stored them
    await events.confirm();
    expect(confirmed).toEqual({
      '/v1/delivery_reports/confirmed': { delivery_report_ids: reportIds },
      '/v1/replies/confirmed': { reply_ids: [replyId] },
    });
  });

  it('checks credentials with the read-only GET /v1/delivery_reports', async () => {
    expect(await adapter.checkHealth()).toMatchObject({ ok: true });
    const wrong = makeAdapter(fake.url, { credentials: { apiKey: API_KEY, apiSecret: 'wrong' } });
    try {
      expect(await wrong.checkHealth()).toMatchObject({
        ok: false,
        detail: expect.stringMatching(/403/),
      });
    } finally {
      await wrong.close();
    }
  });

  describe('native scheduling', () => {
    const DAY = 86_400_000;
    afterEach(() => vi.useRealTimers());
    const providerId = (result: SendResult | undefined) => {
      expect(result?.ok).toBe(true);
      return (result as { providerMessageId: string }).providerMessageId;
    };

    it('offers 45 days ahead, cancellable', () => {
      expect(messageMediaProvider.nativeScheduling?.({ options: {} } as Account)).toEqual({
        maxAheadMs: 45 * DAY,
        cancellable: true,
      });
      expect(typeof adapter.cancelScheduled).toBe('function');
    });

    it('sends `scheduled` per message as ISO 8601 UTC (checked by the spec), none without sendAt, and polls SCHEDULED', async () => {
      const sendAt = new Date(Date.now() + 2 * DAY + 5);
      const messages = [{ ...sms(), sendAt }, sms()];
      const before = fake.requests.length;
      const results = await adapter.sendBatch(messages);
      const sent = fake.requests.slice(before);
      expect(sent).toHaveLength(1);
      const [scheduled, immediate] = (sent[0]!.body as { messages: MmMessage[] }).messages;
      expect(scheduled!.scheduled).toBe(sendAt.toISOString());
      expect(scheduled!.scheduled).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(immediate).not.toHaveProperty('scheduled');
      const reports = await adapter.pollStatus([providerId(results[0])]);
      expect(reports).toMatchObject([{ providerStatus: 'scheduled', status: 'SCHEDULED' }]);
    });

    it('accepts exactly 45 days ahead; leaves a millisecond more, now or the past out of the request', async () => {
      const now = freezeClock();
      const atLimit = { ...sms(), sendAt: new Date(now + 45 * DAY) };
      const refused = [now + 45 * DAY + 1, now, now - 1].map((t) => ({
        ...sms(),
        sendAt: new Date(t),
      }));
      const before = fake.requests.length;
      const results = await adapter.sendBatch([refused[0]!, atLimit, refused[1]!, refused[2]!]);
      for (const i of [0, 2, 3]) {
        expect(errorOf(results[i])).toBeInstanceOf(PermanentSendError);
        expect(errorOf(results[i])).toMatchObject({ code: 'SCHEDULE_OUT_OF_RANGE' });
      }
      expect(statuses.get(providerId(results[1]))?.scheduled).toBe(atLimit.sendAt.toISOString());
      const sent = fake.requests.slice(before);
      expect(sent).toHaveLength(1);
      expect(
        (sent[0]!.body as { messages: MmMessage[] }).messages.map((m) => m.metadata[METADATA_KEY]),
      ).toEqual([atLimit.messageId]);
      // All refused: no request at all.
      expect((await adapter.sendBatch(refused)).every((r) => !r.ok)).toBe(true);
      expect(fake.requests.length).toBe(before + 1);
    });

    it('still isolates a refused message in a batch of scheduled ones, each keeping its own time', async () => {
      const base = Date.now() + DAY;
      const messages = Array.from({ length: 8 }, (_, i) => ({
        ...sms(),
        ...(i % 2 === 0 ? { sendAt: new Date(base + i * 60_000) } : {}),
      }));
      refused.add(messages[4]!.to);
      const results = await adapter.sendBatch(messages);
      results.forEach((result, i) => {
        if (i === 4) {
          expect(errorOf(result)).toMatchObject({ code: 'MM_INVALID_REQUEST' });
          return;
        }
        const stored = statuses.get(providerId(result))!;
        expect(stored.metadata[METADATA_KEY]).toBe(messages[i]!.messageId);
        expect(stored.scheduled).toBe(messages[i]!.sendAt?.toISOString());
        expect(stored.status).toBe(messages[i]!.sendAt ? 'scheduled' : 'queued');
        expect(accepted.get(messages[i]!.messageId)).toBe(1);
      });
    });

    it('cancels with PUT {"status":"cancelled"}; not scheduled (400) or unknown (404) is not-cancellable', async () => {
      const [scheduled, immediate] = await adapter.sendBatch([
        { ...sms(), sendAt: new Date(Date.now() + DAY) },
        sms(),
      ]);
      const id = providerId(scheduled);
      expect(await adapter.cancelScheduled(id)).toBe('cancelled');
      const put = fake.requests.at(-1)!;
      expect(put.method).toBe('PUT');
      expect(put.path).toBe(`/v1/messages/${id}`);
      expect(put.headers.authorization).toBe(BASIC);
      expect(put.body).toEqual({ status: 'cancelled' });
      expect(await adapter.pollStatus([id])).toMatchObject([{ status: 'CANCELLED' }]);
      expect(await adapter.cancelScheduled(id)).toBe('not-cancellable');
      expect(await adapter.cancelScheduled(providerId(immediate))).toBe('not-cancellable');
      expect(await adapter.cancelScheduled(randomUUID())).toBe('not-cancellable');
    });

    it('signs a cancel with HMAC when configured', async () => {
      const hmac = makeAdapter(fake.url, {
        credentials: {
          apiKey: API_KEY,
          apiSecret: API_SECRET,
          hmacKey: HMAC_KEY,
          hmacSecret: HMAC_SECRET,
        },
      });
      try {
        const [result] = await hmac.sendBatch([{ ...sms(), sendAt: new Date(Date.now() + DAY) }]);
        expect(await hmac.cancelScheduled(providerId(result))).toBe('cancelled');
        expect(fake.requests.at(-1)!.headers.authorization).toMatch(
          /headers="Date Content-MD5 request-line"/,
        );
      } finally {
        await hmac.close();
      }
    });

    it.each([
      ['401', { status: 401, body: { message: 'Unauthorized' } }, AccountError, 'MM_UNAUTHORIZED'],
      [
        '403',
        { status: 403, body: { message: 'Invalid authentication credentials' } },
        AccountError,
        'MM_FORBIDDEN',
      ],
      [
        '429 with Retry-After',
        { status: 429, headers: { 'retry-after': '4' }, body: { message: 'slow down' } },
        RateLimitedError,
        'HTTP_429',
      ],
      ['503', { status: 503 }, RateLimitedError, 'HTTP_503'],
      ['500', { status: 500, body: { message: 'oops' } }, RetryableSendError, 'HTTP_500'],
    ] as const)('a cancel answered %s throws one typed error', async (_, response, type, code) => {
      answer = () => response;
      const error = await adapter.cancelScheduled(randomUUID()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(type);
      expect(error).toMatchObject({ code });
      if (error instanceof RateLimitedError)
        expect(error.retryAfterMs).toBe(code === 'HTTP_429' ? 4_000 : 5_000);
    });

    it('a cancel whose connection drops after the request is ambiguous', async () => {
      answer = () => ({ status: 0 });
      await expect(adapter.cancelScheduled(randomUUID())).rejects.toBeInstanceOf(
        AmbiguousSendError,
      );
    });
  });

  describe('callbacks', () => {
    const messageId = randomUUID();
    const ourId = randomUUID();
    const deliveryReport = {
      callback_url: CALLBACK,
      delivery_report_id: randomUUID(),
      source_number: '+61491570156',
      date_received: '2017-05-20T06:30:37.642Z',
      status: 'delivered',
      delay: 0,
      billing_units: 1,
      submitted_date: '2017-05-20T06:30:37.639Z',
      original_text: 'Hello',
      message_id: messageId,
      vendor_account_id: { vendor_id: 'MessageMedia', account_id: 'MyAccount' },
      error_code: '220',
      metadata: { [METADATA_KEY]: ourId },
    };
    const reply = {
      reply_id: randomUUID(),
      message_id: messageId,
      content: 'STOP',
      source_number: '+61491570156',
      destination_number: '+61491570157',
      date_received: '2017-05-21T01:46:42.579Z',
      callback_url: CALLBACK,
      metadata: { [METADATA_KEY]: ourId },
      vendor_account_id: { vendor_id: 'MessageMedia', account_id: 'MyAccount' },
    };
    const webhook = (body: unknown, headers: Record<string, string> = {}): WebhookRequest => ({
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      rawBody: body === undefined ? '' : JSON.stringify(body),
      url: '/webhooks/mm-unit/token?x=1',
    });

    it('parses a pushed delivery report, matched through metadata', () => {
      expect(adapter.parseWebhook(webhook(deliveryReport))).toEqual({
        replies: [],
        reports: [
          {
            messageId: ourId,
            providerMessageId: messageId,
            providerStatus: 'delivered',
            status: 'DELIVERED',
            errorCode: '220',
            occurredAt: new Date('2017-05-20T06:30:37.639Z'),
          },
        ],
      });
    });

    it.each([
      ['queued', 'SENT'],
      ['processed', 'SENT'],
      ['scheduled', 'SCHEDULED'],
      ['enroute', 'SENT'],
      ['submitted', 'SENT'],
      ['expired', 'EXPIRED'],
      ['rejected', 'REJECTED'],
      ['undeliverable', 'UNDELIVERABLE'],
      ['failed', 'FAILED'],
      ['cancelled', 'CANCELLED'],
      ['mystery', 'UNKNOWN'],
    ])('maps %s to %s', (word, status) => {
      const [report] = adapter.parseWebhook(webhook({ ...deliveryReport, status: word })).reports;
      expect(report?.status).toBe(status);
    });

    it('parses a reply, linked to our message through metadata', () => {
      expect(adapter.parseWebhook(webhook(reply))).toEqual({
        reports: [],
        replies: [
          {
            from: '+61491570156',
            to: '+61491570157',
            body: 'STOP',
            providerMessageId: reply.reply_id,
            inReplyToMessageId: ourId,
            inReplyToProviderMessageId: messageId,
            occurredAt: new Date('2017-05-21T01:46:42.579Z'),
          },
        ],
      });
    });

    it.each([
      ['no body', undefined],
      ['a report without message_id', { status: 'delivered' }],
      ['a reply without source', { reply_id: 'x', content: 'hi' }],
      ['an array', [deliveryReport]],
    ])('refuses %s with WebhookPayloadError', (_, body) => {
      expect(() => adapter.parseWebhook(webhook(body))).toThrow(WebhookPayloadError);
    });

    describe('with a signature key (Enterprise Webhooks)', () => {
      const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const bare = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
      const date = new Date().toUTCString();
      /** Signs as MessageMedia's demo verifies: request line + Date + body, RSA with the digest. */
      const signed = (body: unknown, digest = 'SHA224', url = '/webhooks/mm-unit/token?x=1') => {
        const raw = JSON.stringify(body);
        const signature = sign(
          digest.toLowerCase(),
          Buffer.from(`POST ${url} HTTP/1.1${date}${raw}`),
          privateKey,
        );
        return webhook(body, {
          date,
          'x-messagemedia-signature': signature.toString('base64'),
          'x-messagemedia-digest-type': digest,
          'x-messagemedia-cipher-type': 'RSA',
          'x-messagemedia-key-id': randomUUID(),
        });
      };
      let verifying: MessageMediaProvider;
      let verifyingBare: MessageMediaProvider;
      beforeAll(() => {
        verifying = makeAdapter(fake.url, { options: { signaturePublicKey: pem } });
        verifyingBare = makeAdapter(fake.url, { options: { signaturePublicKey: bare } });
      });
      afterAll(async () => {
        await verifying.close();
        await verifyingBare.close();
      });

      it('accepts a correctly signed report (PEM or bare base64 key; SHA224 or SHA512)', () => {
        expect(verifying.parseWebhook(signed(deliveryReport)).reports).toHaveLength(1);
        expect(verifyingBare.parseWebhook(signed(reply, 'SHA512')).replies).toHaveLength(1);
      });

      it('refuses a missing, forged or tampered signature with WebhookAuthError', () => {
        expect(() => verifying.parseWebhook(webhook(deliveryReport))).toThrow(WebhookAuthError);
        const tampered = signed(deliveryReport);
        tampered.rawBody = tampered.rawBody.replace('delivered', 'failed');
        expect(() => verifying.parseWebhook(tampered)).toThrow(WebhookAuthError);
        const otherUrl = signed(deliveryReport, 'SHA224', '/webhooks/other/token');
        expect(() => verifying.parseWebhook(otherUrl)).toThrow(WebhookAuthError);
        const { privateKey: stranger } = generateKeyPairSync('rsa', { modulusLength: 2048 });
        const forged = signed(deliveryReport);
        forged.headers['x-messagemedia-signature'] = sign(
          'sha224',
          Buffer.from(`POST ${forged.url} HTTP/1.1${date}${forged.rawBody}`),
          stranger,
        ).toString('base64');
        expect(() => verifying.parseWebhook(forged)).toThrow(WebhookAuthError);
        const weird = signed(deliveryReport);
        weird.headers['x-messagemedia-digest-type'] = 'MD5';
        expect(() => verifying.parseWebhook(weird)).toThrow(WebhookAuthError);
      });
    });
  });
});
