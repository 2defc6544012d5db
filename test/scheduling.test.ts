import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { scheduleCampaign, startDueCampaigns } from '../src/campaigns/campaign-lifecycle.js';
import { createCampaign, startCampaign } from '../src/campaigns/campaign-service.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
import { planCampaign } from '../src/campaigns/planner.js';
import { jobs } from '../src/queues/jobs.js';
import { RecordingProvider } from './helpers/recording-provider.js';
import { SANDBOX_ACCOUNT, createTestEnv, waitFor, type TestEnv } from './helpers/harness.js';

const SYDNEY = 'Australia/Sydney';
const MINUTE = 60_000;

interface Row {
  phone: string;
  status: string;
  due_at: Date | null;
  error_code: string | null;
  error_message: string | null;
  attempts: number;
}

async function rowsOf(env: TestEnv, campaignId: string): Promise<Map<string, Row>> {
  const rows = await env.query<Row & { id: string }>(
    'SELECT id, phone, status, due_at, error_code, error_message, attempts FROM message WHERE campaign_id = $1',
    [campaignId],
  );
  return new Map(rows.map((r) => [r.phone, r]));
}

async function queuedJobs(env: TestEnv) {
  return env.context.queues
    .send(SANDBOX_ACCOUNT)
    .getJobCounts('wait', 'delayed', 'prioritized', 'active');
}

