import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCampaign, startCampaign } from '../../campaigns/campaign-service.js';
import { getCampaignStats } from '../../campaigns/campaign-stats.js';
import { importRecipients } from '../../campaigns/import-recipients.js';
import {
  countersAndTruth,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from '../../../test/helpers/harness.js';
import {
  startOpenApiFake,
  type FakeRequest,
  type FakeResponse,
  type OpenApiFake,
} from '../../../test/helpers/openapi-fake.js';
import { webhookUrl } from '../webhook-url.js';

const CLIENT_ID = 'e2e-client';
const CLIENT_SECRET = 'e2e-secret';
const RECIPIENTS = 50;

/**
 * What the fake Telstra decides for a number (0412000000 + i): i % 10 === 7 is refused at send
 * (v2 400 TO-MSISDN-NOT-VALID / v3 400 RECIPIENT_OPTOUT); otherwise by i % 3 the final report is
 * delivered, expired or undeliverable.
 */
function fate(number: string): 'refused' | 'delivered' | 'expired' | 'undeliverable' {
  const i = Number(number.replace(/\D/g, '').slice(-6));
  if (i % 10 === 7) return 'refused';
  return (['delivered', 'expired', 'undeliverable'] as const)[i % 3]!;
}
const EXPECTED = {
  refused: 'REJECTED',
  delivered: 'DELIVERED',
  expired: 'EXPIRED',
  undeliverable: 'UNDELIVERABLE',
} as const;
const V2_WORD = { delivered: 'DELIVRD', expired: 'EXPIRED', undeliverable: 'UNDVBL' } as const;

/** Telstra's side: tokens, sends, and delivery reports posted (like Telstra) to the URL it was given. */
class TelstraWorld {
  tokens = new Set<string>();
  callbacks: Array<Promise<void>> = [];
  callbackStatuses: number[] = [];
  /** How many times each number was accepted. */
  accepted = new Map<string, number>();
  private counter = 0;

  token(request: FakeRequest): FakeResponse {
    const form = request.body as Record<string, string>;
    if (form.client_id !== CLIENT_ID || form.client_secret !== CLIENT_SECRET)
      return { status: 401, body: 'bad client' };
    const token = `e2e-token-${this.tokens.size + 1}`;
    this.tokens.add(token);
    return { status: 200, body: { access_token: token, token_type: 'Bearer', expires_in: '3599' } };
  }

  authorised(request: FakeRequest): boolean {
    return this.tokens.has(String(request.headers.authorization ?? '').replace(/^Bearer /, ''));
  }

  accept(number: string): void {
    this.accepted.set(number, (this.accepted.get(number) ?? 0) + 1);
  }

  nextId(): number {
    return ++this.counter;
  }

  /** Posts `body` to `url` shortly after the send's answer, as Telstra does at the final state. */
  report(url: string, body: unknown): void {
    this.callbacks.push(
      new Promise((resolve) => setTimeout(resolve, 30)).then(async () => {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        this.callbackStatuses.push(response.status);
      }),
    );
  }
}

async function runCampaign(env: TestEnv, account: string) {
  const { context } = env;
  const campaign = await createCampaign(context, {
    name: `${account}-flow`,
    account,
    template: 'Hi {{first_name}}',
  });
  const imported = await importRecipients(
    context,
    campaign.id,
    Readable.from([recipientsCsv(RECIPIENTS)]),
  );
  expect(imported).toMatchObject({ rows: RECIPIENTS, accepted: RECIPIENTS });
  await env.startWorkerSet();
  await startCampaign(context, campaign.id);
  const stats = await waitFor(
    async () => {
      const s = await getCampaignStats(context, campaign.id);
      return s.campaign.status === 'COMPLETED' && s.awaitingReport === 0 && s.remaining === 0
        ? s
        : undefined;
    },
    'the Telstra campaign to complete with every report in',
    25_000,
  );
  const messages = await env.query<{
    id: string;
    phone: string;
    status: string;
    provider_message_id: string | null;
  }>('SELECT id, phone, status, provider_message_id FROM message WHERE campaign_id = $1', [
    campaign.id,
  ]);
  return { campaign, stats, messages };
}

describe('telstra v2 end to end (/multi batches, reports matched by Telstra id)', () => {
  const world = new TelstraWorld();
  let fake: OpenApiFake;
  let env: TestEnv;
  const name = 'telstra-v2-test';

  beforeAll(async () => {
    fake = await startOpenApiFake({
      spec: 'telstra-messaging-v2.2.10.openapi.json',
      basePath: '/v2',
      validateResponses: true,
      handle: (request) => {
        if (request.path === '/oauth/token') return world.token(request);
        if (!world.authorised(request)) return { status: 401, body: 'Invalid access token' };
        const accept = (to: string, notifyURL: string) => {
          world.accept(to);
          const messageId = `e2e${String(world.nextId()).padStart(6, '0')}-${to.slice(1)}`;
          const f = fate(to) as keyof typeof V2_WORD;
          world.report(notifyURL, {
            to,
            sentTimestamp: new Date().toISOString(),
            receivedTimestamp: new Date().toISOString(),
            messageId,
            deliveryStatus: V2_WORD[f],
          });
          return { to, deliveryStatus: 'MessageWaiting', messageId };
        };
        if (request.path === '/messages/sms/multi') {
          const body = request.body as { smsMulti: Array<{ to: string }>; notifyURL: string };
          if (body.smsMulti.some((m) => fate(m.to) === 'refused')) {
            return {
              status: 400,
              body: { status: '400', code: 'TO-MSISDN-NOT-VALID', message: 'invalid number' },
            };
          }
          const messages = body.smsMulti.map((m) => accept(m.to, body.notifyURL));
          return {
            status: 200,
            body: { messages, messageType: 'SMS', numberSegments: messages.length },
          };
        }
        if (request.path === '/messages/sms') {
          const body = request.body as { to: string; notifyURL: string };
          if (fate(body.to) === 'refused') {
            return {
              status: 400,
              body: { status: '400', code: 'TO-MSISDN-NOT-VALID', message: 'invalid number' },
            };
          }
          return {
            status: 201,
            body: {
              messages: [accept(body.to, body.notifyURL)],
              messageType: 'SMS',
              numberSegments: 1,
            },
          };
        }
        return { status: 404, body: 'RESOURCE-NOT-FOUND' };
      },
    });
    env = await createTestEnv({
      account: {
        name,
        provider: 'telstra',
        baseUrl: fake.url,
        credentials: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET },
        options: { version: 'v2', tokenUrl: `${fake.url}/oauth/token` },
        rate: 500,
      },
    });
  });
  afterAll(async () => {
    await Promise.allSettled(world.callbacks);
    await env?.close();
    await fake?.close();
  });

  it('completes a campaign with counters equal to the truth and statuses as Telstra decided', async () => {
    const { campaign, messages } = await runCampaign(env, name);
    await Promise.all(world.callbacks);
    expect(world.callbackStatuses.every((s) => s === 204)).toBe(true);
    expect(messages).toHaveLength(RECIPIENTS);
    for (const m of messages) {
      expect(m.status).toBe(EXPECTED[fate(m.phone)]);
      if (fate(m.phone) !== 'refused') expect(world.accepted.get(m.phone)).toBe(1);
      else expect(world.accepted.has(m.phone)).toBe(false);
    }
    // Batches really went through /multi, with the account's callback URL.
    const multi = fake.requests.filter((r) => r.path === '/messages/sms/multi');
    expect(multi.length).toBeGreaterThan(0);
    expect((multi[0]!.body as { notifyURL: string }).notifyURL).toBe(
      webhookUrl(env.config.publicUrl, env.config.webhookSecret!, name),
    );
    expect(
      Math.max(...multi.map((r) => (r.body as { smsMulti: unknown[] }).smsMulti.length)),
    ).toBeLessThanOrEqual(10);
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
    expect(fake.violations).toEqual([]);
  });

  it('through the real route: a forged callback gets 401, a malformed one 400, a valid one 204', async () => {
    const good = webhookUrl(env.config.publicUrl, env.config.webhookSecret!, name);
    const dlr = {
      to: '+61412000001',
      sentTimestamp: '2017-03-17T10:05:22+10:00',
      receivedTimestamp: '2017-03-17T10:05:23+10:00',
      messageId: 'unknown-id',
      deliveryStatus: 'DELIVRD',
    };
    const post = (url: string, body: unknown) =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then((r) => r.status);
    expect(
      await post(good.replace(/[^/]+$/, 'forged-token-forged-token-forged-token-123'), dlr),
    ).toBe(401);
    expect(await post(webhookUrl(env.config.publicUrl, 'not-the-secret', name), dlr)).toBe(401);
    expect(await post(good, { to: '+61412000001', deliveryStatus: 'DELIVRD' })).toBe(400);
    expect(await post(good, dlr)).toBe(204);
    // A reply to the subscription's notifyURL is stored as an inbound message.
    expect(
      await post(good, {
        to: '+61472880123',
        from: '+61412000001',
        body: 'STOP',
        sentTimestamp: '2018-04-20T14:24:35',
        messageId: `reply-${randomUUID()}`,
      }),
    ).toBe(204);
  });
});

