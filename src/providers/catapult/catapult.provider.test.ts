import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { request as httpRequest } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCampaign, startCampaign } from '../../campaigns/campaign-service.js';
import { getCampaignStats } from '../../campaigns/campaign-stats.js';
import { importRecipients } from '../../campaigns/import-recipients.js';
import type { Account } from '../../config/accounts.js';
import { ConfigError } from '../../errors.js';
import { createLogger } from '../../logger.js';
import { basicAuthorization } from '../basic-auth.js';
import {
  AccountError,
  AmbiguousSendError,
  PermanentSendError,
  RateLimitedError,
  RetryableSendError,
  WebhookAuthError,
  WebhookPayloadError,
} from '../errors.js';
import type { ProviderContext, SendResult, WebhookRequest } from '../types.js';
import { webhookUrl } from '../webhook-url.js';
import { CatapultProvider, catapultProvider } from './catapult.provider.js';
import {
  countersAndTruth,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from '../../../test/helpers/harness.js';

// ---------------------------------------------------------------------------------------------
// Catapult v1 has no official OpenAPI (or any machine-readable) definition. This schema is written
// from its documents: FACTS.md §5 and docs/S4-bandwidth-catapult-v1.txt (Bandwidth/ap-docs,
// Bandwidth/node-bandwidth, python-bandwidth). Every request the adapter makes is checked against it.
const E164 = '^\\+[1-9][0-9]{1,14}$';
const messageSchema = {
  type: 'object',
  required: ['from', 'to'],
  additionalProperties: false,
  properties: {
    from: { type: 'string', pattern: E164 },
    to: { type: 'string', pattern: E164 },
    text: { type: 'string', maxLength: 2048 },
    media: { type: 'array', items: { type: 'string', format: 'uri' } },
    receiptRequested: { enum: ['none', 'all', 'error'] },
    callbackUrl: { type: 'string', format: 'uri' },
    callbackHttpMethod: { enum: ['GET', 'POST', 'get', 'post'] },
    callbackTimeout: { type: 'integer', minimum: 0, maximum: 10000 },
    fallbackUrl: { type: 'string', format: 'uri' },
    tag: { type: 'string' },
  },
} as const;
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as unknown as (ajv: Ajv) => Ajv;
const ajv = addFormats(new Ajv({ allErrors: true }));
/** POST /v1/users/{userId}/messages: one message, or an array of at most 50. */
const validateSend = ajv.compile({
  oneOf: [messageSchema, { type: 'array', minItems: 1, maxItems: 50, items: messageSchema }],
});
/** The documented sms callback event (the fake's own callbacks are checked too). */
const validateEvent = ajv.compile({
  type: 'object',
  required: ['eventType', 'direction', 'messageId', 'messageUri', 'from', 'to', 'time', 'state'],
  properties: {
    eventType: { const: 'sms' },
    direction: { enum: ['in', 'out'] },
    messageId: { type: 'string' },
    messageUri: { type: 'string', format: 'uri' },
    from: { type: 'string' },
    to: { type: 'string' },
    text: { type: 'string' },
    applicationId: { type: 'string' },
    time: { type: 'string', format: 'date-time' },
    state: { enum: ['received', 'queued', 'sending', 'sent', 'error'] },
    deliveryState: { enum: ['waiting', 'delivered', 'not-delivered'] },
    deliveryCode: { type: ['string', 'integer'] },
    deliveryDescription: { type: 'string' },
    segmentCount: { type: 'integer' },
    tag: { type: 'string' },
  },
});

const USER_ID = 'u-ebxqxzmmfyc4cfq';
const TOKEN = 't-zbq2ytm3bqn4ovi';
const SECRET = 'api-secret';
const SENDER = '+13233326955';
const CB_USER = 'cat cb';
const CB_PASSWORD = 'p@ss/w:rd';

interface Item {
  from: string;
  to: string;
  text: string;
  tag: string;
  receiptRequested: string;
  callbackUrl: string;
}

interface Stored extends Item {
  id: string;
  state: string;
  deliveryState?: string;
  deliveryCode?: number;
}

type ItemAnswer =
  { result: 'accepted'; location: string } | { result: 'error'; error: Record<string, string> };

interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

class FakeCatapult {
  server!: Server;
  url = '';
  requests: Array<{
    method: string;
    path: string;
    headers: Record<string, string | string[] | undefined>;
    body: unknown;
  }> = [];
  violations: string[] = [];
  script: Answer[] = [];
  messages = new Map<string, Stored>();
  /** Per-item refusal, for batches. */
  itemError: ((item: Item) => Record<string, string> | undefined) | undefined;
  onAccepted: ((message: Stored) => void) | undefined;
  private counter = 0;

  async start() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = raw ? JSON.parse(raw) : undefined;
        } catch {
          body = raw;
        }
        const method = req.method ?? 'GET';
        const path = req.url ?? '/';
        this.requests.push({ method, path, headers: req.headers, body });
        const answer = this.handle(method, path, req.headers, body);
        if (answer.status === 0) {
          res.socket?.destroy();
          return;
        }
        res
          .writeHead(answer.status, {
            ...(answer.body !== undefined ? { 'content-type': 'application/json' } : {}),
            ...answer.headers,
          })
          .end(answer.body === undefined ? '' : JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get posts() {
    return this.requests.filter((r) => r.method === 'POST');
  }

  get gets() {
    return this.requests.filter((r) => r.method === 'GET');
  }

  private violation(method: string, path: string, problem: string): Answer {
    this.violations.push(`${method} ${path}: ${problem}`);
    return {
      status: 400,
      body: { category: 'bad-request', code: 'fake-violation', message: problem },
    };
  }

  private handle(
    method: string,
    path: string,
    headers: Record<string, string | string[] | undefined>,
    body: unknown,
  ): Answer {
    const collection = `/v1/users/${USER_ID}/messages`;
    const one = new RegExp(`^${collection}/([^/?]+)$`).exec(path);
    if (!(method === 'POST' && path === collection) && !(method === 'GET' && one)) {
      return this.violation(method, path, 'no such documented operation');
    }
    if (headers.authorization !== basicAuthorization(TOKEN, SECRET)) {
      return {
        status: 401,
        body: { category: 'authentication', code: 'unauthorized', message: 'Invalid credentials' },
      };
    }
    if (method === 'POST') {
      if (!String(headers['content-type']).startsWith('application/json'))
        return this.violation(method, path, 'not JSON');
      if (!validateSend(body))
        return this.violation(method, path, ajv.errorsText(validateSend.errors));
    }
    const scripted = this.script.shift();
    if (scripted) return scripted;
    if (method === 'GET') {
      const found = this.messages.get(decodeURIComponent(one![1]!));
      if (!found)
        return {
          status: 404,
          body: { category: 'not-found', code: 'message-not-found', message: 'not found' },
        };
      return {
        status: 200,
        body: {
          id: found.id,
          messageId: found.id,
          direction: 'out',
          from: found.from,
          to: found.to,
          text: found.text,
          time: '2017-02-01T21:10:32Z',
          state: found.state,
          tag: found.tag,
          callbackUrl: found.callbackUrl,
          ...(found.deliveryState ? { deliveryState: found.deliveryState } : {}),
          ...(found.deliveryCode !== undefined ? { deliveryCode: found.deliveryCode } : {}),
        },
      };
    }
    const accept = (item: Item): ItemAnswer => {
      const refusal = this.itemError?.(item);
      if (refusal) return { result: 'error', error: refusal };
      const id = `m-${(++this.counter).toString(36)}${randomUUID().slice(0, 6)}`;
      const stored: Stored = { ...item, id, state: 'queued' };
      this.messages.set(id, stored);
      this.onAccepted?.(stored);
      return { result: 'accepted', location: `${this.url}${collection}/${id}` };
    };
    if (Array.isArray(body)) return { status: 202, body: (body as Item[]).map(accept) };
    const answer = accept(body as Item);
    if (answer.result === 'error') return { status: 400, body: answer.error };
    return { status: 201, headers: { location: answer.location } };
  }

  async close() {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const CALLBACK_URL = 'http://127.0.0.1:9/webhooks/cat-unit/tok3n';

function makeAccount(fake: FakeCatapult, overrides: Partial<Account> = {}): Account {
  return {
    name: 'cat-unit',
    provider: 'catapult',
    baseUrl: fake.url,
    credentials: { apiToken: TOKEN, apiSecret: SECRET },
    sender: SENDER,
    rate: 100,
    concurrency: 4,
    deliveryPolicy: 'at-most-once',
    options: { userId: USER_ID },
    ...overrides,
  };
}

function makeContext(account: Account, callbackUrl = CALLBACK_URL): ProviderContext {
  return { account, callbackUrl, logger: createLogger({ level: 'silent' }) };
}

function sms(body = 'Hello from Herald', to = '+13865245000') {
  return { messageId: randomUUID(), to, body };
}

function event(fields: Record<string, unknown>) {
  const body = {
    eventType: 'sms',
    direction: 'out',
    messageId: 'm-abc123',
    messageUri: `https://api.catapult.inetwork.com/v1/users/${USER_ID}/messages/m-abc123`,
    from: SENDER,
    to: '+13865245000',
    text: 'Example',
    applicationId: 'a-j4f2j5eo',
    time: '2012-11-14T16:13:06.076Z',
    state: 'sent',
    ...fields,
  };
  expect(validateEvent(body), ajv.errorsText(validateEvent.errors)).toBe(true);
  return body;
}

function webhook(body: unknown, headers: Record<string, string> = {}): WebhookRequest {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'BandwidthAPI/v1', ...headers },
    body,
    rawBody: body === undefined ? '' : JSON.stringify(body),
    url: '/webhooks/cat-unit/tok3n',
  };
}

function errorOf(result: SendResult | undefined) {
  if (!result || result.ok)
    throw new Error(`expected a failed result, got ${JSON.stringify(result)}`);
  return result.error;
}

async function outcome(promise: Promise<SendResult[]>): Promise<unknown> {
  try {
    return errorOf((await promise)[0]);
  } catch (error) {
    return error;
  }
}

describe('Catapult v1 adapter against its documented wire format', () => {
  const fake = new FakeCatapult();
  const adapters: CatapultProvider[] = [];
  const adapter = (overrides: Partial<Account> = {}, callbackUrl?: string) => {
    const created = new CatapultProvider(makeContext(makeAccount(fake, overrides), callbackUrl));
    adapters.push(created);
    return created;
  };
  const withCallbackCreds = {
    credentials: {
      apiToken: TOKEN,
      apiSecret: SECRET,
      callbackUsername: CB_USER,
      callbackPassword: CB_PASSWORD,
    },
  };

  beforeAll(async () => {
    await fake.start();
  });
  afterAll(async () => {
    await fake.close();
  });
  beforeEach(() => {
    fake.requests.length = 0;
    fake.script = [];
    fake.itemError = undefined;
  });
  afterEach(async () => {
    await Promise.all(adapters.splice(0).map((a) => a.close()));
    expect(fake.violations).toEqual([]);
  });

  describe('sending', () => {
    it('sends one message as the documented single form → 201 Location, id = last path segment', async () => {
      const cat = adapter();
      expect(cat.maxBatchSize).toBe(50);
      const message = sms();
      const [result] = await cat.sendBatch([message]);
      const [request] = fake.posts;
      expect(request!.path).toBe(`/v1/users/${USER_ID}/messages`);
      expect(request!.headers.authorization).toBe(basicAuthorization(TOKEN, SECRET));
      expect(request!.body).toEqual({
        from: SENDER,
        to: '+13865245000',
        text: message.body,
        tag: message.messageId,
        receiptRequested: 'all',
        callbackUrl: CALLBACK_URL,
      });
      const id = [...fake.messages.keys()].at(-1)!;
      expect(id).toMatch(/^m-/);
      expect(result).toEqual({ ok: true, providerMessageId: id });
    });

    it('sends up to 50 as one JSON array → 202 with per-item results in order', async () => {
      const batch = Array.from({ length: 50 }, (_, i) =>
        sms(`hi ${i}`, `+1386524${String(i).padStart(4, '0')}`),
      );
      const results = await adapter().sendBatch(batch);
      expect(fake.posts).toHaveLength(1);
      const sent = fake.posts[0]!.body as Item[];
      expect(sent.map((i) => i.tag)).toEqual(batch.map((m) => m.messageId));
      // Each result's id belongs to that message.
      results.forEach((result, i) => {
        expect(result.ok).toBe(true);
        expect(
          fake.messages.get((result as { providerMessageId: string }).providerMessageId)!.tag,
        ).toBe(batch[i]!.messageId);
      });
    });

    it('maps per-item errors to that message only: refusals are permanent, item rate limits hold it back', async () => {
      fake.itemError = (item) =>
        item.to.endsWith('2')
          ? {
              category: 'bad-request',
              code: 'invalid-destination',
              message: 'The destination number is invalid',
            }
          : item.to.endsWith('3')
            ? {
                category: 'limit',
                code: 'message-rate-limit-per-tn',
                message: 'You can send 1 messages per 1 second',
              }
            : undefined;
      const results = await adapter().sendBatch(
        ['+13865240001', '+13865240002', '+13865240003', '+13865240004'].map((to) => sms('x', to)),
      );
      expect(results.map((r) => r.ok)).toEqual([true, false, false, true]);
      expect(errorOf(results[1])).toBeInstanceOf(PermanentSendError);
      expect(errorOf(results[1]).code).toBe('invalid-destination');
      expect(errorOf(results[2])).toBeInstanceOf(RateLimitedError);
    });

    it('refuses bodies over 2,048 characters without sending them, keeping the batch order', async () => {
      const cat = adapter();
      const batch = [sms('a'), sms('b'.repeat(2049)), sms('c')];
      const results = await cat.sendBatch(batch);
      expect(results.map((r) => r.ok)).toEqual([true, false, true]);
      expect(errorOf(results[1]).code).toBe('BODY_TOO_LONG');
      expect((fake.posts[0]!.body as Item[]).map((i) => i.text)).toEqual(['a', 'c']);
      // Only oversize: no request at all. One left: the single form.
      await cat.sendBatch([sms('d'.repeat(2049))]);
      expect(fake.posts).toHaveLength(1);
      await cat.sendBatch([sms('e'.repeat(3000)), sms('f'.repeat(2048))]);
      expect(fake.posts[1]!.body).toMatchObject({ text: 'f'.repeat(2048) });
    });

    it('has no scheduling: a message with a send time fails SCHEDULE_UNSUPPORTED and stays out of the request', async () => {
      expect(catapultProvider.nativeScheduling).toBeUndefined();
      const cat = adapter();
      expect('cancelScheduled' in cat).toBe(false);
      const batch = [sms('a'), { ...sms('b'), sendAt: new Date(Date.now() + 3_600_000) }, sms('c')];
      const results = await cat.sendBatch(batch);
      expect(results.map((r) => r.ok)).toEqual([true, false, true]);
      expect(errorOf(results[1])).toBeInstanceOf(PermanentSendError);
      expect(errorOf(results[1]).code).toBe('SCHEDULE_UNSUPPORTED');
      expect((fake.posts[0]!.body as Item[]).map((i) => i.text)).toEqual(['a', 'c']);
      // Only a scheduled one: no request at all.
      await cat.sendBatch([{ ...sms('d'), sendAt: new Date(Date.now() + 60_000) }]);
      expect(fake.posts).toHaveLength(1);
    });

    it('embeds the callback credentials in the callbackUrl, URL-encoded', async () => {
      await adapter(withCallbackCreds).sendBatch([sms()]);
      const url = new URL((fake.posts[0]!.body as Item).callbackUrl);
      expect(decodeURIComponent(url.username)).toBe(CB_USER);
      expect(decodeURIComponent(url.password)).toBe(CB_PASSWORD);
      expect(`${url.origin}${url.pathname}`).toBe(CALLBACK_URL);
    });
  });

  describe('errors', () => {
    const err = (
      status: number,
      category: string,
      code: string,
      message = code,
      headers?: Record<string, string>,
    ): Answer => ({
      status,
      headers,
      body: { category, code, message },
    });

    it('403 category limit (message-rate-limit…) → RateLimitedError for the documented period', async () => {
      fake.script = [
        err(403, 'limit', 'message-rate-limit', 'You can send 1 messages per 10 seconds'),
      ];
      const limited = await outcome(adapter().sendBatch([sms()]));
      expect(limited).toBeInstanceOf(RateLimitedError);
      expect((limited as RateLimitedError).retryAfterMs).toBe(10_000);
      fake.script = [err(403, 'limit', 'message-rate-limit-overall', 'Too many messages')];
      expect(
        ((await outcome(adapter().sendBatch([sms(), sms()]))) as RateLimitedError).retryAfterMs,
      ).toBe(1_000);
    });

    it('400 message-delay-limit (queue full) → RateLimitedError with a growing backoff', async () => {
      const cat = adapter();
      fake.script = [
        err(400, 'bad-request', 'message-delay-limit'),
        err(400, 'bad-request', 'message-delay-limit'),
      ];
      const first = await outcome(cat.sendBatch([sms()]));
      const second = await outcome(cat.sendBatch([sms(), sms()]));
      expect([first, second].every((e) => e instanceof RateLimitedError)).toBe(true);
      expect([
        (first as RateLimitedError).retryAfterMs,
        (second as RateLimitedError).retryAfterMs,
      ]).toEqual([10_000, 20_000]);
    });

    it('429 → RateLimitedError until X-RateLimit-Reset (epoch ms)', async () => {
      const reset = Date.now() + 60_000;
      fake.script = [
        err(429, 'limit', 'too-many-requests', 'Too many requests', {
          'x-ratelimit-reset': String(reset),
        }),
      ];
      const limited = (await outcome(adapter().sendBatch([sms()]))) as RateLimitedError;
      expect(limited).toBeInstanceOf(RateLimitedError);
      expect(limited.retryAfterMs).toBeGreaterThan(50_000);
      expect(limited.retryAfterMs).toBeLessThanOrEqual(60_000);
    });

    it('401 → AccountError, 5xx → RetryableSendError, lost answer → AmbiguousSendError', async () => {
      fake.script = [err(401, 'authentication', 'number-access-denied')];
      expect(await outcome(adapter().sendBatch([sms()]))).toBeInstanceOf(AccountError);
      expect(
        await outcome(
          adapter({ credentials: { apiToken: TOKEN, apiSecret: 'wrong' } }).sendBatch([sms()]),
        ),
      ).toBeInstanceOf(AccountError);
      fake.script = [err(503, 'unavailable', 'service-unavailable')];
      expect(await outcome(adapter().sendBatch([sms(), sms()]))).toBeInstanceOf(RetryableSendError);
      fake.script = [{ status: 0 }];
      expect(await outcome(adapter().sendBatch([sms()]))).toBeInstanceOf(AmbiguousSendError);
    });

    it('other 4xx → PermanentSendError (a single message: its result; a batch: the whole request)', async () => {
      fake.script = [err(400, 'bad-request', 'invalid-to', 'The "to" number is invalid')];
      const [single] = await adapter().sendBatch([sms()]);
      expect(errorOf(single)).toBeInstanceOf(PermanentSendError);
      expect(errorOf(single).code).toBe('invalid-to');
      fake.script = [
        err(403, 'limit-exceeded', 'multi-message-limit', 'Too many messages in one request'),
      ];
      await expect(adapter().sendBatch([sms(), sms()])).rejects.toBeInstanceOf(PermanentSendError);
    });
  });

  describe('callbacks', () => {
    it('maps state / deliveryState / deliveryCode of outbound sms events', () => {
      const cat = adapter();
      const ours = randomUUID();
      const cases: Array<[Record<string, unknown>, string, string, string | undefined]> = [
        [{ state: 'queued' }, 'queued', 'QUEUED', undefined],
        [{ state: 'sending' }, 'sending', 'QUEUED', undefined],
        [{ state: 'sent' }, 'sent', 'SENT', undefined],
        [{ state: 'sent', deliveryState: 'waiting' }, 'sent/waiting', 'SENT', undefined],
        [
          { state: 'sent', deliveryState: 'delivered', deliveryCode: 0 },
          'sent/delivered',
          'DELIVERED',
          undefined,
        ],
        [
          { state: 'sent', deliveryState: 'not-delivered', deliveryCode: '775' },
          'sent/not-delivered',
          'REJECTED',
          '775',
        ],
        [
          { state: 'sent', deliveryState: 'not-delivered', deliveryCode: 188 },
          'sent/not-delivered',
          'REJECTED',
          '188',
        ],
        [
          { state: 'sent', deliveryState: 'not-delivered', deliveryCode: 720 },
          'sent/not-delivered',
          'UNDELIVERABLE',
          '720',
        ],
        [
          { state: 'sent', deliveryState: 'not-delivered', deliveryCode: 902 },
          'sent/not-delivered',
          'EXPIRED',
          '902',
        ],
        [
          { state: 'sent', deliveryState: 'not-delivered', deliveryCode: 999 },
          'sent/not-delivered',
          'UNKNOWN',
          '999',
        ],
        [
          { state: 'sent', deliveryState: 'not-delivered', deliveryCode: 610 },
          'sent/not-delivered',
          'FAILED',
          '610',
        ],
        [
          { state: 'error', deliveryState: 'not-delivered', deliveryCode: 100 },
          'error/not-delivered',
          'FAILED',
          '100',
        ],
        [{ state: 'error' }, 'error', 'FAILED', undefined],
      ];
      for (const [fields, providerStatus, status, errorCode] of cases) {
        const { reports, replies } = cat.parseWebhook(
          webhook(event({ ...fields, tag: ours, deliveryDescription: 'described' })),
        );
        expect(replies).toEqual([]);
        expect(reports).toEqual([
          {
            messageId: ours,
            providerMessageId: 'm-abc123',
            providerStatus,
            status,
            errorCode,
            description: 'described',
            occurredAt: new Date('2012-11-14T16:13:06.076Z'),
          },
        ]);
      }
      expect(
        cat.parseWebhook(webhook(event({ tag: 'not-ours' }))).reports[0]!.messageId,
      ).toBeUndefined();
    });

    it('parses an inbound sms (direction in, state received) as a reply', () => {
      const { reports, replies } = adapter().parseWebhook(
        webhook(
          event({
            direction: 'in',
            state: 'received',
            from: '+13865245000',
            to: SENDER,
            text: 'STOP',
            messageId: 'm-in1',
          }),
        ),
      );
      expect(reports).toEqual([]);
      expect(replies).toEqual([
        {
          from: '+13865245000',
          to: SENDER,
          body: 'STOP',
          providerMessageId: 'm-in1',
          occurredAt: new Date('2012-11-14T16:13:06.076Z'),
        },
      ]);
    });

    it('reads a GET callback from its query parameters', () => {
      const fields = event({ state: 'sent', deliveryState: 'delivered', deliveryCode: '0' });
      const query = new URLSearchParams(fields as Record<string, string>).toString();
      const { reports } = adapter().parseWebhook({
        method: 'GET',
        headers: {},
        body: undefined,
        rawBody: '',
        url: `/webhooks/cat-unit/tok3n?${query}`,
      });
      expect(reports[0]).toMatchObject({ status: 'DELIVERED', providerMessageId: 'm-abc123' });
    });

    it('requires the credentials embedded in the callbackUrl when configured', () => {
      const cat = adapter(withCallbackCreds);
      const body = event({ state: 'sent' });
      expect(() => cat.parseWebhook(webhook(body))).toThrow(WebhookAuthError);
      expect(() =>
        cat.parseWebhook(webhook(body, { authorization: basicAuthorization(CB_USER, 'nope') })),
      ).toThrow(WebhookAuthError);
      expect(
        cat.parseWebhook(webhook(body, { authorization: basicAuthorization(CB_USER, CB_PASSWORD) }))
          .reports,
      ).toHaveLength(1);
    });

    it('refuses malformed events with WebhookPayloadError and ignores non-sms events', () => {
      const cat = adapter();
      const good = event({});
      for (const body of [
        undefined,
        'text',
        { ...good, messageId: undefined },
        { ...good, time: 'soon' },
        { ...good, direction: 'sideways' },
        { ...good, state: '' },
      ]) {
        expect(() => cat.parseWebhook(webhook(body)), JSON.stringify(body)).toThrow(
          WebhookPayloadError,
        );
      }
      expect(cat.parseWebhook(webhook({ ...good, eventType: 'mms' }))).toEqual({
        reports: [],
        replies: [],
      });
    });
  });

  describe('polling', () => {
    it('GETs each message and maps its state; unknown ids are left out', async () => {
      const cat = adapter();
      const batch = [sms(), sms(), sms()];
      const ids = (await cat.sendBatch(batch)).map(
        (r) => (r as { providerMessageId: string }).providerMessageId,
      );
      Object.assign(fake.messages.get(ids[0]!)!, {
        state: 'sent',
        deliveryState: 'delivered',
        deliveryCode: 0,
      });
      Object.assign(fake.messages.get(ids[1]!)!, {
        state: 'sent',
        deliveryState: 'not-delivered',
        deliveryCode: 775,
      });
      const reports = await cat.pollStatus([...ids, 'm-unknown']);
      expect(reports.map((r) => [r.providerMessageId, r.messageId, r.status, r.errorCode])).toEqual(
        [
          [ids[0], batch[0]!.messageId, 'DELIVERED', undefined],
          [ids[1], batch[1]!.messageId, 'REJECTED', '775'],
          [ids[2], batch[2]!.messageId, 'QUEUED', undefined],
        ],
      );
      expect(fake.gets.map((r) => r.path)).toEqual(
        [...ids, 'm-unknown'].map((id) => `/v1/users/${USER_ID}/messages/${id}`),
      );
    });

    it('stops polling until X-RateLimit-Reset after a 429', async () => {
      const cat = adapter();
      fake.script = [
        {
          status: 429,
          headers: { 'x-ratelimit-reset': String(Date.now() + 60_000) },
          body: { category: 'limit', code: 'rate-limit', message: 'slow down' },
        },
      ];
      await cat.pollStatus(['m-1']);
      await cat.pollStatus(['m-2', 'm-3']);
      expect(fake.gets).toHaveLength(1);
    });

    it('has no health check (none is documented)', () => {
      expect('checkHealth' in adapter()).toBe(false);
    });
  });

  it('checks its configuration', () => {
    const account = makeAccount(fake);
    const create = (overrides: Partial<Account>) => () =>
      new CatapultProvider(makeContext({ ...account, ...overrides }));
    expect(create({ options: { userId: 'ebxqxzmmfyc4cfq' } })).toThrow(ConfigError);
    expect(create({ options: {} })).toThrow(/userId/);
    expect(create({ credentials: { apiToken: TOKEN } })).toThrow(/apiSecret/);
    expect(
      create({ credentials: { apiToken: TOKEN, apiSecret: SECRET, callbackPassword: 'x' } }),
    ).toThrow(ConfigError);
    expect(create({ sender: undefined })).toThrow(/sender/);
  });
});

// ---------------------------------------------------------------------------------------------
describe('a Catapult campaign end to end', () => {
  const ACCOUNT = 'catapult-test';
  const fake = new FakeCatapult();
  let env: TestEnv;
  const pending: Array<Promise<unknown>> = [];
  const callbackStatuses: number[] = [];

  const outcomeFor = (
    to: string,
  ): { deliveryState: string; deliveryCode: number; status: string } => {
    const last = Number(to.at(-1));
    if (last === 3)
      return { deliveryState: 'not-delivered', deliveryCode: 775, status: 'REJECTED' };
    if (last === 5)
      return { deliveryState: 'not-delivered', deliveryCode: 720, status: 'UNDELIVERABLE' };
    if (last === 7) return { deliveryState: 'not-delivered', deliveryCode: 902, status: 'EXPIRED' };
    return { deliveryState: 'delivered', deliveryCode: 0, status: 'DELIVERED' };
  };

  /** Posts to a callbackUrl as an HTTP client does with credentials in the URL: as Basic auth. */
  async function post(callbackUrl: string, body: unknown) {
    const url = new URL(callbackUrl);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'BandwidthAPI/v1',
    };
    if (url.username)
      headers.authorization = basicAuthorization(
        decodeURIComponent(url.username),
        decodeURIComponent(url.password),
      );
    url.username = '';
    url.password = '';
    const response = await httpRequest(url, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
    });
    await response.body.dump();
    callbackStatuses.push(response.statusCode);
    return response.statusCode;
  }

  beforeAll(async () => {
    await fake.start();
    fake.onAccepted = (message) => {
      const result = outcomeFor(message.to);
      const base = {
        messageId: message.id,
        messageUri: `${fake.url}/v1/users/${USER_ID}/messages/${message.id}`,
        from: message.from,
        to: message.to,
        text: message.text,
        tag: message.tag,
      };
      pending.push(
        new Promise((resolve) => setTimeout(resolve, 20)).then(async () => {
          await post(
            message.callbackUrl,
            event({ ...base, state: 'sent', deliveryState: 'waiting' }),
          );
          await post(
            message.callbackUrl,
            event({
              ...base,
              state: 'sent',
              deliveryState: result.deliveryState,
              deliveryCode: result.deliveryCode,
            }),
          );
        }),
      );
    };
    env = await createTestEnv({
      account: {
        name: ACCOUNT,
        provider: 'catapult',
        baseUrl: fake.url,
        credentials: {
          apiToken: TOKEN,
          apiSecret: SECRET,
          callbackUsername: CB_USER,
          callbackPassword: CB_PASSWORD,
        },
        options: { userId: USER_ID },
        sender: SENDER,
        rate: 500,
      },
    });
  });
  afterAll(async () => {
    await Promise.allSettled(pending);
    await env?.close();
    await fake.close();
  });

  it('sends every recipient once in batches of ≤ 50 and folds the delivery callbacks', async () => {
    const { context } = env;
    const campaign = await createCampaign(context, {
      name: 'cat-flow',
      account: ACCOUNT,
      template: 'Hi {{first_name}}',
    });
    const imported = await importRecipients(
      context,
      campaign.id,
      Readable.from([recipientsCsv(50)]),
    );
    expect(imported).toMatchObject({ accepted: 50 });
    await env.startWorkerSet();
    await startCampaign(context, campaign.id);

    const stats = await waitFor(
      async () => {
        const s = await getCampaignStats(context, campaign.id);
        return s.campaign.status === 'COMPLETED' && s.awaitingReport === 0 ? s : undefined;
      },
      'the Catapult campaign to complete',
      40_000,
    );
    expect(stats.total).toBe(50);
    await Promise.all(pending);
    expect(callbackStatuses.length).toBe(100);
    expect(callbackStatuses.every((s) => s === 204)).toBe(true);

    // Each message sent exactly once, carrying our id as tag and the signed callback URL.
    const items = fake.posts.flatMap((r) =>
      Array.isArray(r.body) ? (r.body as Item[]) : [r.body as Item],
    );
    expect(items).toHaveLength(50);
    expect(new Set(items.map((i) => i.tag)).size).toBe(50);
    const expectedCallback = new URL(
      webhookUrl(env.config.publicUrl, env.config.webhookSecret!, ACCOUNT),
    );
    for (const item of items) {
      const url = new URL(item.callbackUrl);
      expect(`${url.origin}${url.pathname}`).toBe(expectedCallback.href);
      expect(decodeURIComponent(url.username)).toBe(CB_USER);
    }

    const messages = await env.query<{
      id: string;
      phone: string;
      status: string;
      provider_message_id: string;
    }>('SELECT id, phone, status, provider_message_id FROM message WHERE campaign_id = $1', [
      campaign.id,
    ]);
    const byTag = new Map([...fake.messages.values()].map((m) => [m.tag, m]));
    for (const m of messages) {
      expect(m.provider_message_id).toBe(byTag.get(m.id)!.id);
      expect(m.status).toBe(outcomeFor(m.phone).status);
    }
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);

    // A forged callback (no credentials) is refused by the real route.
    const forged = new URL(expectedCallback);
    const response = await httpRequest(forged, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(event({})),
    });
    await response.body.dump();
    expect(response.statusCode).toBe(401);
    expect(fake.violations).toEqual([]);
  });
});