describe('scheduling decisions, on a clock the test sets (no workers)', () => {
  // Sun 2026-12-06 10:00 in Sydney (AEDT, +11): a window of Mon–Sat is closed.
  const clock = new ManualClock(new Date('2026-12-05T23:00:00Z'));
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({ clock });
  });
  afterAll(() => env.close());

  const importCsv = (campaignId: string, csv: string) =>
    importRecipients(env.context, campaignId, Readable.from([csv]));

  it('holds messages outside the window, in each recipient time zone, and expires missed ones', async () => {
    const campaign = await createCampaign(env.context, {
      name: 'reminders',
      account: SANDBOX_ACCOUNT,
      template: 'Hi {{name}}, see you soon',
      sendWindow: {
        days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
        start: '09:00',
        end: '20:00',
      },
    });
    const report = await importCsv(
      campaign.id,
      [
        'phone,name,send_at,timezone',
        '0412000001,Ann,,', // as soon as the window opens (Sydney)
        '0412000002,Bob,,Australia/Perth', // as soon as it opens in Perth
        '0412000003,Cat,2026-12-07 09:30,', // Monday 09:30 Sydney
        '0412000004,Dan,2026-12-07 12:00,', // Monday 12:00 Sydney
        '0412000005,Eve,2027-03-06 10:00,', // 90 days ahead
      ].join('\n'),
    );
    expect(report.accepted).toBe(5);
    await startCampaign(env.context, campaign.id);

    // Sunday: nothing may go. Messages without a time wait for Monday 09:00 in their own zone.
    await planCampaign(env.context, campaign.id);
    let rows = await rowsOf(env, campaign.id);
    expect(rows.get('+61412000001')).toMatchObject({ status: 'PENDING' });
    expect(rows.get('+61412000001')!.due_at!.toISOString()).toBe('2026-12-06T22:00:00.000Z');
    expect(rows.get('+61412000002')!.due_at!.toISOString()).toBe('2026-12-07T01:00:00.000Z');
    expect(Object.values(await queuedJobs(env)).reduce((a, b) => a + b, 0)).toBe(0);

    // Monday 08:58: Ann is due within the horizon: a job delayed to exactly 09:00.
    clock.set(new Date('2026-12-06T21:58:00Z'));
    await planCampaign(env.context, campaign.id);
    rows = await rowsOf(env, campaign.id);
    expect(rows.get('+61412000001')!.status).toBe('QUEUED');
    const [job] = await env.context.queues.send(SANDBOX_ACCOUNT).getDelayed();
    expect(job!.opts.delay).toBe(2 * MINUTE);
    expect(rows.get('+61412000003')!.status).toBe('PENDING');

    // Workers were down until Monday 11:00: Cat (09:30) is 90 min late, over the default hour.
    clock.set(new Date('2026-12-07T00:00:00Z'));
    const planned = await planCampaign(env.context, campaign.id);
    expect(planned.expired).toBe(1);
    rows = await rowsOf(env, campaign.id);
    expect(rows.get('+61412000003')).toMatchObject({
      status: 'EXPIRED',
      error_code: 'MISSED_SEND_TIME',
    });
    expect(rows.get('+61412000003')!.error_message).toMatch(/^missed its send time/);
    // Dan (12:00) and Bob (12:00 Sydney = 09:00 Perth) are an hour off: still with us.
    expect(rows.get('+61412000004')!.status).toBe('PENDING');
    expect(rows.get('+61412000002')!.status).toBe('PENDING');
    // The 90-day reminder stays in Postgres: Redis holds only what is due within the horizon.
    expect(rows.get('+61412000005')!.status).toBe('PENDING');
    expect(await env.context.queues.send(SANDBOX_ACCOUNT).getDelayedCount()).toBe(1);
  });

  it('expires the messages of a scheduled campaign whose start was missed by more than the lateness', async () => {
    clock.set(new Date('2026-12-05T23:00:00Z'));
    const campaign = await createCampaign(env.context, {
      name: 'friday promo',
      account: SANDBOX_ACCOUNT,
      template: 'Sale {{name}}',
      maxLatenessMs: 30 * MINUTE,
    });
    await importCsv(
      campaign.id,
      ['phone,name,send_at', '0412000011,Ann,', '0412000012,Bob,2026-12-09 10:00'].join('\n'),
    );
    await scheduleCampaign(env.context, campaign.id, '2026-12-06 11:00'); // 00:00Z
    clock.set(new Date('2026-12-06T00:31:00Z')); // the sweeper comes back 31 min late
    expect(await startDueCampaigns(env.context)).toBe(1);
    const rows = await rowsOf(env, campaign.id);
    expect(rows.get('+61412000011')).toMatchObject({
      status: 'EXPIRED',
      error_code: 'MISSED_SEND_TIME',
    });
    // A reminder with its own later time is not the start's business.
    expect(rows.get('+61412000012')!.status).toBe('PENDING');
  });

  it('refuses bad timing input with stable codes, and nothing is created', async () => {
    const post = (body: object) =>
      env.app.inject({
        method: 'POST',
        url: '/v1/campaigns',
        headers: { authorization: `Bearer ${env.config.apiKeys[0]}` },
        payload: { name: 'x', account: SANDBOX_ACCOUNT, template: 'Hi', ...body },
      });
    const before = await env.query('SELECT id FROM campaign');
    for (const [sendWindow, fragment] of [
      [{ days: ['mon'], start: '17:00', end: '09:00' }, 'never opens'],
      [{ days: [], start: '09:00', end: '17:00' }, 'at least one day'],
      [{ days: ['funday'], start: '09:00', end: '17:00' }, 'sendWindow.days'],
      [{ days: ['mon'], start: '9am', end: '17:00' }, 'HH:MM'],
    ] as const) {
      const response = await post({ sendWindow });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('SEND_WINDOW_INVALID');
      expect(response.json().error.message).toContain(fragment);
    }
    const tooStrict = await post({ maxLatenessMs: 1000 });
    expect(tooStrict.statusCode).toBe(400);
    expect(tooStrict.json().error.code).toBe('VALIDATION_FAILED');
    expect(await env.query('SELECT id FROM campaign')).toHaveLength(before.length);

    const created = await post({
      sendWindow: { days: ['mon', 'fri'], start: '08:00', end: '18:30' },
      maxLatenessMs: 15 * MINUTE,
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({
      sendWindow: { days: ['mon', 'fri'], start: '08:00', end: '18:30' },
      maxLatenessMs: 15 * MINUTE,
    });
    const id = created.json().id as string;
    const cleared = await env.app.inject({
      method: 'PATCH',
      url: `/v1/campaigns/${id}`,
      headers: { authorization: `Bearer ${env.config.apiKeys[0]}` },
      payload: { sendWindow: null },
    });
    expect(cleared.statusCode).toBe(200);
    expect(cleared.json()).toMatchObject({ sendWindow: null, maxLatenessMs: 15 * MINUTE });
  });
});

