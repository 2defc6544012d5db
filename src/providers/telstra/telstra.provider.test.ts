import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../logger.js';
import {
  startOpenApiFake,
  type FakeRequest,
  type FakeResponse,
  type OpenApiFake,
} from '../../../test/helpers/openapi-fake.js';
import { freezeClock } from '../../../test/helpers/frozen-clock.js';
import type { Account } from '../../config/accounts.js';
import {
  AccountError,
  AmbiguousSendError,
  PermanentSendError,
  ProviderError,
  RateLimitedError,
  RetryableSendError,
  WebhookPayloadError,
} from '../errors.js';
import type { OutboundSms, ProviderAdapter, SendResult, WebhookRequest } from '../types.js';
import { TelstraTokens } from './telstra-auth.js';
import { TelstraProvider, telstraProvider } from './telstra.provider.js';

const CALLBACK = 'http://127.0.0.1:9/webhooks/telstra-test/secret-token';
const CLIENT_ID = 'client-id-1';
const CLIENT_SECRET = 'client-secret-1';

/** What the fake Telstra does; tests change it. */
interface FakeState {
  expiresIn: string | number;
  tokensIssued: number;
  valid: Set<string>;
  /** Refuse every bearer token (a revoked app): 401 after renewal too. */
  rejectAll: boolean;
  /** Answers for the next messaging calls, in order, instead of the default success. */
  next: Array<(request: FakeRequest) => FakeResponse>;
  /** Numbers the fake refuses (v2 400 TO-MSISDN-NOT-VALID). */
  badNumbers: Set<string>;
  /** Answer /multi with its messages in reverse order. */
  reverseMulti: boolean;
  idCounter: number;
  /** v3 messages sent: true while one with a scheduleSend can still be deleted. */
  v3Messages: Map<string, { scheduled: boolean }>;
}

function newState(): FakeState {
  return {
    expiresIn: '3599',
    tokensIssued: 0,
    valid: new Set(),
    rejectAll: false,
    next: [],
    badNumbers: new Set(),
    reverseMulti: false,
    idCounter: 0,
    v3Messages: new Map(),
  };
}

function tokenAnswer(state: FakeState, request: FakeRequest): FakeResponse {
  const form = request.body as Record<string, string>;
  if (form.client_id !== CLIENT_ID || form.client_secret !== CLIENT_SECRET) {
    return { status: 401, body: 'Either client_id or client_secret or both are not valid.' };
  }
  if (form.grant_type !== 'client_credentials')
    return { status: 400, body: 'grant_type is incorrect' };
  state.tokensIssued += 1;
  const token = `tok-${state.tokensIssued}`;
  state.valid.add(token);
  return {
    status: 200,
    body: { access_token: token, token_type: 'Bearer', expires_in: state.expiresIn },
  };
}

function authorised(state: FakeState, request: FakeRequest): boolean {
  const token = String(request.headers.authorization ?? '').replace(/^Bearer /, '');
  return !state.rejectAll && state.valid.has(token);
}

const v2Error = (status: number, code: string, message = code): FakeResponse => ({
  status,
  body: { status: String(status), code, message },
});
const v3Error = (
  status: number,
  code: string,
  extra: Record<string, string> = {},
): FakeResponse => ({
  status,
  body: { errors: [{ code, issue: `issue ${code}`, suggested_action: 'do something', ...extra }] },
  ...(extra.retryAfter ? { headers: { 'retry-after': extra.retryAfter } } : {}),
});

function v2Handler(state: FakeState) {
  return (request: FakeRequest): FakeResponse => {
    if (request.path === '/oauth/token') return tokenAnswer(state, request);
    if (request.path === '/messages/sms/healthcheck')
      return { status: 200, body: { status: 'up' } };
    if (!authorised(state, request)) return { status: 401, body: 'Invalid access token' };
    const override = state.next.shift();
    if (override) return override(request);
    const accept = (to: string) => {
      state.idCounter += 1;
      const messageId = `d99747490009${String(state.idCounter).padStart(4, '0')}-12614${to.slice(-8)}`;
      return {
        to,
        deliveryStatus: 'MessageWaiting',
        messageId,
        messageStatusURL: `https://x/${messageId}/status`,
      };
    };
    if (request.path === '/messages/sms' && request.method === 'POST') {
      const body = request.body as { to: string };
      if (state.badNumbers.has(body.to)) return v2Error(400, 'TO-MSISDN-NOT-VALID');
      return {
        status: 201,
        body: {
          messages: [accept(body.to)],
          Country: [{ AUS: 1 }],
          messageType: 'SMS',
          numberSegments: 1,
        },
      };
    }
    if (request.path === '/messages/sms/multi') {
      const body = request.body as { smsMulti: Array<{ to: string }> };
      if (body.smsMulti.some((m) => state.badNumbers.has(m.to)))
        return v2Error(400, 'TO-MSISDN-NOT-VALID');
      const messages = body.smsMulti.map((m) => accept(m.to));
      if (state.reverseMulti) messages.reverse();
      return {
        status: 200,
        body: {
          messages,
          Country: [{ AUS: messages.length }],
          messageType: 'SMS',
          numberSegments: messages.length,
        },
      };
    }
    const status = /^\/messages\/sms\/([^/]+)\/status$/.exec(request.path);
    if (status) {
      if (decodeURIComponent(status[1]!).startsWith('old'))
        return v2Error(404, 'OLD-NONEXISTANT-MESSAGE-ID');
      return {
        status: 200,
        body: [
          {
            to: '+61412000001',
            sentTimestamp: '2017-03-17T09:16:54+10:00',
            receivedTimestamp: '2017-03-17T09:16:49+10:00',
            deliveryStatus: 'DELIVRD',
          },
        ],
      };
    }
    return { status: 404, body: 'RESOURCE-NOT-FOUND' };
  };
}

