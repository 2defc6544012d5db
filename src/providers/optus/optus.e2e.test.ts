import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCampaign, startCampaign } from '../../campaigns/campaign-service.js';
import { getCampaignStats } from '../../campaigns/campaign-stats.js';
import { importRecipients } from '../../campaigns/import-recipients.js';
import { webhookUrl } from '../webhook-url.js';
import {
  startOpenApiFake,
  type FakeRequest,
  type OpenApiFake,
} from '../../../test/helpers/openapi-fake.js';
import {
  countersAndTruth,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from '../../../test/helpers/harness.js';

const ACCOUNT = 'optus-test';

/**
 * What the fake Optus does with each destination, by its last digit: refuse it outright
 * (invalid_attrib → REJECTED without a report), or accept it and later report a final status.
 */
function outcome(
  destination: string,
): { refuse: true } | { refuse: false; status: string; expected: string } {
  const digit = Number(destination.at(-1));
  if (digit === 7) return { refuse: true };
  if (digit === 3) return { refuse: false, status: 'failed', expected: 'FAILED' };
  if (digit === 5) return { refuse: false, status: 'expired', expected: 'EXPIRED' };
  return { refuse: false, status: 'received', expected: 'DELIVERED' };
}

describe('an Optus campaign end to end', () => {
  let env: TestEnv;
  let fake: OpenApiFake;
  const sentByReference = new Map<string, number>();
  const callbacks: Array<Promise<number>> = [];

  /** Posts the DLR Optus would send to the per-application callback URL (both documented shapes). */
  function reportLater(request: FakeRequest, id: string, status: string) {
    const { reference } = request.body as { reference: string };
    const url = webhookUrl(env.config.publicUrl, env.config.webhookSecret!, ACCOUNT);
    // Alternate the spec's {id,status,detail} and the asyncapi's {message_id,reference,status}.
    const body =
      sentByReference.size % 2 === 0
        ? { id, status: 'submitted', detail: (request.body as { destination: string }).destination }
        : { message_id: id, reference, status: 'submitted' };
    const post = (payload: unknown) =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
      }).then((r) => r.status);
    callbacks.push(
      new Promise<void>((resolve) => setTimeout(resolve, 20))
        .then(() => post(body))
        .then(() => post({ ...body, status })),
    );
  }

  beforeAll(async () => {
    fake = await startOpenApiFake({
      spec: 'optus-sms-rest-v2.openapi.yml',
      basePath: '/rest/sms/v2',
      validateResponses: true,
      handle(request) {
        const { destination, reference } = request.body as {
          destination: string;
          reference: string;
        };
        sentByReference.set(reference, (sentByReference.get(reference) ?? 0) + 1);
        const decided = outcome(destination);
        if (decided.refuse) {
          return {
            status: 400,
            body: {
              message: 'SMS Gateway Service V2 error',
              statusCode: 400,
              error: 'invalid_attrib',
            },
          };
        }
        const id = randomUUID();
        reportLater(request, id, decided.status);
        return { status: 202, body: { id, status: 'accepted', detail: destination } };
      },
    });
    env = await createTestEnv({
      account: {
        name: ACCOUNT,
        provider: 'optus',
        baseUrl: fake.url,
        credentials: { applicationName: 'herald', password: 'secret' },
        sender: 'Herald',
        options: {},
        rate: 500,
      },
    });
  });
  afterAll(async () => {
    await Promise.allSettled(callbacks);
    await env?.close();
    await fake?.close();
  });

  it('sends every recipient once and folds the Optus reports into matching counters', async () => {
    const { context } = env;
    const campaign = await createCampaign(context, {
      name: 'optus-flow',
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

    await waitFor(async () => {
      const s = await getCampaignStats(context, campaign.id);
      return s.campaign.status === 'COMPLETED' && s.awaitingReport === 0 ? s : undefined;
    }, 'the Optus campaign to complete with every report in');

    const messages = await env.query<{
      id: string;
      phone: string;
      status: string;
      provider_message_id: string | null;
    }>('SELECT id, phone, status, provider_message_id FROM message WHERE campaign_id = $1', [
      campaign.id,
    ]);
    expect(messages).toHaveLength(50);
    for (const m of messages) {
      expect(sentByReference.get(m.id)).toBe(1);
      const decided = outcome(m.phone);
      expect(m.status).toBe(decided.refuse ? 'REJECTED' : decided.expected);
    }
    expect((await Promise.all(callbacks)).every((status) => status === 204)).toBe(true);
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
    expect(fake.violations).toEqual([]);
  });

  it('refuses a forged callback (bad URL token) with 401 and an unreadable one with 400', async () => {
    const good = webhookUrl(env.config.publicUrl, env.config.webhookSecret!, ACCOUNT);
    const forged = `${env.config.publicUrl}/webhooks/${ACCOUNT}/not-the-token`;
    const post = (url: string, body: string) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(
      (await post(forged, JSON.stringify({ id: randomUUID(), status: 'received' }))).status,
    ).toBe(401);
    expect((await post(good, JSON.stringify({ hello: 'world' }))).status).toBe(400);
    expect((await post(good, '{not json')).status).toBe(400);
  });
});
