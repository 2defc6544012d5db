import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCampaign, startCampaign } from '../src/campaigns/campaign-service.js';
import { getCampaignStats } from '../src/campaigns/campaign-stats.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
import { pollSentMessages } from '../src/polling/poll-reports.js';
import { sandboxOutcome } from '../src/providers/sandbox/outcomes.js';
import {
  SANDBOX_ACCOUNT,
  countersAndTruth,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from './helpers/harness.js';

const EXPECTED_STATUS = {
  delivered: 'DELIVERED',
  failed: 'FAILED',
  expired: 'EXPIRED',
  undeliverable: 'UNDELIVERABLE',
} as const;

/** Every third number's delivery report is lost on the way. */
const dropped = (to: string) => Number(to.slice(-2)) % 3 === 0;

describe('polling fallback for messages whose delivery report never comes', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({
      sandbox: { dropReports: dropped, reportDelayMs: 50 },
      env: { HERALD_POLL_AFTER_MS: '1500', HERALD_POLL_INTERVAL_MS: '1000' },
    });
  });
  afterAll(() => env.close());

  it('asks nothing while no message is due', async () => {
    expect(await pollSentMessages(env.context)).toEqual({
      accounts: 0,
      asked: 0,
      reports: 0,
      pulled: 0,
    });
    expect(env.sandbox.statusRequests).toBe(0);
  });

  it('finds the final status of every message whose report was lost, through folding', async () => {
    const campaign = await createCampaign(env.context, {
      name: 'polling',
      account: SANDBOX_ACCOUNT,
      template: 'Hi {{first_name}}',
    });
    await importRecipients(env.context, campaign.id, Readable.from([recipientsCsv(60)]));
    await env.startWorkerSet();
    await startCampaign(env.context, campaign.id);

    // The sandbox loses a third of the reports (every number ending in a multiple of 3) …
    await waitFor(
      async () => (env.sandbox.droppedReports === 20 ? true : undefined),
      'the sandbox to drop 20 reports',
    );
    // … until the poll job (every second, for messages SENT over 1.5 s ago) asks the sandbox.
    const done = await waitFor(async () => {
      const s = await getCampaignStats(env.context, campaign.id);
      return s.awaitingReport === 0 ? s : undefined;
    }, 'polling to resolve the messages whose report was dropped');
    expect(done.total).toBe(60);
    expect(env.sandbox.statusRequests).toBeGreaterThanOrEqual(20);

    const messages = await env.query<{ id: string; phone: string; status: string }>(
      'SELECT id, phone, status FROM message WHERE campaign_id = $1',
      [campaign.id],
    );
    for (const m of messages) expect(m.status).toBe(EXPECTED_STATUS[sandboxOutcome(m.phone)]);
    // The dropped ones were resolved by polled reports, stored like any other and folded.
    const polled = await env.query<{ message_id: string; outcome: string }>(
      `SELECT message_id, outcome FROM delivery_event
       WHERE message_id = ANY($1::uuid[]) AND outcome = 'APPLIED'`,
      [messages.filter((m) => dropped(m.phone)).map((m) => m.id)],
    );
    expect(polled).toHaveLength(20);
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
  });
});