function v3Handler(state: FakeState) {
  return (request: FakeRequest): FakeResponse => {
    if (!authorised(state, request)) return v3Error(401, 'TOKEN_INVALID');
    if (request.path === '/health-check') return { status: 200, body: { status: 'up' } };
    const override = state.next.shift();
    if (override) return override(request);
    if (request.path === '/messages' && request.method === 'POST') {
      const body = request.body as {
        to: string;
        from: string;
        messageContent: string;
        scheduleSend?: string;
      };
      const messageId = randomUUID();
      state.v3Messages.set(messageId, { scheduled: body.scheduleSend !== undefined });
      return {
        status: 201,
        body: {
          messageId,
          status: 'queued',
          to: body.to,
          from: body.from,
          messageContent: body.messageContent,
        },
      };
    }
    const get = /^\/messages\/([0-9a-f-]{36})$/.exec(request.path);
    if (get && request.method === 'DELETE') {
      const known = state.v3Messages.get(get[1]!);
      if (!known) return v3Error(404, 'RESOURCE_NOT_FOUND');
      if (!known.scheduled) return v3Error(400, 'DELETE_INVALID_MSG_SENT');
      state.v3Messages.delete(get[1]!);
      return { status: 204 };
    }
    if (get) {
      return {
        status: 200,
        body: {
          messageId: get[1],
          status: 'delivered',
          createTimestamp: '2024-01-01T00:00:00.000Z',
          sentTimestamp: '2024-01-01T00:00:01.000Z',
          receivedTimestamp: '2024-01-01T00:00:05.000Z',
          to: '0412000001',
          from: '0400000000',
          direction: 'outgoing',
        },
      };
    }
    return v3Error(404, 'RESOURCE_NOT_FOUND');
  };
}

interface Setup {
  adapter: TelstraProvider;
  state: FakeState;
  fake: OpenApiFake;
  /** The token endpoint (v3: its own server, validated against v2's /oauth/token, the same endpoint shape). */
  tokenFake: OpenApiFake;
  messagingRequests(): FakeRequest[];
}

let cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.map((c) => c()));
  cleanups = [];
});

async function setup(
  version: 'v2' | 'v3',
  account: Partial<Account> = {},
  options: Record<string, unknown> = {},
): Promise<Setup> {
  const state = newState();
  let fake: OpenApiFake;
  let tokenFake: OpenApiFake;
  if (version === 'v2') {
    fake = await startOpenApiFake({
      spec: 'telstra-messaging-v2.2.10.openapi.json',
      basePath: '/v2',
      handle: v2Handler(state),
      validateResponses: true,
    });
    tokenFake = fake;
  } else {
    fake = await startOpenApiFake({
      spec: 'telstra-messaging-v3.openapi.yaml',
      basePath: '/messaging/v3',
      handle: v3Handler(state),
      validateResponses: true,
    });
    tokenFake = await startOpenApiFake({
      spec: 'telstra-messaging-v2.2.10.openapi.json',
      basePath: '/v2',
      handle: (request) => tokenAnswer(state, request),
      validateResponses: true,
    });
  }
  const fullAccount: Account = {
    name: 'telstra-test',
    provider: 'telstra',
    baseUrl: fake.url,
    credentials: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET },
    rate: 100,
    concurrency: 4,
    deliveryPolicy: 'at-most-once',
    options: { version, tokenUrl: `${tokenFake.url}/oauth/token`, ...options },
    ...(version === 'v3' ? { sender: '0400000000' } : {}),
    ...account,
  };
  const adapter = new TelstraProvider({
    account: fullAccount,
    callbackUrl: CALLBACK,
    logger: createLogger({ level: 'silent' }),
  });
  cleanups.push(async () => {
    await adapter.close();
    await fake.close();
    if (tokenFake !== fake) await tokenFake.close();
  });
  return {
    adapter,
    state,
    fake,
    tokenFake,
    messagingRequests: () => fake.requests.filter((r) => r.path !== '/oauth/token'),
  };
}

const sms = (to: string, body = 'Hello there'): OutboundSms => ({
  messageId: randomUUID(),
  to,
  body,
});
const numbers = (n: number) =>
  Array.from({ length: n }, (_, i) => `+614120000${String(i).padStart(2, '0')}`);

/** The batch's results, or the whole-request error repeated for each message. */
async function outcomes(adapter: TelstraProvider, messages: OutboundSms[]): Promise<SendResult[]> {
  try {
    return await adapter.sendBatch(messages);
  } catch (error) {
    if (!(error instanceof ProviderError)) throw error;
    return messages.map(() => ({ ok: false, error }));
  }
}

async function errorOf(adapter: TelstraProvider, message: OutboundSms): Promise<ProviderError> {
  const [result] = await outcomes(adapter, [message]);
  if (result!.ok) throw new Error('expected a failure');
  return result!.error;
}

function webhook(body: unknown, query = ''): WebhookRequest {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    rawBody: JSON.stringify(body),
    url: `/webhooks/telstra-test/secret-token${query}`,
  };
}

describe('telstra definition', () => {
  it('takes clientId/clientSecret, defaults to v3 and validates its options', () => {
    expect(telstraProvider.type).toBe('telstra');
    expect(telstraProvider.credentialKeys).toEqual(['clientId', 'clientSecret']);
    expect(telstraProvider.defaultBaseUrl).toBe('https://products.api.telstra.com/messaging/v3');
    expect(telstraProvider.optionsSchema!.parse({})).toEqual({ version: 'v3', multi: true });
    expect(telstraProvider.optionsSchema!.safeParse({ version: 'v4' }).success).toBe(false);
    expect(telstraProvider.optionsSchema!.safeParse({ tokenUrl: 'not a url' }).success).toBe(false);
    expect(telstraProvider.optionsSchema!.safeParse({ verison: 'v2' }).success).toBe(false);
  });
});

