import { Readable } from 'node:stream';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCampaign, startCampaign } from '../src/campaigns/campaign-service.js';
import { getCampaignStats } from '../src/campaigns/campaign-stats.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
import {
  SANDBOX_ACCOUNT,
  countersAndTruth,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from './helpers/harness.js';
import { spawnHerald, writeAccountsFile } from './helpers/worker-process.js';

describe('worker processes stopped hard mid-campaign', () => {
  let env: TestEnv;
  let accountsFile: string;
  const children: Array<ReturnType<typeof spawnHerald>> = [];

  beforeAll(async () => {
    // Slow enough that sends are in flight when a worker is killed, and reports late enough that
    // a re-run job meets its interrupted send before the report resolves it.
    env = await createTestEnv({
      sandbox: { latencyMs: 40, reportDelayMs: 3000 },
      account: { rate: 250 },
    });
    accountsFile = await writeAccountsFile(env);
  });
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await env.close();
    await rm(accountsFile, { force: true });
  });

  const startWorker = () => {
    const child = spawnHerald(['worker'], {
      ...env.env,
      HERALD_ACCOUNTS_FILE: accountsFile,
      HERALD_JOB_LOCK_MS: '2000',
    });
    children.push(child);
    return child;
  };

  it('loses nothing and sends nothing twice; interrupted sends are counted UNKNOWN', async () => {
    const { context } = env;
    const campaign = await createCampaign(context, {
      name: 'crash',
      account: SANDBOX_ACCOUNT,
      template: 'Hi {{first_name}}',
    });
    await importRecipients(context, campaign.id, Readable.from([recipientsCsv(1000)]));
    const processed = async () => (await getCampaignStats(context, campaign.id)).processed;

    let victim = startWorker();
    startWorker();
    await startCampaign(context, campaign.id);

    for (const threshold of [150, 450]) {
      await waitFor(
        async () => ((await processed()) >= threshold ? true : undefined),
        `${threshold} messages processed`,
      );
      victim.kill('SIGKILL');
      await once(victim, 'exit');
      victim = startWorker();
    }

    const stats = await waitFor(
      async () => {
        const s = await getCampaignStats(context, campaign.id);
        return s.campaign.status === 'COMPLETED' && s.awaitingReport === 0 ? s : undefined;
      },
      'the campaign to complete after the crashes',
      90_000,
    );

    // Nothing lost: every message reached an outcome.
    expect(stats.remaining).toBe(0);
    expect(stats.total).toBe(1000);

    const messages = await env.query<{ id: string; status: string; error_code: string | null }>(
      'SELECT id, status, error_code FROM message WHERE campaign_id = $1',
      [campaign.id],
    );
    const unknown = messages.filter((m) => m.status === 'UNKNOWN');
    for (const m of messages) {
      const requests = env.sandbox.receivedByReference.get(m.id) ?? 0;
      // Nothing sent twice.
      expect(requests, `message ${m.id}`).toBeLessThanOrEqual(1);
      // Never sent → only because a worker died holding it, and then it is counted UNKNOWN.
      if (requests === 0) expect(m.status, `message ${m.id} was never sent`).toBe('UNKNOWN');
    }
    expect(stats.counts.UNKNOWN).toBe(unknown.length);
    for (const m of unknown) expect(m.error_code).toBe('SEND_INTERRUPTED');

    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
  });
});
