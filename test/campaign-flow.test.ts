import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCampaign, startCampaign } from '../src/campaigns/campaign-service.js';
import { getCampaignStats } from '../src/campaigns/campaign-stats.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
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

describe('a campaign end to end through two worker sets', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv();
  });
  afterAll(async () => {
    await env.close();
  });

  it('sends each of 1,000 recipients exactly once and folds every report into matching counters', async () => {
    const { context } = env;
    const campaign = await createCampaign(context, {
      name: 'flow',
      account: SANDBOX_ACCOUNT,
      template: 'Hello {{first_name}}',
    });
    const report = await importRecipients(
      context,
      campaign.id,
      Readable.from([recipientsCsv(1000)]),
    );
    expect(report).toMatchObject({ rows: 1000, accepted: 1000, rejected: 0 });

    // Two independent sets of workers, each with its own Redis and Postgres connections.
    const completedBySet = [0, 0];
    for (const set of [0, 1]) {
      const workers = await env.startWorkerSet();
      for (const worker of workers.bullWorkers)
        worker.on('completed', () => (completedBySet[set]! += 1));
    }
    await startCampaign(context, campaign.id);

    const stats = await waitFor(async () => {
      const s = await getCampaignStats(context, campaign.id);
      return s.campaign.status === 'COMPLETED' && s.awaitingReport === 0 ? s : undefined;
    }, 'the campaign to complete with every report in');

    expect(stats.total).toBe(1000);
    expect(stats.delivered + stats.failed).toBe(1000);

    // Every recipient reached the provider exactly once.
    const messages = await env.query<{
      id: string;
      phone: string;
      status: string;
      provider_message_id: string | null;
    }>('SELECT id, phone, status, provider_message_id FROM message WHERE campaign_id = $1', [
      campaign.id,
    ]);
    expect(messages).toHaveLength(1000);
    for (const m of messages) expect(env.sandbox.receivedByReference.get(m.id)).toBe(1);
    expect(env.sandbox.receivedByReference.size).toBe(1000);

    // Each message ended as the sandbox decided for its number, with the provider's id stored.
    for (const m of messages) {
      expect(m.status).toBe(EXPECTED_STATUS[sandboxOutcome(m.phone)]);
      expect(m.provider_message_id).toMatch(/^sbx-/);
    }

    // Both worker sets did part of the work.
    expect(completedBySet[0]).toBeGreaterThan(0);
    expect(completedBySet[1]).toBeGreaterThan(0);

    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
  });
});
