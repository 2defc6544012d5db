import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { createCampaign } from '../src/campaigns/campaign-service.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
import { foldReports } from '../src/events/fold-reports.js';
import { webhookUrl } from '../src/providers/webhook-url.js';
import { claimMessage, markSent } from '../src/sending/message-status.js';
import {
  SANDBOX_ACCOUNT,
  countersAndTruth,
  createTestEnv,
  recipientsCsv,
  type TestEnv,
} from './helpers/harness.js';

describe('delivery reports: webhooks and folding', () => {
  const clock = new ManualClock(new Date());
  let env: TestEnv;
  let url: string;
  let campaignId: string;
  let messages: Array<{ id: string; phone: string }>;

  const post = (body: unknown, target = url) =>
    fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const report = (id: string | undefined, providerId: string, status: string) => ({
    id: providerId,
    reference: id,
    status,
    error_code: status === 'delivered' || status === 'sent' ? null : 'SBX-X',
    timestamp: clock.now().toISOString(),
  });
  const statusOf = async (id: string) =>
    (await env.query<{ status: string }>('SELECT status FROM message WHERE id = $1', [id]))[0]!
      .status;
  const eventCount = async () =>
    Number((await env.query<{ n: string }>('SELECT count(*) AS n FROM delivery_event'))[0]!.n);

  beforeAll(async () => {
    env = await createTestEnv({ clock, env: { HERALD_UNMATCHED_REPORT_TTL_MS: '60000' } });
    url = webhookUrl(env.config.publicUrl, env.config.webhookSecret!, SANDBOX_ACCOUNT);
  });
  afterAll(() => env.close());

  beforeEach(async () => {
    clock.set(new Date());
    await env.query('DELETE FROM delivery_event');
    const campaign = await createCampaign(env.context, {
      name: 'reports',
      account: SANDBOX_ACCOUNT,
      template: 'Hi',
    });
    campaignId = campaign.id;
    await importRecipients(env.context, campaignId, Readable.from([recipientsCsv(3)]));
    await env.query(`UPDATE campaign SET status = 'RUNNING' WHERE id = $1`, [campaignId]);
    messages = await env.query(
      'SELECT id, phone FROM message WHERE campaign_id = $1 ORDER BY phone',
      [campaignId],
    );
  });

  /** Puts a message where a worker leaves it after the provider accepted it. */
  const sendOne = async (id: string, providerId: string) => {
    await claimMessage(env.context.db.pool, id, clock.now());
    await markSent(env.context.db.pool, id, { providerMessageId: providerId }, clock.now());
  };

  it('refuses a forged callback with 401 and stores nothing', async () => {
    const before = await eventCount();
    const forged = await post(
      report(messages[0]!.id, 'p-1', 'delivered'),
      url.replace(/[^/]+$/, 'not-the-token'),
    );
    expect(forged.status).toBe(401);
    expect(await forged.json()).toEqual({
      error: { code: 'WEBHOOK_UNAUTHORIZED', message: 'invalid webhook token' },
    });
    const otherAccount = await post(
      report(messages[0]!.id, 'p-1', 'delivered'),
      url.replace(`/${SANDBOX_ACCOUNT}/`, '/other/'),
    );
    expect(otherAccount.status).toBe(401);
    expect(await eventCount()).toBe(before);
  });

  it('answers an unreadable payload with 400 and stores nothing', async () => {
    const before = await eventCount();
    const response = await post({ hello: 'world' });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
      'WEBHOOK_PAYLOAD_INVALID',
    );
    const notJson = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{nope',
    });
    expect(notJson.status).toBe(400);
    expect(await eventCount()).toBe(before);
  });

  it('keeps a report delivered three times once, and applies it once', async () => {
    const message = messages[0]!;
    await sendOne(message.id, 'p-dup');
    const before = await eventCount();
    for (let i = 0; i < 3; i++)
      expect((await post(report(message.id, 'p-dup', 'delivered'))).status).toBe(204);
    expect(await eventCount()).toBe(before + 1);
    const folded = await foldReports(env.context);
    expect(folded).toMatchObject({ applied: 1, stale: 0 });
    expect(await statusOf(message.id)).toBe('DELIVERED');
    const { counters, truth } = await countersAndTruth(env, campaignId);
    expect(counters).toEqual(truth);
  });

  it('never moves a message back: a late "sent" after "delivered" changes nothing', async () => {
    const message = messages[1]!;
    await sendOne(message.id, 'p-order');
    await post(report(message.id, 'p-order', 'delivered'));
    await foldReports(env.context);
    await post(report(message.id, 'p-order', 'sent'));
    expect(await foldReports(env.context)).toMatchObject({ applied: 0, stale: 1 });
    expect(await statusOf(message.id)).toBe('DELIVERED');
    // In one batch, the furthest status wins whatever the arrival order.
    const other = messages[2]!;
    await sendOne(other.id, 'p-order-2');
    await post(report(other.id, 'p-order-2', 'failed'));
    await post(report(other.id, 'p-order-2', 'sent'));
    expect(await foldReports(env.context)).toMatchObject({ applied: 1, stale: 1 });
    expect(await statusOf(other.id)).toBe('FAILED');
    const { counters, truth } = await countersAndTruth(env, campaignId);
    expect(counters).toEqual(truth);
  });

  it('keeps a report that arrives before the send result, and matches it once the result is stored', async () => {
    const message = messages[0]!;
    await claimMessage(env.context.db.pool, message.id, clock.now()); // SENDING, provider id unknown yet
    // A provider that carries only its own id.
    expect((await post(report(undefined, 'p-early', 'delivered'))).status).toBe(204);
    expect(await foldReports(env.context)).toMatchObject({ applied: 0, waiting: 1 });
    expect(await statusOf(message.id)).toBe('SENDING');

    await markSent(env.context.db.pool, message.id, { providerMessageId: 'p-early' }, clock.now());
    expect(await foldReports(env.context)).toMatchObject({ read: 0 }); // not due for another look yet
    clock.advance(5_000);
    expect(await foldReports(env.context)).toMatchObject({ applied: 1 });
    expect(await statusOf(message.id)).toBe('DELIVERED');
  });

  it('does not apply a report to a message Herald has not sent', async () => {
    const message = messages[2]!; // still PENDING
    await post(report(message.id, 'p-never', 'delivered'));
    expect(await foldReports(env.context)).toMatchObject({ applied: 0, waiting: 1 });
    expect(await statusOf(message.id)).toBe('PENDING');
  });

  it('expires a report that matches nothing within the configured time, and counts it', async () => {
    await post(report(undefined, 'p-nobody', 'delivered'));
    expect(await foldReports(env.context)).toMatchObject({ waiting: 1 });
    clock.advance(61_000);
    const folded = await foldReports(env.context);
    expect(folded.expired).toBeGreaterThanOrEqual(1);
    const [row] = await env.query<{ outcome: string }>(
      `SELECT outcome FROM delivery_event WHERE provider_message_id = 'p-nobody'`,
    );
    expect(row!.outcome).toBe('EXPIRED_UNMATCHED');
  });
});
