import { Readable } from 'node:stream';
import { createCampaign, startCampaign } from '../../src/campaigns/campaign-service.js';
import { getCampaignStats, type CampaignStats } from '../../src/campaigns/campaign-stats.js';
import { importRecipients } from '../../src/campaigns/import-recipients.js';
import { SANDBOX_ACCOUNT, recipientsCsv, waitFor, type TestEnv } from './harness.js';

/** A DRAFT campaign of `count` recipients on the test's sandbox account (numbers from `offset`). */
export async function seedCampaign(env: TestEnv, count: number, offset = 0, name = 'guarantee') {
  const campaign = await createCampaign(env.context, {
    name,
    account: SANDBOX_ACCOUNT,
    template: 'Hi {{first_name}}',
  });
  await importRecipients(env.context, campaign.id, Readable.from([recipientsCsv(count, offset)]));
  return campaign;
}

export async function start(env: TestEnv, campaignId: string): Promise<void> {
  await startCampaign(env.context, campaignId);
}

export async function processed(env: TestEnv, campaignId: string): Promise<number> {
  return (await getCampaignStats(env.context, campaignId)).processed;
}

/** Waits until `processed` reaches `threshold`. */
export async function waitForProcessed(env: TestEnv, campaignId: string, threshold: number) {
  await waitFor(
    async () => ((await processed(env, campaignId)) >= threshold ? true : undefined),
    `${threshold} messages processed`,
  );
}

/** Waits until the campaign is COMPLETED and no message awaits its report. */
export async function waitForCompletion(
  env: TestEnv,
  campaignId: string,
  timeoutMs = 60_000,
): Promise<CampaignStats> {
  return waitFor(
    async () => {
      const s = await getCampaignStats(env.context, campaignId);
      return s.campaign.status === 'COMPLETED' && s.awaitingReport === 0 ? s : undefined;
    },
    'the campaign to complete',
    timeoutMs,
  );
}

export interface MessageRow {
  id: string;
  status: string;
  error_code: string | null;
  attempts: number;
}

export async function messagesOf(env: TestEnv, campaignId: string): Promise<MessageRow[]> {
  return env.query<MessageRow>(
    'SELECT id, status, error_code, attempts FROM message WHERE campaign_id = $1',
    [campaignId],
  );
}
