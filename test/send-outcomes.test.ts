import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCampaign, startCampaign } from '../src/campaigns/campaign-service.js';
import { getCampaignStats } from '../src/campaigns/campaign-stats.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
import { readAccountPauses } from '../src/sending/account-state.js';
import {
  SANDBOX_ACCOUNT,
  countersAndTruth,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from './helpers/harness.js';

describe('what the send worker does with each kind of provider answer', () => {
  let env: TestEnv;
  let offset = 0;
  beforeAll(async () => {
    env = await createTestEnv({ env: { HERALD_ACCOUNT_PAUSE_MS: '1000' } });
    await env.startWorkerSet();
  });
  afterAll(() => env.close());

  /** Runs a campaign of `count` fresh numbers to completion; `beforeStart` may prepare the sandbox. */
  async function runCampaign(count: number, beforeStart?: (ids: string[]) => Promise<void>) {
    const campaign = await createCampaign(env.context, {
      name: 'outcomes',
      account: SANDBOX_ACCOUNT,
      template: 'Hi {{first_name}}',
    });
    await importRecipients(env.context, campaign.id, Readable.from([recipientsCsv(count, offset)]));
    offset += count;
    const ids = (
      await env.query<{ id: string }>('SELECT id FROM message WHERE campaign_id = $1', [
        campaign.id,
      ])
    ).map((r) => r.id);
    await beforeStart?.(ids);
    await startCampaign(env.context, campaign.id);
    const stats = await waitFor(async () => {
      const s = await getCampaignStats(env.context, campaign.id);
      return s.campaign.status === 'COMPLETED' && s.awaitingReport === 0 ? s : undefined;
    }, 'the campaign to complete');
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
    return { campaign, stats, ids };
  }

  it('checks opt-outs again at send time: a number suppressed after import is never sent', async () => {
    const { stats, ids } = await runCampaign(5, async (imported) => {
      await env.query(
        `INSERT INTO suppression (phone, reason) SELECT phone, 'STOP reply' FROM message WHERE id = ANY($1) ORDER BY phone LIMIT 2`,
        [imported],
      );
    });
    expect(stats.counts.SUPPRESSED).toBe(2);
    const suppressed = await env.query<{ id: string }>(
      `SELECT id FROM message WHERE id = ANY($1) AND status = 'SUPPRESSED'`,
      [ids],
    );
    for (const { id } of suppressed) expect(env.sandbox.receivedByReference.has(id)).toBe(false);
  });

  it('waits out a 429 and sends every message exactly once', async () => {
    const { stats, ids } = await runCampaign(20, async () => env.sandbox.failNext(3, 429, 1));
    expect(stats.delivered + stats.failed).toBe(20);
    for (const id of ids) expect(env.sandbox.receivedByReference.get(id)).toBe(1);
  });

  it('retries a 503 the provider documents as not sent, and sends each message once', async () => {
    const { stats, ids } = await runCampaign(10, async () => env.sandbox.failNext(2, 503));
    expect(stats.delivered + stats.failed).toBe(10);
    for (const id of ids) expect(env.sandbox.receivedByReference.get(id)).toBe(1);
  });

  it('pauses the account with a visible reason when the provider refuses it, then carries on', async () => {
    const { stats } = await runCampaign(10, async () => env.sandbox.failNext(1, 401));
    expect(stats.delivered + stats.failed).toBe(10);
    // The pause was recorded with the provider's reason (it has expired by now).
    const raw = await env.context.redis.hget(
      `${env.config.queuePrefix}:account-pauses`,
      SANDBOX_ACCOUNT,
    );
    expect(JSON.parse(raw!)).toMatchObject({ code: 'INJECTED', message: 'injected failure' });
    expect(
      await readAccountPauses(
        env.context.redis,
        env.config.queuePrefix,
        new Date(Date.now() + 5000),
      ),
    ).toEqual({});
    // Every refusal so far was counted by class for /metrics (429 → rate-limited, 503 → retryable,
    // 401 → account), whichever process met it.
    const metrics = await (await fetch(`${env.config.publicUrl}/metrics`)).text();
    for (const kind of ['rate-limited', 'retryable', 'account']) {
      expect(metrics).toMatch(
        new RegExp(
          `herald_send_errors_total\\{account="${SANDBOX_ACCOUNT}",class="${kind}"\\} [1-9]`,
        ),
      );
    }
  });

  it('fails a message the provider rejects, with its reason, and does not retry it', async () => {
    // The sandbox rejects a body over 1600 characters. The import refuses such rows, so the
    // recipients' fields grow after the import (as a list edited in the database would).
    const campaign = await createCampaign(env.context, {
      name: 'too long',
      account: SANDBOX_ACCOUNT,
      template: 'Hi {{first_name}}',
    });
    await importRecipients(env.context, campaign.id, Readable.from([recipientsCsv(2, offset)]));
    offset += 2;
    await env.query(
      `UPDATE message SET fields = jsonb_set(fields, '{first_name}', to_jsonb(repeat('x', 1700))) WHERE campaign_id = $1`,
      [campaign.id],
    );
    await startCampaign(env.context, campaign.id);
    const stats = await waitFor(async () => {
      const s = await getCampaignStats(env.context, campaign.id);
      return s.campaign.status === 'COMPLETED' ? s : undefined;
    }, 'the campaign to complete');
    expect(stats.counts.REJECTED).toBe(2);
    const rows = await env.query<{ error_code: string; attempts: number }>(
      'SELECT error_code, attempts FROM message WHERE campaign_id = $1',
      [campaign.id],
    );
    expect(rows).toEqual([
      { error_code: 'INVALID_BODY', attempts: 1 },
      { error_code: 'INVALID_BODY', attempts: 1 },
    ]);
  });
});
