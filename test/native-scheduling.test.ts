import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { cancelCampaign } from '../src/campaigns/campaign-lifecycle.js';
import { createCampaign, getCampaign, startCampaign } from '../src/campaigns/campaign-service.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
import { sweep } from '../src/campaigns/sweeper.js';
import { webhookUrl } from '../src/providers/webhook-url.js';
import { startOpenApiFake, type OpenApiFake } from './helpers/openapi-fake.js';
import { SANDBOX_ACCOUNT, createTestEnv, waitFor, type TestEnv } from './helpers/harness.js';

const DAY = 24 * 3_600_000;

interface Row {
  id: string;
  phone: string;
  status: string;
  due_at: Date;
  provider_message_id: string | null;
}

const rowsOf = (env: TestEnv, campaignId: string) =>
  env.query<Row>(
    'SELECT id, phone, status, due_at, provider_message_id FROM message WHERE campaign_id = $1 ORDER BY phone',
    [campaignId],
  );

const reminders = (times: Date[]) =>
  Readable.from([
    ['phone,name,send_at', ...times.map((t, i) => `04120009${i}0,P${i},${t.toISOString()}`)].join(
      '\n',
    ),
  ]);

describe('native scheduling on Optus: handed over within 60 days, never beyond', () => {
  const ACCOUNT = 'optus-native';
  let env: TestEnv;
  let fake: OpenApiFake;
  const received: Array<{ reference: string; scheduled?: string; at: number }> = [];
  // Adapters check send times against the real clock, so the test clock starts 31 days in the
  // past and later jumps to the real present: "31 days pass" without lying to anyone.
  const realNow = Date.now();
  const clock = new ManualClock(new Date(realNow - 31 * DAY));

  beforeAll(async () => {
    fake = await startOpenApiFake({
      spec: 'optus-sms-rest-v2.openapi.yml',
      basePath: '/rest/sms/v2',
      validateResponses: true,
      handle(request) {
        const body = request.body as { reference: string; scheduled?: string; destination: string };
        received.push({ reference: body.reference, scheduled: body.scheduled, at: Date.now() });
        return {
          status: 202,
          body: { id: randomUUID(), status: 'accepted', detail: body.destination },
        };
      },
    });
    env = await createTestEnv({
      clock,
      account: {
        name: ACCOUNT,
        provider: 'optus',
        baseUrl: fake.url,
        credentials: { applicationName: 'herald', password: 'secret' },
        options: {},
        rate: 100,
        scheduling: 'native',
      },
    });
  });
  afterAll(async () => {
    await env?.close();
    await fake?.close();
  });

  it('holds a reminder due in 90 days, hands it over once within 60, with the exact time', async () => {
    const soon = new Date(realNow + 2 * DAY + 1234); // 33 days from the test clock's "now"
    const far = new Date(realNow + 59 * DAY); // 90 days from it
    const campaign = await createCampaign(env.context, {
      name: 'reminders',
      account: ACCOUNT,
      template: 'See you, {{name}}',
      timezone: 'UTC',
    });
    await importRecipients(env.context, campaign.id, reminders([soon, far]));
    await env.startWorkerSet();
    await startCampaign(env.context, campaign.id);

    const [first] = await waitFor(async () => {
      const rows = await rowsOf(env, campaign.id);
      return rows[0]!.status === 'SCHEDULED' ? rows : undefined;
    }, 'the 33-day reminder to be handed to Optus');
    expect(received).toEqual([
      { reference: first!.id, scheduled: soon.toISOString(), at: expect.any(Number) },
    ]);
    // The 90-day one waits with Herald: a few sweeps later it is still PENDING, never sent.
    for (let i = 0; i < 3; i++) await sweep(env.context);
    const waiting = (await rowsOf(env, campaign.id))[1]!;
    expect(waiting.status).toBe('PENDING');
    expect(received).toHaveLength(1);

    // 31 days later it is 59 days away: within Optus's limit, so it is handed over.
    clock.set(new Date(Date.now()));
    await waitFor(async () => {
      const rows = await rowsOf(env, campaign.id);
      return rows[1]!.status === 'SCHEDULED' ? rows : undefined;
    }, 'the 90-day reminder to be handed over once within 60 days');
    expect(received[1]).toMatchObject({ reference: waiting.id, scheduled: far.toISOString() });
    for (const request of received) {
      const ahead = Date.parse(request.scheduled!) - request.at;
      expect(ahead).toBeGreaterThan(0);
      expect(ahead).toBeLessThanOrEqual(60 * DAY);
    }
    expect(fake.violations).toEqual([]);

    // Optus answers "accepted" at once for a message it holds: no news, it stays SCHEDULED.
    const url = webhookUrl(env.config.publicUrl, env.config.webhookSecret!, ACCOUNT);
    const report = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message_id: first!.provider_message_id, status: 'accepted' }),
    });
    expect(report.status).toBe(204);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect((await rowsOf(env, campaign.id)).map((r) => r.status)).toEqual([
      'SCHEDULED',
      'SCHEDULED',
    ]);
    // Not complete while Optus holds messages for later; cancelling says they will still go.
    await sweep(env.context);
    expect((await getCampaign(env.context, campaign.id)).status).toBe('RUNNING');
    const cancelled = await cancelCampaign(env.context, campaign.id);
    expect(cancelled).toMatchObject({
      cancelled: 0,
      alreadyHandedOver: 2,
      scheduledNotCancellable: 2,
      cancellingAtProvider: 0,
    });
  });
});

describe('native scheduling on the sandbox: cancelled at the provider with the campaign', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({ account: { scheduling: 'native' } });
    await env.startWorkerSet();
  });
  afterAll(() => env.close());

  const sandboxStatus = async (providerId: string) => {
    const response = await fetch(`${env.sandbox.url}/v1/messages/${providerId}`, {
      headers: { authorization: `Bearer ${env.env.TEST_SANDBOX_KEY}` },
    });
    return ((await response.json()) as { status: string }).status;
  };

  it('hands reminders over, then cancels every one at the provider when the campaign is cancelled', async () => {
    const due = new Date(Date.now() + 2 * DAY);
    const campaign = await createCampaign(env.context, {
      name: 'clinic',
      account: SANDBOX_ACCOUNT,
      template: 'Appointment, {{name}}',
    });
    await importRecipients(env.context, campaign.id, reminders([due, due, due]));
    await startCampaign(env.context, campaign.id);
    const handed = await waitFor(async () => {
      const rows = await rowsOf(env, campaign.id);
      return rows.every((r) => r.status === 'SCHEDULED') ? rows : undefined;
    }, 'the reminders to be handed to the sandbox');
    for (const row of handed)
      expect(await sandboxStatus(row.provider_message_id!)).toBe('scheduled');

    const result = await cancelCampaign(env.context, campaign.id);
    expect(result).toMatchObject({
      cancelled: 0,
      alreadyHandedOver: 0,
      scheduledNotCancellable: 0,
      cancellingAtProvider: 3,
    });
    await waitFor(async () => {
      const rows = await rowsOf(env, campaign.id);
      return rows.every((r) => r.status === 'CANCELLED') ? true : undefined;
    }, 'the cancel job to cancel them at the provider');
    for (const row of handed)
      expect(await sandboxStatus(row.provider_message_id!)).toBe('cancelled');
  });
});