describe('telstra v2', () => {
  it('gets a token with client credentials and scope NSMS, and reuses it while valid', async () => {
    const t = await setup('v2');
    await t.adapter.sendBatch([sms('+61412000001')]);
    await t.adapter.sendBatch([sms('+61412000002')]);
    const tokenRequests = t.fake.requests.filter((r) => r.path === '/oauth/token');
    expect(tokenRequests).toHaveLength(1);
    expect(tokenRequests[0]!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(tokenRequests[0]!.body).toEqual({
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_type: 'client_credentials',
      scope: 'NSMS',
    });
    for (const r of t.messagingRequests()) expect(r.headers.authorization).toBe('Bearer tok-1');
    expect(t.fake.violations).toEqual([]);
  });

  it('renews the token before it expires (expires_in as a string)', async () => {
    const t = await setup('v2');
    t.state.expiresIn = '0'; // already inside the renewal margin: each call needs a new one
    await t.adapter.sendBatch([sms('+61412000001')]);
    await t.adapter.sendBatch([sms('+61412000002')]);
    expect(t.state.tokensIssued).toBe(2);
    expect(t.messagingRequests().map((r) => r.headers.authorization)).toEqual([
      'Bearer tok-1',
      'Bearer tok-2',
    ]);
    expect(t.fake.violations).toEqual([]);
  });

  it('renews the token 60 s before expires_in runs out, sharing one request among callers', async () => {
    const t = await setup('v2');
    let now = 1_000_000;
    const tokens = new TelstraTokens({
      tokenUrl: `${t.fake.url}/oauth/token`,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      scope: 'NSMS',
      logger: createLogger({ level: 'silent' }),
      now: () => now,
    });
    cleanups.push(() => tokens.close());
    t.state.expiresIn = '3600';
    expect(await Promise.all([tokens.get(), tokens.get(), tokens.get()])).toEqual([
      'tok-1',
      'tok-1',
      'tok-1',
    ]);
    now += 3539_000;
    expect(await tokens.get()).toBe('tok-1');
    now += 2_000; // 59 s before expiry
    expect(await tokens.get()).toBe('tok-2');
    expect(t.state.tokensIssued).toBe(2);
    expect(t.fake.violations).toEqual([]);
  });

  it('on a 401 gets a new token and retries the call once', async () => {
    const t = await setup('v2');
    await t.adapter.sendBatch([sms('+61412000001')]);
    t.state.valid.clear(); // Telstra revoked the token early
    const [result] = await t.adapter.sendBatch([sms('+61412000002')]);
    expect(result!.ok).toBe(true);
    expect(t.state.tokensIssued).toBe(2);
    expect(t.messagingRequests().map((r) => r.headers.authorization)).toEqual([
      'Bearer tok-1',
      'Bearer tok-1',
      'Bearer tok-2',
    ]);
  });

  it('a 401 after renewal, or a refused client secret, is an AccountError', async () => {
    const t = await setup('v2');
    t.state.rejectAll = true;
    const error = await errorOf(t.adapter, sms('+61412000001'));
    expect(error).toBeInstanceOf(AccountError);
    expect(t.messagingRequests()).toHaveLength(2);

    const bad = await setup('v2', { credentials: { clientId: CLIENT_ID, clientSecret: 'wrong' } });
    const refused = await errorOf(bad.adapter, sms('+61412000001'));
    expect(refused).toBeInstanceOf(AccountError);
    expect(refused.code).toBe('TOKEN_UNAUTHORIZED');
    expect(bad.messagingRequests()).toHaveLength(0);
  });

  it('sends 10 messages in one /messages/sms/multi request with the callback URL, ids in order', async () => {
    const t = await setup('v2');
    expect(t.adapter.maxBatchSize).toBe(10);
    const batch = numbers(10).map((n, i) => sms(n, `Hello ${i}`));
    const results = await t.adapter.sendBatch(batch);
    const requests = t.messagingRequests();
    expect(requests).toHaveLength(1);
    expect(requests[0]!.path).toBe('/messages/sms/multi');
    expect(requests[0]!.body).toEqual({
      smsMulti: batch.map((m) => ({ to: m.to, body: m.body })),
      notifyURL: CALLBACK,
    });
    results.forEach((r, i) => {
      expect(r.ok).toBe(true);
      if (r.ok) expect(r.providerMessageId).toMatch(new RegExp(`${batch[i]!.to.slice(-8)}$`));
    });
    expect(new Set(results.map((r) => r.ok && r.providerMessageId)).size).toBe(10);
    expect(t.fake.violations).toEqual([]);
  });

  it('matches /multi answers by recipient when they come back in another order', async () => {
    const t = await setup('v2');
    t.state.reverseMulti = true;
    const batch = numbers(3).map((n) => sms(n));
    const results = await t.adapter.sendBatch(batch);
    results.forEach((r, i) => {
      expect(r.ok && r.providerMessageId.endsWith(batch[i]!.to.slice(-8))).toBe(true);
    });
  });

  it('sends singly, with our id in the notifyURL, when the account has a sender or multi is off', async () => {
    for (const t of [
      await setup('v2', { sender: 'Herald' }),
      await setup('v2', {}, { multi: false }),
    ]) {
      const batch = numbers(3).map((n) => sms(n));
      const results = await t.adapter.sendBatch(batch);
      expect(results.every((r) => r.ok)).toBe(true);
      const requests = t.messagingRequests();
      expect(requests.map((r) => r.path)).toEqual([
        '/messages/sms',
        '/messages/sms',
        '/messages/sms',
      ]);
      for (const m of batch) {
        const request = requests.find((r) => (r.body as { to: string }).to === m.to)!;
        const body = request.body as Record<string, string>;
        expect(new URL(body.notifyURL!).searchParams.get('heraldMessageId')).toBe(m.messageId);
        expect(body.notifyURL!.startsWith(`${CALLBACK}?`)).toBe(true);
        expect(body.userMsgRef).toBe(m.messageId);
        expect(body.body).toBe(m.body);
      }
      expect(t.fake.violations).toEqual([]);
    }
    const withSender = await setup('v2', { sender: 'Herald' });
    await withSender.adapter.sendBatch([sms('+61412000001'), sms('+61412000002')]);
    expect(withSender.messagingRequests().map((r) => (r.body as { from?: string }).from)).toEqual([
      'Herald',
      'Herald',
    ]);
  });

  it('refuses an oversize body without a request; over 500 characters goes singly (FACTS §1.2)', async () => {
    const t = await setup('v2');
    const tooLong = sms('+61412000001', 'x'.repeat(1901));
    const long = sms('+61412000002', 'y'.repeat(600));
    const short = [sms('+61412000003'), sms('+61412000004')];
    const results = await t.adapter.sendBatch([tooLong, long, ...short]);
    expect(results[0]!.ok).toBe(false);
    if (!results[0]!.ok) {
      expect(results[0]!.error).toBeInstanceOf(PermanentSendError);
      expect(results[0]!.error.code).toBe('BODY_TOO_LONG');
    }
    expect(results.slice(1).every((r) => r.ok)).toBe(true);
    const requests = t.messagingRequests();
    expect(requests.map((r) => r.path).sort()).toEqual(['/messages/sms', '/messages/sms/multi']);
    expect((requests.find((r) => r.path === '/messages/sms')!.body as { to: string }).to).toBe(
      long.to,
    );
    expect(requests.some((r) => JSON.stringify(r.body).includes(tooLong.to))).toBe(false);

    const only = await setup('v2');
    await expect(
      only.adapter.sendBatch([sms('+61412000001', 'z'.repeat(1901))]),
    ).rejects.toBeInstanceOf(PermanentSendError);
    expect(only.fake.requests).toHaveLength(0);
    // 1900 is still accepted.
    expect((await only.adapter.sendBatch([sms('+61412000001', 'z'.repeat(1900))]))[0]!.ok).toBe(
      true,
    );
  });

  it('when /multi refuses the batch for one number, sends each alone to isolate it', async () => {
    const t = await setup('v2');
    const batch = numbers(4).map((n) => sms(n));
    t.state.badNumbers.add(batch[2]!.to);
    const results = await t.adapter.sendBatch(batch);
    expect(results.map((r) => r.ok)).toEqual([true, true, false, true]);
    const bad = results[2]!;
    if (!bad.ok) {
      expect(bad.error).toBeInstanceOf(PermanentSendError);
      expect((bad.error as PermanentSendError).finalStatus).toBe('REJECTED');
      expect(bad.error.code).toBe('TO-MSISDN-NOT-VALID');
    }
    expect(t.messagingRequests().map((r) => r.path)).toEqual([
      '/messages/sms/multi',
      ...Array(4).fill('/messages/sms'),
    ]);
    expect(t.fake.violations).toEqual([]);
  });

  it.each([
    [v2Error(400, 'TO-MSISDN-NOT-VALID'), PermanentSendError, 'TO-MSISDN-NOT-VALID'],
    [v2Error(400, 'BODY-NOT-VALID'), PermanentSendError, 'BODY-NOT-VALID'],
    [v2Error(400, 'NOT-PROVISIONED'), AccountError, 'NOT-PROVISIONED'],
    [
      v2Error(400, 'DELIVERY-IMPOSSIBLE', "Invalid 'from' address specified"),
      AccountError,
      'INVALID-FROM-ADDRESS',
    ],
    [v2Error(400, 'TECH-ERR'), AccountError, 'TECH-ERR'],
    [
      v2Error(403, 'MSG_Monetization_ERR', 'Credit Card API limit may have been reached'),
      AccountError,
      'MSG_Monetization_ERR',
    ],
    [
      v2Error(403, 'SpikeArrest', 'You have exceeded your free trial quota'),
      AccountError,
      'SpikeArrest',
    ],
    [
      {
        status: 403,
        body: 'Authorization credentials passed and accepted but account does not have permission',
      },
      AccountError,
      'FORBIDDEN',
    ],
    [
      v2Error(404, 'RESOURCE-NOT-FOUND', 'Subscription Expired'),
      AccountError,
      'RESOURCE-NOT-FOUND',
    ],
    [v2Error(404, 'TO-MSISDN-NOT-VALID'), PermanentSendError, 'TO-MSISDN-NOT-VALID'],
    [{ status: 429, body: 'Too Many Requests' }, RateLimitedError, 'HTTP_429'],
    [{ status: 422, body: 'cannot be processed' }, PermanentSendError, 'HTTP_422'],
    [
      { status: 500, body: 'Technical error : Unable to route the message to a Target Endpoint' },
      RetryableSendError,
      'HTTP_500',
    ],
    [
      { status: 503, body: 'The service requested is currently unavailable' },
      RetryableSendError,
      'HTTP_503',
    ],
    [{ status: 504, body: 'gateway timeout' }, AmbiguousSendError, 'HTTP_504'],
  ] as const)('maps %j to one typed outcome', async (answer, type, code) => {
    const t = await setup('v2', {}, { multi: false });
    t.state.next.push(() => answer);
    const error = await errorOf(t.adapter, sms('+61412000001'));
    expect(error).toBeInstanceOf(type);
    expect(error.code).toBe(code);
    expect(t.fake.violations).toEqual([]);
  });

  it('backs off exponentially on SpikeArrest (too many concurrent calls) and resets after a success', async () => {
    const t = await setup('v2', {}, { multi: false });
    const spike = () =>
      v2Error(403, 'SpikeArrest', 'Concurrent API Calls are higher than supported');
    t.state.next.push(spike, spike, spike);
    const waits: number[] = [];
    for (let i = 0; i < 3; i++)
      waits.push(
        ((await errorOf(t.adapter, sms('+61412000001'))) as RateLimitedError).retryAfterMs,
      );
    expect(waits).toEqual([1000, 2000, 4000]);
    expect((await t.adapter.sendBatch([sms('+61412000001')]))[0]!.ok).toBe(true);
    t.state.next.push(() => ({ status: 429, body: 'Too Many Requests' }));
    expect(((await errorOf(t.adapter, sms('+61412000001'))) as RateLimitedError).retryAfterMs).toBe(
      1000,
    );
  });

  it('a connection dropped after the request was written is ambiguous', async () => {
    const t = await setup('v2', {}, { multi: false });
    t.state.next.push(() => ({ status: 0 }));
    expect(await errorOf(t.adapter, sms('+61412000001'))).toBeInstanceOf(AmbiguousSendError);
  });

  it('parses delivery receipts with our id from the notifyURL, or Telstra id only', () => {
    const adapter = new TelstraProvider({
      account: {
        name: 'x',
        provider: 'telstra',
        baseUrl: 'http://127.0.0.1:9/v2',
        credentials: {},
        rate: 1,
        concurrency: 1,
        deliveryPolicy: 'at-most-once',
        options: { version: 'v2' },
      },
      callbackUrl: CALLBACK,
      logger: createLogger({ level: 'silent' }),
    });
    const ours = randomUUID();
    const dlr = {
      to: '+61418123456',
      sentTimestamp: '2017-03-17T10:05:22+10:00',
      receivedTimestamp: '2017-03-17T10:05:23+10:00',
      messageId: '1234567890ABCDEFGHIJKLNOPQRSTUVW',
      deliveryStatus: 'DELIVRD',
    };
    expect(adapter.parseWebhook(webhook(dlr, `?heraldMessageId=${ours}`))).toEqual({
      replies: [],
      reports: [
        {
          messageId: ours,
          providerMessageId: dlr.messageId,
          providerStatus: 'DELIVRD',
          status: 'DELIVERED',
          occurredAt: new Date('2017-03-17T00:05:22Z'),
        },
      ],
    });
    expect(adapter.parseWebhook(webhook(dlr)).reports[0]!.messageId).toBeUndefined();
    expect(
      adapter.parseWebhook(webhook(dlr, '?heraldMessageId=not-a-uuid')).reports[0]!.messageId,
    ).toBeUndefined();

    const expected: Record<string, string> = {
      PEND: 'SENT',
      SENT: 'SENT',
      DELIVRD: 'DELIVERED',
      READ: 'DELIVERED',
      EXPIRED: 'EXPIRED',
      DELETED: 'FAILED',
      UNDVBL: 'UNDELIVERABLE',
      REJECTED: 'REJECTED',
      REJECTD: 'REJECTED',
      Unknown: 'UNKNOWN',
      toString: 'UNKNOWN',
    };
    for (const [word, status] of Object.entries(expected)) {
      const report = adapter.parseWebhook(webhook({ ...dlr, deliveryStatus: word })).reports[0]!;
      expect([report.providerStatus, report.status]).toEqual([word, status]);
    }

    const reply = {
      to: '+61472880123',
      from: '+61412345678',
      body: 'STOP',
      sentTimestamp: '2018-04-20T14:24:35',
      messageId: 'DMASApiA0000000146',
    };
    expect(adapter.parseWebhook(webhook(reply))).toEqual({
      reports: [],
      replies: [
        {
          from: '+61412345678',
          to: '+61472880123',
          body: 'STOP',
          providerMessageId: 'DMASApiA0000000146',
          occurredAt: new Date('2018-04-20T14:24:35Z'),
        },
      ],
    });

    expect(() => adapter.parseWebhook(webhook({ ...dlr, messageId: undefined }))).toThrow(
      WebhookPayloadError,
    );
    expect(() => adapter.parseWebhook(webhook({ ...dlr, deliveryStatus: 42 }))).toThrow(
      WebhookPayloadError,
    );
    expect(() => adapter.parseWebhook(webhook(undefined))).toThrow(WebhookPayloadError);
    expect(() => adapter.parseWebhook(webhook([dlr]))).toThrow(WebhookPayloadError);
    expect(() => adapter.parseWebhook(webhook({ hello: 'world' }))).toThrow(WebhookPayloadError);
    expect(() => adapter.parseWebhook({ ...webhook(dlr), method: 'GET' })).toThrow(
      WebhookPayloadError,
    );
    return adapter.close();
  });

  it('polls status with the id URL-encoded and leaves out ids Telstra no longer knows', async () => {
    const t = await setup('v2');
    const reports = await t.adapter.pollStatus(['abc/def+1', 'old-one']);
    expect(reports).toEqual([
      {
        providerMessageId: 'abc/def+1',
        providerStatus: 'DELIVRD',
        status: 'DELIVERED',
        occurredAt: new Date('2017-03-16T23:16:54Z'),
      },
    ]);
    const raw = t.fake.requests.filter((r) => r.path.endsWith('/status')).map((r) => r.path);
    expect(raw).toEqual(['/messages/sms/abc%2Fdef%2B1/status', '/messages/sms/old-one/status']);
    expect(t.fake.violations).toEqual([]);
  });

  describe('native scheduling', () => {
    afterEach(() => vi.useRealTimers());
    const DAY = 86_400_000;

    it('offers 7 days ahead and no cancel', async () => {
      const account = { options: { version: 'v2' } } as unknown as Account;
      expect(telstraProvider.nativeScheduling?.(account)).toEqual({
        maxAheadMs: 7 * DAY,
        cancellable: false,
      });
      const t = await setup('v2');
      expect((t.adapter as ProviderAdapter).cancelScheduled).toBeUndefined();
    });

    it('sends a scheduled message alone to /messages/sms with scheduledDelivery (minutes, checked by the spec); the rest stay on /multi', async () => {
      const t = await setup('v2');
      const batch = numbers(4).map((n) => sms(n));
      batch[2] = { ...batch[2]!, sendAt: new Date(Date.now() + 3_600_000) };
      const results = await t.adapter.sendBatch(batch);
      expect(results.every((r) => r.ok)).toBe(true);
      const requests = t.messagingRequests();
      const multi = requests.find((r) => r.path === '/messages/sms/multi')!;
      const single = requests.find((r) => r.path === '/messages/sms')!;
      expect(requests).toHaveLength(2);
      expect((multi.body as { smsMulti: Array<{ to: string }> }).smsMulti.map((m) => m.to)).toEqual(
        [0, 1, 3].map((i) => batch[i]!.to),
      );
      expect(multi.body).not.toHaveProperty('smsMulti.0.scheduledDelivery');
      expect(single.body).toMatchObject({ to: batch[2]!.to, scheduledDelivery: 60 });
      expect(t.fake.violations).toEqual([]);
    });

    it('rounds the delay up to whole minutes, so the message never goes before its time', async () => {
      const t = await setup('v2');
      const now = freezeClock();
      const cases: Array<[number, number]> = [
        [1, 1],
        [59_999, 1],
        [60_000, 1],
        [60_001, 2],
        [90_000, 2],
        [7 * DAY, 7 * 24 * 60],
      ];
      for (const [ahead, minutes] of cases) {
        const sendAt = new Date(now + ahead);
        const [result] = await t.adapter.sendBatch([{ ...sms('+61412000001'), sendAt }]);
        expect(result!.ok).toBe(true);
        const sent = (t.messagingRequests().at(-1)!.body as { scheduledDelivery: number })
          .scheduledDelivery;
        expect(sent).toBe(minutes);
        // Telstra counts from when it receives the request, which is not before `now`.
        expect(now + sent * 60_000).toBeGreaterThanOrEqual(sendAt.getTime());
      }
      expect(t.fake.violations).toEqual([]);
    });

    it('refuses a send time beyond 7 days, now or past without a request', async () => {
      const t = await setup('v2');
      const now = freezeClock();
      for (const at of [now + 7 * DAY + 1, now, now - 1]) {
        const error = await errorOf(t.adapter, { ...sms('+61412000001'), sendAt: new Date(at) });
        expect(error).toBeInstanceOf(PermanentSendError);
        expect(error.code).toBe('SCHEDULE_OUT_OF_RANGE');
      }
      expect(t.messagingRequests()).toHaveLength(0);
    });
  });

  it('checks health without a token', async () => {
    const t = await setup('v2');
    expect(await t.adapter.checkHealth()).toEqual({ ok: true, detail: 'up' });
    expect(t.fake.requests).toHaveLength(1);
    expect(t.fake.requests[0]!.headers.authorization).toBeUndefined();
    expect(t.fake.violations).toEqual([]);
  });
});

describe('telstra v3', () => {
  it('sends one message per POST /messages: national number, sender, callback URL and tag with our id', async () => {
    const t = await setup('v3');
    expect(t.adapter.maxBatchSize).toBe(1);
    const message = sms('+61412000001', 'Hello v3');
    const [result] = await t.adapter.sendBatch([message]);
    expect(result!.ok).toBe(true);
    const [request] = t.messagingRequests();
    expect(request!.path).toBe('/messages');
    const body = request!.body as Record<string, unknown>;
    expect(body).toMatchObject({
      to: '0412000001',
      from: '0400000000',
      messageContent: 'Hello v3',
      deliveryNotification: true,
      tags: [message.messageId],
    });
    expect(new URL(body.statusCallbackUrl as string).searchParams.get('heraldMessageId')).toBe(
      message.messageId,
    );
    expect(result!.ok && result!.providerMessageId).toMatch(/^[0-9a-f-]{36}$/);
    // The token came from its own endpoint, with the v3 scopes.
    expect(t.tokenFake.requests[0]!.body).toMatchObject({
      grant_type: 'client_credentials',
      scope: 'messages:read messages:write',
    });
    expect(t.fake.violations).toEqual([]);
    expect(t.tokenFake.violations).toEqual([]);
  });

  it('keeps international numbers in E.164', async () => {
    const t = await setup('v3');
    await t.adapter.sendBatch([sms('+447700900123')]);
    expect((t.messagingRequests()[0]!.body as { to: string }).to).toBe('+447700900123');
    expect(t.fake.violations).toEqual([]);
  });

  it('refuses a body over 1600 characters without a request, and needs a sender', async () => {
    const t = await setup('v3');
    await expect(
      t.adapter.sendBatch([sms('+61412000001', 'x'.repeat(1601))]),
    ).rejects.toBeInstanceOf(PermanentSendError);
    expect(t.fake.requests).toHaveLength(0);
    expect((await t.adapter.sendBatch([sms('+61412000001', 'x'.repeat(1600))]))[0]!.ok).toBe(true);

    const noSender = await setup('v3', { sender: undefined });
    const error = await errorOf(noSender.adapter, sms('+61412000001'));
    expect(error).toBeInstanceOf(AccountError);
    expect(noSender.fake.requests).toHaveLength(0);
  });

  it('renews the token on a 401 and retries once; a second 401 is an AccountError', async () => {
    const t = await setup('v3');
    await t.adapter.sendBatch([sms('+61412000001')]);
    t.state.valid.clear();
    expect((await t.adapter.sendBatch([sms('+61412000002')]))[0]!.ok).toBe(true);
    expect(t.state.tokensIssued).toBe(2);
    t.state.rejectAll = true;
    expect(await errorOf(t.adapter, sms('+61412000003'))).toBeInstanceOf(AccountError);
    expect(t.fake.violations).toEqual([]);
  });

  it.each([
    [v3Error(400, 'RECIPIENT_OPTOUT'), PermanentSendError, 'RECIPIENT_OPTOUT'],
    [v3Error(400, 'MODERATION_ERR'), PermanentSendError, 'MODERATION_ERR'],
    [v3Error(400, 'FIELD_INVALID', { field: 'to' }), PermanentSendError, 'FIELD_INVALID'],
    [v3Error(400, 'FIELD_INVALID', { field: 'from' }), AccountError, 'FIELD_INVALID'],
    [v3Error(400, 'SENDERNAME_ERR'), AccountError, 'SENDERNAME_ERR'],
    [v3Error(402, 'ACCOUNT_LIMIT_ERROR'), AccountError, 'ACCOUNT_LIMIT_ERROR'],
    [
      v3Error(402, 'FREE_TRIAL_INTERNATIONAL_ERR'),
      PermanentSendError,
      'FREE_TRIAL_INTERNATIONAL_ERR',
    ],
    [v3Error(403, 'INSUFFICIENT_SCOPE'), AccountError, 'INSUFFICIENT_SCOPE'],
    [v3Error(404, 'RESOURCE_TEMP_ERR'), RetryableSendError, 'RESOURCE_TEMP_ERR'],
    [v3Error(413, 'PAYLOAD_TOO_LARGE'), PermanentSendError, 'PAYLOAD_TOO_LARGE'],
    [v3Error(500, 'INTERNAL_SERVER_ERR'), RetryableSendError, 'INTERNAL_SERVER_ERR'],
    [v3Error(500, 'NETWORK_ERR'), RetryableSendError, 'NETWORK_ERR'],
    [v3Error(500, 'INTERNAL_TIMEOUT'), AmbiguousSendError, 'INTERNAL_TIMEOUT'],
  ] as const)('maps %j to one typed outcome', async (answer, type, code) => {
    const t = await setup('v3');
    t.state.next.push(() => answer);
    const error = await errorOf(t.adapter, sms('+61412000001'));
    expect(error).toBeInstanceOf(type);
    expect(error.code).toBe(code);
    expect(t.fake.violations).toEqual([]);
  });

  it('honours Retry-After on 429, and backs off without it', async () => {
    const t = await setup('v3');
    t.state.next.push(() => v3Error(429, 'TOO_MANY_REQUESTS', { retryAfter: '3600' }));
    const limited = (await errorOf(t.adapter, sms('+61412000001'))) as RateLimitedError;
    expect(limited).toBeInstanceOf(RateLimitedError);
    expect(limited.retryAfterMs).toBe(3_600_000);
    t.state.next.push(() => ({
      status: 429,
      body: { errors: [{ code: 'TOO_MANY_REQUESTS', issue: 'slow', suggested_action: 'down' }] },
    }));
    expect(((await errorOf(t.adapter, sms('+61412000001'))) as RateLimitedError).retryAfterMs).toBe(
      1000,
    );
    expect(t.fake.violations).toEqual([]);
  });

  it('parses status callbacks and replies', async () => {
    const t = await setup('v3');
    const ours = randomUUID();
    const status = {
      to: '0476543210',
      from: '0401234567',
      timestamp: '2022-11-10T05:06:42.823Z',
      messageId: '1520b774-46b0-4415-a05f-7bcb1c032c59',
      status: 'delivered',
    };
    expect(t.adapter.parseWebhook(webhook(status, `?heraldMessageId=${ours}`)).reports).toEqual([
      {
        messageId: ours,
        providerMessageId: status.messageId,
        providerStatus: 'delivered',
        status: 'DELIVERED',
        occurredAt: new Date(status.timestamp),
      },
    ]);
    const words: Record<string, string> = {
      queued: 'SENT',
      sent: 'SENT',
      delivered: 'DELIVERED',
      expired: 'EXPIRED',
      undeliverable: 'UNDELIVERABLE',
      weird: 'UNKNOWN',
    };
    for (const [word, mapped] of Object.entries(words)) {
      expect(t.adapter.parseWebhook(webhook({ ...status, status: word })).reports[0]!.status).toBe(
        mapped,
      );
    }
    const reply = {
      to: '0401234567',
      from: '0476543210',
      timestamp: '2022-11-10T05:07:00.000Z',
      messageId: 'a1b2c3d4-46b0-4415-a05f-7bcb1c032c59',
      messageContent: 'Stop',
      multimedia: [],
    };
    expect(t.adapter.parseWebhook(webhook(reply))).toEqual({
      reports: [],
      replies: [
        {
          from: '+61476543210',
          to: '+61401234567',
          body: 'Stop',
          providerMessageId: reply.messageId,
          occurredAt: new Date(reply.timestamp),
        },
      ],
    });
    expect(() => t.adapter.parseWebhook(webhook({ ...status, messageId: '' }))).toThrow(
      WebhookPayloadError,
    );
    expect(() => t.adapter.parseWebhook(webhook({ ...reply, from: undefined }))).toThrow(
      WebhookPayloadError,
    );
  });

  it('polls GET /messages/{messageId}, skipping ids that are not v3 UUIDs', async () => {
    const t = await setup('v3');
    const id = randomUUID();
    expect(await t.adapter.pollStatus([id, 'not-a-uuid'])).toEqual([
      {
        providerMessageId: id,
        providerStatus: 'delivered',
        status: 'DELIVERED',
        occurredAt: new Date('2024-01-01T00:00:05.000Z'),
      },
    ]);
    expect(t.messagingRequests().map((r) => r.path)).toEqual([`/messages/${id}`]);
    expect(t.fake.violations).toEqual([]);
  });

  describe('native scheduling', () => {
    afterEach(() => vi.useRealTimers());
    const DAY = 86_400_000;
    const later = () => new Date(Date.now() + DAY);

    async function scheduledId(t: Setup): Promise<string> {
      const [result] = await t.adapter.sendBatch([{ ...sms('+61412000001'), sendAt: later() }]);
      if (!result!.ok) throw result!.error;
      return result!.providerMessageId;
    }

    it('offers 10 days ahead, cancellable', async () => {
      for (const options of [{}, { version: 'v3' }]) {
        expect(telstraProvider.nativeScheduling?.({ options } as unknown as Account)).toEqual({
          maxAheadMs: 10 * DAY,
          cancellable: true,
        });
      }
      const t = await setup('v3');
      expect(typeof t.adapter.cancelScheduled).toBe('function');
    });

    it('sends scheduleSend as ISO 8601 UTC (checked by the spec, ≤ 24 characters), none without sendAt', async () => {
      const t = await setup('v3');
      const sendAt = new Date(Date.now() + 2 * DAY + 7);
      await t.adapter.sendBatch([{ ...sms('+61412000001'), sendAt }]);
      await t.adapter.sendBatch([sms('+61412000002')]);
      const [scheduled, immediate] = t.messagingRequests();
      expect((scheduled!.body as { scheduleSend: string }).scheduleSend).toBe(sendAt.toISOString());
      expect(immediate!.body).not.toHaveProperty('scheduleSend');
      expect(t.fake.violations).toEqual([]);
    });

    it('accepts exactly 10 days ahead; refuses a millisecond more, now or the past without a request', async () => {
      const t = await setup('v3');
      const now = freezeClock();
      for (const at of [now + 10 * DAY + 1, now, now - 1]) {
        const error = await errorOf(t.adapter, { ...sms('+61412000001'), sendAt: new Date(at) });
        expect(error).toMatchObject({ code: 'SCHEDULE_OUT_OF_RANGE', kind: 'permanent' });
      }
      expect(t.fake.requests).toHaveLength(0);
      const atLimit = new Date(now + 10 * DAY);
      const [result] = await t.adapter.sendBatch([{ ...sms('+61412000001'), sendAt: atLimit }]);
      expect(result!.ok).toBe(true);
      expect(t.messagingRequests().at(-1)!.body).toMatchObject({
        scheduleSend: atLimit.toISOString(),
      });
      expect(t.fake.violations).toEqual([]);
    });

    it('cancels with DELETE /messages/{messageId}; sent, unknown or non-v3 ids are not-cancellable', async () => {
      const t = await setup('v3');
      const id = await scheduledId(t);
      expect(await t.adapter.cancelScheduled!(id)).toBe('cancelled');
      const request = t.messagingRequests().at(-1)!;
      expect(request.method).toBe('DELETE');
      expect(request.path).toBe(`/messages/${id}`);
      expect(request.headers.authorization).toBe('Bearer tok-1');
      // Deleted: Telstra no longer knows it (404).
      expect(await t.adapter.cancelScheduled!(id)).toBe('not-cancellable');
      // Sent without a schedule: 400 DELETE_INVALID_MSG_SENT.
      const [sent] = await t.adapter.sendBatch([sms('+61412000002')]);
      expect(await t.adapter.cancelScheduled!(sent!.ok ? sent!.providerMessageId : '')).toBe(
        'not-cancellable',
      );
      const before = t.fake.requests.length;
      expect(await t.adapter.cancelScheduled!('d9974749000900001-1261412000001')).toBe(
        'not-cancellable',
      );
      expect(t.fake.requests).toHaveLength(before);
      expect(t.fake.violations).toEqual([]);
    });

    it.each([
      [v3Error(400, 'ID_NOT_ASSIGNED'), 'not-cancellable'],
      [v3Error(400, 'TIMEFRAME_ERR'), 'not-cancellable'],
      [v3Error(404, 'RESOURCE_NOT_FOUND'), 'not-cancellable'],
      [v3Error(402, 'ACCOUNT_ERR'), AccountError],
      [v3Error(403, 'INSUFFICIENT_SCOPE'), AccountError],
      [v3Error(404, 'RESOURCE_TEMP_ERR'), RetryableSendError],
      [v3Error(405, 'METHOD_INVALID'), AccountError],
      [v3Error(429, 'TOO_MANY_REQUESTS', { retryAfter: '9' }), RateLimitedError],
      [v3Error(500, 'INTERNAL_SERVER_ERR'), RetryableSendError],
      [v3Error(500, 'INTERNAL_TIMEOUT'), AmbiguousSendError],
    ] as const)('a cancel answered %j → %s', async (answer, outcome) => {
      const t = await setup('v3');
      const id = await scheduledId(t);
      t.state.next.push(() => answer);
      const result = await t.adapter.cancelScheduled!(id).catch((error: unknown) => error);
      if (typeof outcome === 'string') expect(result).toBe(outcome);
      else expect(result).toBeInstanceOf(outcome);
      if (result instanceof RateLimitedError) expect(result.retryAfterMs).toBe(9_000);
      expect(t.fake.violations).toEqual([]);
    });

    it('a cancel renews the token once on a 401; a second 401 is an AccountError', async () => {
      const t = await setup('v3');
      const id = await scheduledId(t);
      t.state.valid.clear();
      expect(await t.adapter.cancelScheduled!(id)).toBe('cancelled');
      expect(t.state.tokensIssued).toBe(2);
      const other = await scheduledId(t);
      t.state.rejectAll = true;
      await expect(t.adapter.cancelScheduled!(other)).rejects.toBeInstanceOf(AccountError);
      expect(t.fake.violations).toEqual([]);
    });
  });

  it('checks health at GET /health-check with a token', async () => {
    const t = await setup('v3');
    expect(await t.adapter.checkHealth()).toEqual({ ok: true, detail: 'up' });
    t.state.rejectAll = true;
    expect((await t.adapter.checkHealth()).ok).toBe(false);
    expect(t.fake.violations).toEqual([]);
  });
});
