import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import {
  cancelCampaign,
  pauseCampaign,
  resumeCampaign,
  scheduleCampaign,
  startDueCampaigns,
} from '../src/campaigns/campaign-lifecycle.js';
import { createCampaign, getCampaign, startCampaign } from '../src/campaigns/campaign-service.js';
import { getCampaignStats } from '../src/campaigns/campaign-stats.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
import { UserError } from '../src/errors.js';
import {
  SANDBOX_ACCOUNT,
  countersAndTruth,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from './helpers/harness.js';

describe('campaign life: schedule, pause, resume, cancel', () => {
  let env: TestEnv;
  let offset = 0;
  beforeAll(async () => {
    env = await createTestEnv({ account: { rate: 100 } });
    await env.startWorkerSet();
  });
  afterAll(() => env.close());

  const newCampaign = async (count: number) => {
    const campaign = await createCampaign(env.context, {
      name: 'life',
      account: SANDBOX_ACCOUNT,
      template: 'Hi {{first_name}}',
    });
    await importRecipients(env.context, campaign.id, Readable.from([recipientsCsv(count, offset)]));
    offset += count;
    return campaign.id;
  };
  const errorCode = async (promise: Promise<unknown>) => {
    try {
      await promise;
    } catch (error) {
      expect(error).toBeInstanceOf(UserError);
      return (error as UserError).code;
    }
    throw new Error('expected a refusal');
  };

  it('pauses within seconds, resumes where it stopped, and sends everyone exactly once', async () => {
    const id = await newCampaign(300);
    await startCampaign(env.context, id);
    await waitFor(
      async () => ((await getCampaignStats(env.context, id)).processed >= 60 ? true : undefined),
      'some sends',
    );
    await pauseCampaign(env.context, id);
    // In-flight sends finish; then nothing more goes out while paused.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const requestsAtPause = env.sandbox.acceptedRequests;
    const processedAtPause = (await getCampaignStats(env.context, id)).processed;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(env.sandbox.acceptedRequests).toBe(requestsAtPause);
    expect(processedAtPause).toBeLessThan(300);

    await resumeCampaign(env.context, id);
    const stats = await waitFor(async () => {
      const s = await getCampaignStats(env.context, id);
      return s.campaign.status === 'COMPLETED' ? s : undefined;
    }, 'the resumed campaign to complete');
    expect(stats.processed).toBe(300);
    const ids = await env.query<{ id: string }>('SELECT id FROM message WHERE campaign_id = $1', [
      id,
    ]);
    for (const { id: messageId } of ids)
      expect(env.sandbox.receivedByReference.get(messageId)).toBe(1);
    const { counters, truth } = await countersAndTruth(env, id);
    expect(counters).toEqual(truth);
  });

  it('cancels: nothing more is sent, and it reports what was already handed over', async () => {
    const id = await newCampaign(300);
    await startCampaign(env.context, id);
    await waitFor(
      async () => ((await getCampaignStats(env.context, id)).processed >= 30 ? true : undefined),
      'some sends',
    );
    const result = await cancelCampaign(env.context, id);
    expect(result.campaign.status).toBe('CANCELLED');
    expect(result.cancelled).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const rows = await env.query<{ status: string; n: string }>(
      'SELECT status, count(*) AS n FROM message WHERE campaign_id = $1 GROUP BY status',
      [id],
    );
    const byStatus = Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
    expect(byStatus.CANCELLED).toBe(result.cancelled);
    expect(byStatus.PENDING ?? 0).toBe(0);
    expect(byStatus.QUEUED ?? 0).toBe(0);
    const sent = await env.query<{ id: string }>(
      `SELECT id FROM message WHERE campaign_id = $1 AND status = 'CANCELLED'`,
      [id],
    );
    for (const { id: messageId } of sent)
      expect(env.sandbox.receivedByReference.has(messageId)).toBe(false);
    expect(await errorCode(resumeCampaign(env.context, id))).toBe('CAMPAIGN_STATE_CONFLICT');
  });

  it('starts a scheduled campaign by itself when its time comes (the sweeper)', async () => {
    const id = await newCampaign(3);
    const at = new Date(Date.now() + 1500).toISOString();
    await scheduleCampaign(env.context, id, at);
    expect((await getCampaign(env.context, id)).status).toBe('SCHEDULED');
    const done = await waitFor(async () => {
      const c = await getCampaign(env.context, id);
      return c.status === 'COMPLETED' ? c : undefined;
    }, 'the scheduled campaign to start and finish');
    expect(done.startedAt!.getTime()).toBeGreaterThanOrEqual(new Date(at).getTime());
  });

  it('schedules a start time, refuses bad and past times, and starts when the time comes', async () => {
    const id = await newCampaign(5);
    expect(await errorCode(scheduleCampaign(env.context, id, 'next friday'))).toBe(
      'SCHEDULE_INVALID',
    );
    expect(await errorCode(scheduleCampaign(env.context, id, '2020-01-01T10:00:00Z'))).toBe(
      'SCHEDULE_IN_PAST',
    );
    const scheduled = await scheduleCampaign(env.context, id, '2031-05-02 10:00'); // Sydney, AEST +10
    expect(scheduled.status).toBe('SCHEDULED');
    expect(scheduled.scheduledAt!.toISOString()).toBe('2031-05-02T00:00:00.000Z');
    const rescheduled = await scheduleCampaign(env.context, id, '2031-05-09T10:00:00+10:00');
    expect(rescheduled.scheduledAt!.toISOString()).toBe('2031-05-09T00:00:00.000Z');

    // Nothing is queued before its time; when the clock reaches it, the campaign starts.
    const clock = new ManualClock(new Date('2031-05-08T23:59:00Z'));
    const early = { ...env.context, clock };
    expect(await startDueCampaigns(early)).toBe(0);
    expect((await getCampaign(env.context, id)).status).toBe('SCHEDULED');
    clock.set(new Date('2031-05-09T00:00:00Z'));
    expect(await startDueCampaigns(early)).toBe(1);
    await waitFor(
      async () => ((await getCampaign(env.context, id)).status === 'COMPLETED' ? true : undefined),
      'the scheduled campaign to run',
    );
  });
});
