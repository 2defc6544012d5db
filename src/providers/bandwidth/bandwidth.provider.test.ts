import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { request as httpRequest } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { createCampaign, startCampaign } from '../../campaigns/campaign-service.js';
import { getCampaignStats } from '../../campaigns/campaign-stats.js';
import { importRecipients } from '../../campaigns/import-recipients.js';
import type { Account } from '../../config/accounts.js';
import { ConfigError } from '../../errors.js';
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
import type { ProviderContext, SendResult, WebhookRequest } from '../types.js';
import { webhookUrl } from '../webhook-url.js';
import {
  BandwidthProvider,
  bandwidthOptionsSchema,
  bandwidthProvider,
  type BandwidthInternals,
} from './bandwidth.provider.js';
import { basicAuthorization } from '../basic-auth.js';
import {
  startOpenApiFake,
  specPath,
  type FakeRequest,
  type FakeResponse,
  type OpenApiFake,
} from '../../../test/helpers/openapi-fake.js';
import {
  countersAndTruth,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from '../../../test/helpers/harness.js';

// The newest official Bandwidth spec (OAuth2, priority, message-read); messaging lives under /api/v2.
const SPEC = 'bandwidth-all-apis.yml';
const BASE_PATH = '/api/v2';
const ACCOUNT_ID = '9900000';
const APPLICATION_ID = '93de2206-9669-4e07-948d-329f4b722ee2';
const SENDER = '+15551113333';
const USER = 'api-user';
const PASSWORD = 'api-pass';
const CLIENT_ID = 'client-id';
const CLIENT_SECRET = 'client-secret';
const CB_USER = 'bw-callbacks';
const CB_PASSWORD = 'p@ss:word';

// ---------------------------------------------------------------------------------------------
// The spec's own callback schemas: every callback payload used below is checked against them.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as unknown as (ajv: Ajv) => Ajv;
let validateStatusCallback: ValidateFunction;
let validateInboundCallback: ValidateFunction;

function loadCallbackSchemas() {
  const doc = parseYaml(readFileSync(specPath(SPEC), 'utf8'), { maxAliasCount: -1 }) as Record<
    string,
    unknown
  >;
  const ajv = new Ajv({ strict: false, validateSchema: false, logger: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema(doc, 'spec');
  validateStatusCallback = ajv.compile({ $ref: 'spec#/components/schemas/statusCallback' });
  validateInboundCallback = ajv.compile({ $ref: 'spec#/components/schemas/inboundCallback' });
}

function expectValidCallback(event: Record<string, unknown>) {
  const validate =
    event.type === 'message-received' ? validateInboundCallback : validateStatusCallback;
  expect(validate(event), JSON.stringify(validate.errors)).toBe(true);
}

function statusCallback(
  type: string,
  options: {
    id?: string;
    tag?: string;
    errorCode?: number;
    description?: string;
    to?: string;
  } = {},
) {
  const event: Record<string, unknown> = {
    time: '2024-12-02T20:15:57.278Z',
    type,
    to: options.to ?? '+15552223333',
    description: options.description ?? 'Message delivered to carrier.',
    message: {
      id: options.id ?? '1661365814859loidf7mcwd4qacn7',
      owner: SENDER,
      applicationId: APPLICATION_ID,
      time: '2024-12-02T20:15:57.666Z',
      segmentCount: 1,
      direction: 'out',
      to: [options.to ?? '+15552223333'],
      from: SENDER,
      text: '',
      ...(options.tag !== undefined ? { tag: options.tag } : {}),
    },
  };
  if (options.errorCode !== undefined) event.errorCode = options.errorCode;
  expectValidCallback(event);
  return event;
}

function inboundCallback(options: { direction?: 'in' | 'out'; text?: string } = {}) {
  const event = {
    time: '2024-12-02T20:16:01.000Z',
    type: 'message-received',
    to: SENDER,
    description: 'Incoming message received',
    message: {
      id: '14762070468292kw2fuqty55yp2b2',
      owner: SENDER,
      applicationId: APPLICATION_ID,
      time: '2024-12-02T20:16:01.000Z',
      segmentCount: 1,
      direction: options.direction ?? 'in',
      to: [SENDER],
      from: '+15552223333',
      text: options.text ?? 'STOP',
    },
  };
  expectValidCallback(event);
  return event;
}

// ---------------------------------------------------------------------------------------------
// The fake Bandwidth: the spec-validating messaging API plus an OAuth token endpoint.

interface StoredMessage {
  id: string;
  tag: string;
  to: string;
  status: string;
  errorCode?: number;
}

class FakeBandwidth {
  api!: OpenApiFake;
  tokenServer!: Server;
  tokenUrl = '';
  /** Scripted answers for the next create/list requests, in order (after the auth check). */
  script: FakeResponse[] = [];
  messages = new Map<string, StoredMessage>();
  tokenRequests: Array<{ authorization: string | undefined; body: string }> = [];
  validTokens = new Set<string>();
  tokenLifetimeSeconds = 3600;
  tokenAnswer: FakeResponse | undefined;
  onAccepted: ((message: StoredMessage) => void) | undefined;
  private counter = 0;
  private tokenCounter = 0;

  async start() {
    this.api = await startOpenApiFake({
      spec: SPEC,
      basePath: BASE_PATH,
      validateResponses: true,
      handle: (request) => this.handle(request),
    });
    this.tokenServer = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        this.tokenRequests.push({ authorization: req.headers.authorization, body });
        const answer =
          this.tokenAnswer ??
          this.issueToken(req.headers.authorization, body, req.headers['content-type']);
        res
          .writeHead(answer.status, { 'content-type': 'application/json' })
          .end(JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((resolve) => this.tokenServer.listen(0, '127.0.0.1', resolve));
    this.tokenUrl = `http://127.0.0.1:${(this.tokenServer.address() as AddressInfo).port}/api/v1/oauth2/token`;
  }

  private issueToken(
    authorization: string | undefined,
    body: string,
    contentType: string | undefined,
  ): FakeResponse {
    if (authorization !== basicAuthorization(CLIENT_ID, CLIENT_SECRET)) {
      return { status: 401, body: { error: 'invalid_client' } };
    }
    if (
      body !== 'grant_type=client_credentials' ||
      !contentType?.startsWith('application/x-www-form-urlencoded')
    ) {
      return { status: 400, body: { error: 'unsupported_grant_type' } };
    }
    const token = `tok-${++this.tokenCounter}`;
    this.validTokens.add(token);
    return {
      status: 200,
      body: { access_token: token, token_type: 'Bearer', expires_in: this.tokenLifetimeSeconds },
    };
  }

  get creates() {
    return this.api.requests.filter((r) => r.method === 'POST');
  }

  get lists() {
    return this.api.requests.filter((r) => r.method === 'GET');
  }

  private authorized(request: FakeRequest): boolean {
    const auth = String(request.headers.authorization ?? '');
    if (auth.startsWith('Bearer ')) return this.validTokens.has(auth.slice(7));
    return auth === basicAuthorization(USER, PASSWORD);
  }

  private handle(request: FakeRequest): FakeResponse {
    if (!this.authorized(request)) {
      return { status: 401, body: { type: 'unauthorized', description: 'Authentication Failed' } };
    }
    const scripted = this.script.shift();
    if (scripted) return scripted;
    if (request.method === 'POST') {
      const body = request.body as {
        to: string[];
        tag: string;
        text: string;
        applicationId: string;
        from: string;
      };
      const id = `${Date.now()}${String(++this.counter).padStart(4, '0')}bw${randomUUID().slice(0, 8)}`;
      const stored: StoredMessage = { id, tag: body.tag, to: body.to[0]!, status: 'ACCEPTED' };
      this.messages.set(id, stored);
      this.onAccepted?.(stored);
      return {
        status: 202,
        body: {
          id,
          owner: body.from,
          applicationId: body.applicationId,
          time: new Date().toISOString(),
          segmentCount: body.text.length > 160 ? Math.ceil(body.text.length / 153) : 1,
          direction: 'out',
          to: body.to,
          from: body.from,
          text: body.text,
          tag: body.tag,
        },
      };
    }
    const id = request.query.get('messageId') ?? '';
    const found = this.messages.get(id);
    return {
      status: 200,
      body: {
        totalCount: found ? 1 : 0,
        pageInfo: {},
        messages: found
          ? [
              {
                messageId: found.id,
                accountId: ACCOUNT_ID,
                sourceTn: SENDER,
                destinationTn: found.to,
                messageStatus: found.status,
                messageDirection: 'OUTBOUND',
                messageType: 'sms',
                segmentCount: 1,
                ...(found.errorCode !== undefined ? { errorCode: found.errorCode } : {}),
                receiveTime: '2024-12-02T20:15:57.000Z',
              },
            ]
          : [],
      },
    };
  }

  async close() {
    await this.api.close();
    this.tokenServer.closeAllConnections();
    await new Promise<void>((resolve) => this.tokenServer.close(() => resolve()));
  }
}

function makeAccount(fake: FakeBandwidth, overrides: Partial<Account> = {}): Account {
  return {
    name: 'bw-unit',
    provider: 'bandwidth',
    baseUrl: fake.api.url,
    credentials: { username: USER, password: PASSWORD },
    sender: SENDER,
    rate: 100,
    concurrency: 4,
    deliveryPolicy: 'at-most-once',
    options: { accountId: ACCOUNT_ID, applicationId: APPLICATION_ID },
    ...overrides,
  };
}

function makeContext(account: Account): ProviderContext {
  return {
    account,
    callbackUrl: 'http://127.0.0.1:9/webhooks/bw-unit/token',
    logger: createLogger({ level: 'silent' }),
  };
}

function sms(body = 'Hello from Herald', to = '+15552223333') {
  return { messageId: randomUUID(), to, body };
}

function webhook(body: unknown, headers: Record<string, string> = {}): WebhookRequest {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
    rawBody: body === undefined ? '' : JSON.stringify(body),
    url: '/webhooks/x/y',
  };
}

function errorOf(result: SendResult | undefined) {
  if (!result || result.ok)
    throw new Error(`expected a failed result, got ${JSON.stringify(result)}`);
  return result.error;
}

describe('Bandwidth Messaging v2 adapter against the official spec', () => {
  const fake = new FakeBandwidth();
  const adapters: BandwidthProvider[] = [];
  const adapter = (overrides: Partial<Account> = {}, internals?: BandwidthInternals) => {
    const created = new BandwidthProvider(makeContext(makeAccount(fake, overrides)), internals);
    adapters.push(created);
    return created;
  };
  const oauth = (clientSecret = CLIENT_SECRET): Partial<Account> => ({
    credentials: { clientId: CLIENT_ID, clientSecret },
    options: { accountId: ACCOUNT_ID, applicationId: APPLICATION_ID, tokenUrl: fake.tokenUrl },
  });

  beforeAll(async () => {
    loadCallbackSchemas();
    await fake.start();
  });
  afterAll(async () => {
    await fake.close();
  });
  beforeEach(() => {
    fake.api.requests.length = 0;
    fake.tokenRequests.length = 0;
    fake.script = [];
    fake.tokenAnswer = undefined;
    fake.tokenLifetimeSeconds = 3600;
    fake.validTokens.clear();
  });
  afterEach(async () => {
    await Promise.all(adapters.splice(0).map((a) => a.close()));
    // The one answer the spec cannot declare: the fake hanging up on purpose (status 0).
    expect(
      fake.api.violations.filter((v) => !v.endsWith('response status 0 not declared')),
    ).toEqual([]);
  });

  describe('sending', () => {
    it('sends one recipient per request with Basic auth, tag = our id, from = sender, and returns Bandwidth segments', async () => {
      const bw = adapter();
      expect(bw.maxBatchSize).toBe(1);
      const message = sms('x'.repeat(200));
      const [result] = await bw.sendBatch([message]);
      expect(result).toMatchObject({ ok: true, segments: 2 });
      const [request] = fake.creates;
      expect(request!.path).toBe(`/users/${ACCOUNT_ID}/messages`);
      expect(request!.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(request!.headers.authorization).toBe(basicAuthorization(USER, PASSWORD));
      expect(request!.body).toEqual({
        applicationId: APPLICATION_ID,
        to: ['+15552223333'],
        from: SENDER,
        text: message.body,
        tag: message.messageId,
      });
      expect(result).toEqual({
        ok: true,
        providerMessageId: [...fake.messages.keys()].at(-1),
        segments: 2,
      });
    });

    it('sends the configured priority', async () => {
      await adapter({
        options: { accountId: ACCOUNT_ID, applicationId: APPLICATION_ID, priority: 'high' },
      }).sendBatch([sms()]);
      expect(fake.creates[0]!.body).toMatchObject({ priority: 'high' });
    });

    it('never groups recipients: a batch of two becomes two requests of one `to` each', async () => {
      const results = await adapter().sendBatch([
        sms('a', '+15552220001'),
        sms('b', '+15552220002'),
      ]);
      expect(results.map((r) => r.ok)).toEqual([true, true]);
      expect(fake.creates.map((r) => (r.body as { to: string[] }).to)).toEqual([
        ['+15552220001'],
        ['+15552220002'],
      ]);
    });

    it('refuses a body over 2,048 characters without calling Bandwidth, and sends one of exactly 2,048', async () => {
      const bw = adapter();
      const [tooLong] = await bw.sendBatch([sms('a'.repeat(2049))]);
      expect(errorOf(tooLong)).toBeInstanceOf(PermanentSendError);
      expect(errorOf(tooLong).code).toBe('BODY_TOO_LONG');
      expect(fake.creates).toHaveLength(0);
      // Characters, not UTF-16 units: 2,048 emoji are within the limit (the spec's maxLength agrees).
      const results = await bw.sendBatch([sms('a'.repeat(2048))]);
      const emoji = await bw.sendBatch([sms('😀'.repeat(2048))]);
      expect([results[0]!.ok, emoji[0]!.ok]).toEqual([true, true]);
      expect(fake.creates).toHaveLength(2);
    });
  });

  describe('scheduling', () => {
    it('has none: a message with a send time fails SCHEDULE_UNSUPPORTED without a request', async () => {
      expect(bandwidthProvider.nativeScheduling).toBeUndefined();
      const bw = adapter();
      expect('cancelScheduled' in bw).toBe(false);
      const scheduled = { ...sms(), sendAt: new Date(Date.now() + 3_600_000) };
      const now = sms();
      const results = await bw.sendBatch([scheduled, now]);
      expect(errorOf(results[0])).toBeInstanceOf(PermanentSendError);
      expect(errorOf(results[0]).code).toBe('SCHEDULE_UNSUPPORTED');
      expect(results[1]!.ok).toBe(true);
      expect(fake.creates.map((r) => (r.body as { tag: string }).tag)).toEqual([now.messageId]);
    });
  });

  describe('OAuth2 client credentials', () => {
    it('gets one token with Basic client credentials and reuses it while it is valid', async () => {
      const bw = adapter(oauth());
      await bw.sendBatch([sms()]);
      await bw.sendBatch([sms()]);
      await bw.sendBatch([sms()]);
      expect(fake.tokenRequests).toEqual([
        {
          authorization: basicAuthorization(CLIENT_ID, CLIENT_SECRET),
          body: 'grant_type=client_credentials',
        },
      ]);
      const used = fake.creates.map((r) => r.headers.authorization);
      expect(used).toHaveLength(3);
      expect(new Set(used)).toEqual(new Set([`Bearer ${[...fake.validTokens][0]}`]));
    });

    it('renews a token that is within 60 s of expiring before using it', async () => {
      fake.tokenLifetimeSeconds = 60; // already inside the renewal window when issued
      const bw = adapter(oauth());
      await bw.sendBatch([sms()]);
      await bw.sendBatch([sms()]);
      expect(fake.tokenRequests).toHaveLength(2);
      const used = fake.creates.map((r) => r.headers.authorization);
      expect(new Set(used).size).toBe(2);
    });

    it('renews the token once after a 401 and resends', async () => {
      const bw = adapter(oauth());
      await bw.sendBatch([sms()]);
      fake.validTokens.clear(); // Bandwidth revoked it before its expiry
      const [result] = await bw.sendBatch([sms()]);
      expect(result!.ok).toBe(true);
      expect(fake.tokenRequests).toHaveLength(2);
      expect(fake.creates).toHaveLength(3);
    });

    it('gives up with AccountError when the renewed token is refused too', async () => {
      const bw = adapter(oauth());
      fake.script = [
        { status: 401, body: { type: 'unauthorized', description: 'Authentication Failed' } },
        { status: 401, body: { type: 'unauthorized', description: 'Authentication Failed' } },
      ];
      await expect(bw.sendBatch([sms()])).rejects.toBeInstanceOf(AccountError);
      expect(fake.creates).toHaveLength(2);
      expect(fake.tokenRequests).toHaveLength(2);
    });

    it('reports refused client credentials as AccountError and a token-endpoint outage as retryable', async () => {
      const bw = adapter(oauth('wrong'));
      await expect(bw.sendBatch([sms()])).rejects.toBeInstanceOf(AccountError);
      fake.tokenAnswer = { status: 503, body: { error: 'temporarily_unavailable' } };
      await expect(adapter(oauth()).sendBatch([sms()])).rejects.toBeInstanceOf(RetryableSendError);
      expect(fake.creates).toHaveLength(0);
    });
  });

  describe('errors', () => {
    const cases: Array<[string, FakeResponse, (error: unknown) => void]> = [
      [
        '400 about the recipient → PermanentSendError with the field errors',
        {
          status: 400,
          body: {
            type: 'request-validation',
            description: 'Your request could not be accepted',
            fieldErrors: [
              {
                fieldName: 'to',
                description:
                  "'+1555' must be replaced with a valid E164 formatted telephone number",
              },
            ],
          },
        },
        (error) => {
          expect(error).toBeInstanceOf(PermanentSendError);
          expect((error as PermanentSendError).code).toBe('request-validation');
          expect((error as Error).message).toContain('to: ');
          expect((error as Error).message).toContain('valid E164');
        },
      ],
      [
        '400 about our sender → AccountError (it would refuse every message)',
        {
          status: 400,
          body: {
            type: 'request-validation',
            description: 'Your request could not be accepted',
            fieldErrors: [
              { fieldName: 'from', description: "'+15551113333' is not a Bandwidth number" },
            ],
          },
        },
        (error) => expect(error).toBeInstanceOf(AccountError),
      ],
      [
        '401 → AccountError',
        { status: 401, body: { type: 'unauthorized', description: 'Authentication Failed' } },
        (e) => expect(e).toBeInstanceOf(AccountError),
      ],
      [
        '403 → AccountError',
        { status: 403, body: { type: 'forbidden', description: 'Access is denied' } },
        (e) => expect(e).toBeInstanceOf(AccountError),
      ],
      [
        '415 → PermanentSendError',
        {
          status: 415,
          body: {
            type: 'unsupported-media-type',
            description: 'Content-Type must be application/json',
          },
        },
        (e) => expect(e).toBeInstanceOf(PermanentSendError),
      ],
      [
        '500 → RetryableSendError (documented as not sent)',
        {
          status: 500,
          body: { type: 'internal-server-error', description: 'Something went wrong' },
        },
        (e) => expect(e).toBeInstanceOf(RetryableSendError),
      ],
      [
        'no answer after the request was written → AmbiguousSendError',
        { status: 0 },
        (e) => expect(e).toBeInstanceOf(AmbiguousSendError),
      ],
    ];
    for (const [name, answer, check] of cases) {
      it(name, async () => {
        fake.script = [answer];
        let outcome: unknown;
        try {
          const [result] = await adapter().sendBatch([sms()]);
          outcome = errorOf(result);
        } catch (error) {
          outcome = error;
        }
        check(outcome);
      });
    }

    it('429 max-message-queue-size-exceeded → RateLimitedError with a backoff that grows while the queue stays full', async () => {
      const bw = adapter();
      const full = {
        status: 429,
        body: {
          type: 'max-message-queue-size-exceeded',
          description:
            'The SMS queue for your account is full and cannot accept more messages right now.',
        },
      };
      fake.script = [full, full];
      const first = await bw.sendBatch([sms()]).catch((e: unknown) => e);
      const second = await bw.sendBatch([sms()]).catch((e: unknown) => e);
      expect(first).toBeInstanceOf(RateLimitedError);
      expect((first as RateLimitedError).code).toBe('max-message-queue-size-exceeded');
      expect((first as RateLimitedError).retryAfterMs).toBe(30_000);
      expect((second as RateLimitedError).retryAfterMs).toBe(60_000);
      // A success resets the backoff.
      await bw.sendBatch([sms()]);
      fake.script = [full];
      expect(
        ((await bw.sendBatch([sms()]).catch((e: unknown) => e)) as RateLimitedError).retryAfterMs,
      ).toBe(30_000);
    });
  });

  describe('callbacks', () => {
    it('parses each status type, in both documented shapes (one object; an array)', () => {
      const bw = adapter();
      const ours = randomUUID();
      const single = bw.parseWebhook(
        webhook(statusCallback('message-delivered', { tag: ours, id: 'm-1' })),
      );
      expect(single).toEqual({
        replies: [],
        reports: [
          {
            messageId: ours,
            providerMessageId: 'm-1',
            providerStatus: 'message-delivered',
            status: 'DELIVERED',
            errorCode: undefined,
            description: 'Message delivered to carrier.',
            occurredAt: new Date('2024-12-02T20:15:57.278Z'),
          },
        ],
      });
      const array = bw.parseWebhook(
        webhook([
          statusCallback('message-sending', { tag: ours }),
          statusCallback('message-sent', { tag: ours }),
          statusCallback('message-read', { tag: ours }),
          statusCallback('message-failed', {
            tag: ours,
            errorCode: 4775,
            description: 'User opted out',
          }),
        ]),
      );
      expect(array.reports.map((r) => [r.providerStatus, r.status, r.errorCode])).toEqual([
        ['message-sending', 'QUEUED', undefined],
        ['message-sent', 'SENT', undefined],
        ['message-read', 'DELIVERED', undefined],
        ['message-failed', 'REJECTED', '4775'],
      ]);
    });

    it('classifies message-failed by error code', () => {
      const bw = adapter();
      const codes: Array<[number, string]> = [
        [4360, 'EXPIRED'],
        [9902, 'UNKNOWN'],
        [4770, 'REJECTED'],
        [4432, 'REJECTED'],
        [4485, 'REJECTED'],
        [4751, 'REJECTED'],
        [4720, 'UNDELIVERABLE'],
        [4302, 'UNDELIVERABLE'],
        [4730, 'UNDELIVERABLE'],
        [4711, 'FAILED'],
        [4785, 'FAILED'],
        [5600, 'FAILED'],
        [9999, 'FAILED'],
      ];
      const { reports } = bw.parseWebhook(
        webhook(codes.map(([code]) => statusCallback('message-failed', { errorCode: code }))),
      );
      expect(reports.map((r) => [Number(r.errorCode), r.status])).toEqual(codes);
    });

    it('leaves messageId out when the tag is not one of our ids', () => {
      const bw = adapter();
      const { reports } = bw.parseWebhook(
        webhook(statusCallback('message-delivered', { tag: 'campaign-7' })),
      );
      expect(reports[0]!.messageId).toBeUndefined();
      expect(
        bw.parseWebhook(webhook(statusCallback('message-delivered'))).reports[0]!.messageId,
      ).toBeUndefined();
    });

    it('parses an inbound message-received as a reply and ignores our own outbound echo', () => {
      const bw = adapter();
      const { replies, reports } = bw.parseWebhook(webhook([inboundCallback({ text: 'STOP' })]));
      expect(reports).toEqual([]);
      expect(replies).toEqual([
        {
          from: '+15552223333',
          to: SENDER,
          body: 'STOP',
          providerMessageId: '14762070468292kw2fuqty55yp2b2',
          occurredAt: new Date('2024-12-02T20:16:01.000Z'),
        },
      ]);
      expect(bw.parseWebhook(webhook(inboundCallback({ direction: 'out' })))).toEqual({
        reports: [],
        replies: [],
      });
    });

    it('requires the Application callback credentials when configured', () => {
      const bw = adapter({
        credentials: {
          username: USER,
          password: PASSWORD,
          callbackUsername: CB_USER,
          callbackPassword: CB_PASSWORD,
        },
      });
      const event = statusCallback('message-delivered');
      expect(() => bw.parseWebhook(webhook(event))).toThrow(WebhookAuthError);
      expect(() =>
        bw.parseWebhook(webhook(event, { authorization: basicAuthorization(CB_USER, 'guess') })),
      ).toThrow(WebhookAuthError);
      expect(() =>
        bw.parseWebhook(webhook(event, { authorization: `Bearer ${CB_PASSWORD}` })),
      ).toThrow(WebhookAuthError);
      // Checked before the payload: a forged malformed callback is still refused as forged.
      expect(() => bw.parseWebhook(webhook(undefined))).toThrow(WebhookAuthError);
      const ok = bw.parseWebhook(
        webhook(event, { authorization: basicAuthorization(CB_USER, CB_PASSWORD) }),
      );
      expect(ok.reports).toHaveLength(1);
    });

    it('refuses malformed payloads with WebhookPayloadError', () => {
      const bw = adapter();
      const good = statusCallback('message-delivered');
      const bad: unknown[] = [
        undefined,
        'not json',
        { ...good, message: undefined },
        { ...good, time: 'yesterday' },
        { ...good, type: undefined },
        [good, { nonsense: true }],
      ];
      for (const body of bad)
        expect(() => bw.parseWebhook(webhook(body)), JSON.stringify(body)).toThrow(
          WebhookPayloadError,
        );
    });
  });

  describe('polling', () => {
    it('asks GET /users/{accountId}/messages?messageId= for each id and maps messageStatus and errorCode', async () => {
      const bw = adapter();
      const sent = await Promise.all([sms(), sms(), sms(), sms()].map((m) => bw.sendBatch([m])));
      const ids = sent.map(([r]) => (r as { providerMessageId: string }).providerMessageId);
      const set = (id: string, status: string, errorCode?: number) =>
        Object.assign(fake.messages.get(id)!, { status, errorCode });
      set(ids[0]!, 'DELIVERED');
      set(ids[1]!, 'FAILED', 4775);
      set(ids[2]!, 'UNDELIVERED');
      set(ids[3]!, 'SENDING');
      const reports = await bw.pollStatus([...ids, 'unknown-id']);
      expect(
        reports.map((r) => [r.providerMessageId, r.providerStatus, r.status, r.errorCode]),
      ).toEqual([
        [ids[0], 'DELIVERED', 'DELIVERED', undefined],
        [ids[1], 'FAILED', 'REJECTED', '4775'],
        [ids[2], 'UNDELIVERED', 'UNDELIVERABLE', undefined],
        [ids[3], 'SENDING', 'QUEUED', undefined],
      ]);
      expect(fake.lists.map((r) => r.query.get('messageId'))).toEqual([...ids, 'unknown-id']);
      expect(fake.lists.every((r) => r.path === `/users/${ACCOUNT_ID}/messages`)).toBe(true);
    });

    it('stays within the request budget (3,500 / 5 min in production) and leaves the rest for later', async () => {
      const bw = adapter({}, { pollBudget: { requests: 3, intervalMs: 60 * 60_000 } });
      const reports = await bw.pollStatus(['a', 'b', 'c', 'd', 'e']);
      expect(reports).toEqual([]);
      expect(fake.lists.map((r) => r.query.get('messageId'))).toEqual(['a', 'b', 'c']);
      await bw.pollStatus(['d', 'e']);
      expect(fake.lists).toHaveLength(3);
    });

    it('stops polling for Retry-After after a 429', async () => {
      const bw = adapter();
      fake.script = [
        {
          status: 429,
          headers: { 'retry-after': '300' },
          body: {
            type: 'rate_limit_exceeded',
            description:
              'Rate limit exceeded. Wait for Retry-After time before sending another request.',
          },
        },
      ];
      await bw.pollStatus(['a']);
      await bw.pollStatus(['b', 'c']);
      expect(fake.lists).toHaveLength(1);
    });

    it('has no health check (none is documented)', () => {
      expect('checkHealth' in adapter()).toBe(false);
    });
  });

  describe('configuration', () => {
    it('needs a complete Basic or OAuth2 credential pair, a sender and the ids', () => {
      const account = makeAccount(fake);
      const create = (overrides: Partial<Account>) => () =>
        new BandwidthProvider(makeContext({ ...account, ...overrides }));
      expect(create({ credentials: {} })).toThrow(ConfigError);
      expect(create({ credentials: {} })).toThrow(
        /username and password .* clientId and clientSecret/,
      );
      expect(create({ credentials: { username: USER } })).toThrow(
        /credentials.username and credentials.password go together/,
      );
      expect(create({ credentials: { clientSecret: CLIENT_SECRET } })).toThrow(ConfigError);
      expect(
        create({ credentials: { username: USER, password: PASSWORD, callbackUsername: CB_USER } }),
      ).toThrow(ConfigError);
      expect(create({ sender: undefined })).toThrow(/sender/);
      expect(create({ options: { accountId: ACCOUNT_ID } })).toThrow(/applicationId/);
      expect(bandwidthOptionsSchema.parse({ accountId: '1', applicationId: 'a' })).toEqual({
        accountId: '1',
        applicationId: 'a',
        tokenUrl: 'https://api.bandwidth.com/api/v1/oauth2/token',
      });
      expect(
        bandwidthOptionsSchema.safeParse({ accountId: '1', applicationId: 'a', priority: 'urgent' })
          .success,
      ).toBe(false);
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe('a Bandwidth campaign end to end', () => {
  const ACCOUNT = 'bandwidth-test';
  const fake = new FakeBandwidth();
  let env: TestEnv;
  const pending: Array<Promise<unknown>> = [];
  const callbackStatuses: number[] = [];

  // The fake decides each outcome from the recipient's number.
  const outcomeFor = (to: string): { type: string; errorCode?: number; status: string } => {
    const last = Number(to.at(-1));
    if (last === 3) return { type: 'message-failed', errorCode: 4775, status: 'REJECTED' };
    if (last === 5) return { type: 'message-failed', errorCode: 4720, status: 'UNDELIVERABLE' };
    if (last === 7) return { type: 'message-failed', errorCode: 4360, status: 'EXPIRED' };
    return { type: 'message-delivered', status: 'DELIVERED' };
  };

  async function post(body: unknown, authorization = basicAuthorization(CB_USER, CB_PASSWORD)) {
    const url = webhookUrl(env.config.publicUrl, env.config.webhookSecret!, ACCOUNT);
    const response = await httpRequest(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization,
        'user-agent': 'BandwidthAPI/v2',
      },
      body: JSON.stringify(body),
    });
    await response.body.dump();
    callbackStatuses.push(response.statusCode);
    return response.statusCode;
  }

  beforeAll(async () => {
    loadCallbackSchemas();
    await fake.start();
    let n = 0;
    fake.onAccepted = (message) => {
      const outcome = outcomeFor(message.to);
      message.status = outcome.type === 'message-delivered' ? 'DELIVERED' : 'FAILED';
      message.errorCode = outcome.errorCode;
      const sent = statusCallback('message-sent', {
        id: message.id,
        tag: message.tag,
        to: message.to,
      });
      const final = statusCallback(outcome.type, {
        id: message.id,
        tag: message.tag,
        to: message.to,
        errorCode: outcome.errorCode,
      });
      // Half the reports in BWD's array envelope, half as BWALL's single object.
      const bodies = n++ % 2 === 0 ? [[sent, final]] : [sent, final];
      pending.push(
        new Promise((resolve) => setTimeout(resolve, 20)).then(async () => {
          for (const body of bodies) await post(body);
        }),
      );
    };
    env = await createTestEnv({
      account: {
        name: ACCOUNT,
        provider: 'bandwidth',
        baseUrl: fake.api.url,
        credentials: {
          clientId: CLIENT_ID,
          clientSecret: CLIENT_SECRET,
          callbackUsername: CB_USER,
          callbackPassword: CB_PASSWORD,
        },
        options: { accountId: ACCOUNT_ID, applicationId: APPLICATION_ID, tokenUrl: fake.tokenUrl },
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

  it('sends every recipient once, folds the callbacks, stores a reply and refuses a forged callback', async () => {
    const { context } = env;
    const campaign = await createCampaign(context, {
      name: 'bw-flow',
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
      'the Bandwidth campaign to complete',
      40_000,
    );
    expect(stats.total).toBe(50);
    await Promise.all(pending);
    expect(callbackStatuses.every((s) => s === 204)).toBe(true);

    const messages = await env.query<{
      id: string;
      phone: string;
      status: string;
      provider_message_id: string;
    }>('SELECT id, phone, status, provider_message_id FROM message WHERE campaign_id = $1', [
      campaign.id,
    ]);
    expect(messages).toHaveLength(50);
    const byTag = new Map([...fake.messages.values()].map((m) => [m.tag, m]));
    expect(fake.creates).toHaveLength(50);
    for (const m of messages) {
      const sent = byTag.get(m.id)!;
      expect(sent.to).toBe(m.phone);
      expect(m.provider_message_id).toBe(sent.id);
      expect(m.status).toBe(outcomeFor(m.phone).status);
    }
    // OAuth: one token for the whole campaign.
    expect(fake.tokenRequests).toHaveLength(1);

    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);

    // A reply through the real route is stored; a forged callback is refused with 401.
    expect(await post(inboundCallback({ text: 'STOP' }))).toBe(204);
    const replies = await env.query<{ from_phone: string; body: string }>(
      'SELECT from_phone, body FROM inbound_message WHERE account_name = $1',
      [ACCOUNT],
    );
    expect(replies).toEqual([{ from_phone: '+15552223333', body: 'STOP' }]);
    expect(
      await post(statusCallback('message-delivered'), basicAuthorization(CB_USER, 'forged')),
    ).toBe(401);
    expect(await post({ type: 'message-delivered' })).toBe(400);
    expect(fake.api.violations).toEqual([]);
  });
});