describe('telstra v3 end to end (one message per request, our id in the status callback URL)', () => {
  const world = new TelstraWorld();
  let fake: OpenApiFake;
  let tokenFake: OpenApiFake;
  let env: TestEnv;
  const name = 'telstra-v3-test';
  const idsByOurs = new Map<string, string>();

  beforeAll(async () => {
    tokenFake = await startOpenApiFake({
      spec: 'telstra-messaging-v2.2.10.openapi.json',
      basePath: '/v2',
      handle: (request) => world.token(request),
    });
    fake = await startOpenApiFake({
      spec: 'telstra-messaging-v3.openapi.yaml',
      basePath: '/messaging/v3',
      validateResponses: true,
      handle: (request) => {
        if (!world.authorised(request)) {
          return {
            status: 401,
            body: {
              errors: [{ code: 'TOKEN_INVALID', issue: 'bad token', suggested_action: 'renew' }],
            },
          };
        }
        if (request.path !== '/messages' || request.method !== 'POST') {
          return {
            status: 404,
            body: { errors: [{ code: 'RESOURCE_NOT_FOUND', issue: 'no', suggested_action: 'no' }] },
          };
        }
        const body = request.body as {
          to: string;
          from: string;
          statusCallbackUrl: string;
          tags: string[];
        };
        const f = fate(body.to);
        if (f === 'refused') {
          return {
            status: 400,
            body: {
              errors: [{ code: 'RECIPIENT_OPTOUT', issue: 'opted out', suggested_action: 'check' }],
            },
          };
        }
        world.accept(body.to);
        const messageId = randomUUID();
        idsByOurs.set(body.tags[0]!, messageId);
        // The status callback carries Telstra's id only; our id is in the URL we gave it.
        world.report(body.statusCallbackUrl, {
          to: body.to,
          from: body.from,
          timestamp: new Date().toISOString(),
          messageId,
          status: f,
        });
        return { status: 201, body: { messageId, status: 'queued', to: body.to, from: body.from } };
      },
    });
    env = await createTestEnv({
      account: {
        name,
        provider: 'telstra',
        baseUrl: fake.url,
        sender: '0400000000',
        credentials: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET },
        options: { tokenUrl: `${tokenFake.url}/oauth/token` },
        rate: 500,
      },
    });
  });
  afterAll(async () => {
    await Promise.allSettled(world.callbacks);
    await env?.close();
    await fake?.close();
    await tokenFake?.close();
  });

  it('completes a campaign with counters equal to the truth and statuses as Telstra decided', async () => {
    const { campaign, messages } = await runCampaign(env, name);
    await Promise.all(world.callbacks);
    expect(world.callbackStatuses.every((s) => s === 204)).toBe(true);
    expect(messages).toHaveLength(RECIPIENTS);
    for (const m of messages) {
      const national = `0${m.phone.slice(3)}`;
      expect(m.status).toBe(EXPECTED[fate(national)]);
      if (fate(national) !== 'refused') {
        expect(world.accepted.get(national)).toBe(1);
        expect(m.provider_message_id).toBe(idsByOurs.get(m.id));
      }
    }
    expect(world.tokens.size).toBe(1); // one token for the whole campaign (per worker set)
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
    expect(fake.violations).toEqual([]);
    expect(tokenFake.violations).toEqual([]);
  });
});