describe('sending at the right time, with workers running', () => {
  let env: TestEnv;
  let provider: RecordingProvider;
  beforeAll(async () => {
    const key = randomBytes(12).toString('hex');
    provider = new RecordingProvider(key);
    await provider.start();
    env = await createTestEnv({ account: { baseUrl: provider.url, credentials: { apiKey: key } } });
    await env.startWorkerSet();
    await env.startWorkerSet(); // two worker processes' worth: the rules hold whoever sends
  });
  afterAll(async () => {
    await env.close();
    await provider.stop();
  });

  it('sends every reminder at or after its own time, never before, each once', async () => {
    const campaign = await createCampaign(env.context, {
      name: 'precise',
      account: SANDBOX_ACCOUNT,
      template: 'Reminder for {{name}}',
      timezone: 'UTC',
    });
    const start = Date.now() + 2500;
    const lines = ['phone,name,send_at'];
    for (let i = 0; i < 60; i++) {
      const due = new Date(start + i * 97); // spread over ~6 s, on odd milliseconds
      lines.push(`04120001${String(i).padStart(2, '0')},P${i},${due.toISOString()}`);
    }
    await importRecipients(env.context, campaign.id, Readable.from([lines.join('\n')]));
    await startCampaign(env.context, campaign.id);
    await waitFor(async () => {
      const rows = await env.query('SELECT 1 FROM message WHERE campaign_id = $1 AND status = $2', [
        campaign.id,
        'SENT',
      ]);
      return rows.length === 60 ? true : undefined;
    }, 'every reminder sent');
    const rows = await env.query<{ id: string; due_at: Date }>(
      'SELECT id, due_at FROM message WHERE campaign_id = $1',
      [campaign.id],
    );
    for (const row of rows) {
      expect(provider.received.get(row.id)).toBe(1);
      expect(provider.firstArrivedAt.get(row.id)!).toBeGreaterThanOrEqual(row.due_at.getTime());
    }
  });

  it('the worker has the last word: an early or out-of-window job does not send', async () => {
    // A window that is closed all of today in Sydney: every other day of the week.
    const days = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
    const today = new Intl.DateTimeFormat('en-AU', { timeZone: SYDNEY, weekday: 'short' })
      .format(new Date())
      .toLowerCase()
      .slice(0, 3);
    const closed = await createCampaign(env.context, {
      name: 'closed today',
      account: SANDBOX_ACCOUNT,
      template: 'Hi {{name}}',
      sendWindow: { days: days.filter((d) => d !== today), start: '00:00', end: '23:59' },
    });
    await importRecipients(
      env.context,
      closed.id,
      Readable.from(['phone,name\n0412000201,Ann\n0412000202,Bob\n']),
    );
    await startCampaign(env.context, closed.id);
    const [ann] = await env.query<{ id: string }>(
      `SELECT id FROM message WHERE campaign_id = $1 AND phone = '+61412000201'`,
      [closed.id],
    );
    // A job that should not exist (a stale re-add, an operator's retry): the claim checks anyway.
    await env.context.queues
      .send(SANDBOX_ACCOUNT)
      .add(
        jobs.send.name,
        { messageId: ann!.id, campaignId: closed.id },
        { ...jobs.send.options, jobId: `${ann!.id}-stray` },
      );
    const tomorrow = await waitFor(async () => {
      const [row] = await env.query<Row>(
        'SELECT status, due_at, attempts FROM message WHERE id = $1',
        [ann!.id],
      );
      return row!.status === 'PENDING' && row!.due_at ? row : undefined;
    }, 'the stray job to put Ann back');
    expect(tomorrow.attempts).toBe(0);
    expect(tomorrow.due_at!.getTime()).toBeGreaterThan(Date.now());
    // Tomorrow's opening: 00:00 in Sydney.
    const sydneyTime = new Intl.DateTimeFormat('en-AU', {
      timeZone: SYDNEY,
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    expect(sydneyTime.format(tomorrow.due_at!)).toBe('00:00');
    expect(provider.received.has(ann!.id)).toBe(false);

    // An early job: due in 2 s, but a job with no delay. It waits in BullMQ, then goes on time.
    const soon = await createCampaign(env.context, {
      name: 'early job',
      account: SANDBOX_ACCOUNT,
      template: 'Hi {{name}}',
      timezone: 'UTC',
    });
    const due = new Date(Date.now() + 2000);
    await importRecipients(
      env.context,
      soon.id,
      Readable.from([`phone,name,send_at\n0412000301,Cy,${due.toISOString()}\n`]),
    );
    await startCampaign(env.context, soon.id);
    const [cy] = await env.query<{ id: string }>('SELECT id FROM message WHERE campaign_id = $1', [
      soon.id,
    ]);
    await env.context.queues
      .send(SANDBOX_ACCOUNT)
      .add(
        jobs.send.name,
        { messageId: cy!.id, campaignId: soon.id },
        { ...jobs.send.options, jobId: `${cy!.id}-early` },
      );
    await waitFor(
      async () => (provider.received.has(cy!.id) ? true : undefined),
      'the early job to send on time',
    );
    expect(provider.firstArrivedAt.get(cy!.id)!).toBeGreaterThanOrEqual(due.getTime());
    expect(provider.received.get(cy!.id)).toBe(1);
  });
});
