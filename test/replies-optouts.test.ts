import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCampaign, startCampaign } from '../src/campaigns/campaign-service.js';
import { getCampaignStats } from '../src/campaigns/campaign-stats.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
import type { Account } from '../src/config/accounts.js';
import { foldReports } from '../src/events/fold-reports.js';
import { DEFAULT_OPT_OUT_KEYWORDS, isOptOutReply } from '../src/events/opt-outs.js';
import { webhookUrl } from '../src/providers/webhook-url.js';
import { claimMessage, markSent } from '../src/sending/message-status.js';
import {
  SANDBOX_ACCOUNT,
  countersAndTruth,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from './helpers/harness.js';

const post = (url: string, body: unknown) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

async function suppressionOf(env: TestEnv, phone: string): Promise<string | undefined> {
  const rows = await env.query<{ reason: string }>(
    'SELECT reason FROM suppression WHERE phone = $1',
    [phone],
  );
  return rows[0]?.reason;
}

/** A RUNNING campaign of `count` recipients on the env's account, and its messages by phone. */
async function runningCampaign(env: TestEnv, account: string, count: number, offset: number) {
  const campaign = await createCampaign(env.context, { name: 'optouts', account, template: 'Hi' });
  await importRecipients(env.context, campaign.id, Readable.from([recipientsCsv(count, offset)]));
  await env.query(`UPDATE campaign SET status = 'RUNNING' WHERE id = $1`, [campaign.id]);
  const messages = await env.query<{ id: string; phone: string }>(
    'SELECT id, phone FROM message WHERE campaign_id = $1 ORDER BY phone',
    [campaign.id],
  );
  return { campaignId: campaign.id, messages };
}

/** Puts a message where a worker leaves it after the provider accepted it. */
async function markHandedOver(env: TestEnv, messageId: string, providerId: string) {
  const now = env.context.clock.now();
  await claimMessage(env.context.db.pool, messageId, now);
  await markSent(env.context.db.pool, messageId, { providerMessageId: providerId }, now);
}

describe('opt-out keywords', () => {
  const keywords = new Set<string>(DEFAULT_OPT_OUT_KEYWORDS);
  it.each([
    'STOP',
    'stop',
    ' Stop ',
    'STOP.',
    'Stop!',
    'STOP ALL',
    'stopall',
    'Stop please',
    'UNSUBSCRIBE',
    'unsubscribe me',
    'OPTOUT',
    'opt out',
    'Opt-Out',
    'S T O P',
    '\tstop\n',
  ])('%j opts out', (body) => expect(isOptOutReply(body, keywords)).toBe(true));

  it.each(['', 'Stopping by later', "don't stop", 'Thanks!', 'STOPS', 'optional', 'Yes'])(
    '%j does not',
    (body) => expect(isOptOutReply(body, keywords)).toBe(false),
  );
});

describe('replies and opt-outs through the sandbox webhook', () => {
  let env: TestEnv;
  let url: string;
  const reply = (from: string, body: string, reference?: string) => ({
    id: `mo-${Math.random().toString(36).slice(2)}`,
    from,
    to: 'Herald',
    body,
    reference,
    timestamp: new Date().toISOString(),
  });

  beforeAll(async () => {
    // CANCEL added to show the list is configurable.
    env = await createTestEnv({
      env: { HERALD_OPT_OUT_KEYWORDS: 'stop, stop all ,UNSUBSCRIBE,Opt-Out,cancel' },
    });
    url = webhookUrl(env.config.publicUrl, env.config.webhookSecret!, SANDBOX_ACCOUNT);
  });
  afterAll(() => env.close());

  it('stores a reply linked to its message and campaign, and suppresses the sender of a STOP', async () => {
    const { campaignId, messages } = await runningCampaign(env, SANDBOX_ACCOUNT, 3, 100);
    const [first, second, third] = messages;
    expect((await post(url, reply(first!.phone, ' Stop ', first!.id))).status).toBe(204);
    expect((await post(url, reply(second!.phone, 'Stopping by later', second!.id))).status).toBe(
      204,
    );
    expect((await post(url, reply(third!.phone, 'Cancel'))).status).toBe(204);

    const stored = await env.query<{ from_phone: string; message_id: string; campaign_id: string }>(
      'SELECT from_phone, message_id, campaign_id FROM inbound_message WHERE from_phone = ANY($1) ORDER BY from_phone',
      [messages.map((m) => m.phone)],
    );
    expect(stored).toEqual([
      { from_phone: first!.phone, message_id: first!.id, campaign_id: campaignId },
      { from_phone: second!.phone, message_id: second!.id, campaign_id: campaignId },
      { from_phone: third!.phone, message_id: null, campaign_id: null },
    ]);
    expect(await suppressionOf(env, first!.phone)).toBe('STOP reply');
    expect(await suppressionOf(env, second!.phone)).toBeUndefined();
    expect(await suppressionOf(env, third!.phone)).toBe('STOP reply');
  });

  it('keeps a STOP delivered twice once, and reads a national-format sender in AU', async () => {
    const body = reply('0412000777', 'STOP');
    for (let i = 0; i < 2; i++) expect((await post(url, body)).status).toBe(204);
    const rows = await env.query<{ n: string }>(
      `SELECT count(*) AS n FROM inbound_message WHERE dedupe_key = $1`,
      [body.id],
    );
    expect(Number(rows[0]!.n)).toBe(1);
    expect(await suppressionOf(env, '+61412000777')).toBe('STOP reply');
  });

  it('answers an unreadable reply with 400 and suppresses nothing', async () => {
    const response = await post(url, { from: '+61412000888', body: 'STOP' }); // no id, no timestamp
    expect(response.status).toBe(400);
    expect(await suppressionOf(env, '+61412000888')).toBeUndefined();
  });

  it('makes a later send to a number that replied STOP SUPPRESSED, and never hands it over', async () => {
    // Imported before the STOP arrives, so only the send-time check can catch it.
    const campaign = await createCampaign(env.context, {
      name: 'after-stop',
      account: SANDBOX_ACCOUNT,
      template: 'Hello {{first_name}}',
    });
    await importRecipients(env.context, campaign.id, Readable.from([recipientsCsv(4, 200)]));
    const messages = await env.query<{ id: string; phone: string }>(
      'SELECT id, phone FROM message WHERE campaign_id = $1 ORDER BY phone',
      [campaign.id],
    );
    const stopped = messages[1]!;
    expect((await post(url, reply(stopped.phone, 'STOP ALL'))).status).toBe(204);

    await env.startWorkerSet();
    await startCampaign(env.context, campaign.id);
    const stats = await waitFor(async () => {
      const s = await getCampaignStats(env.context, campaign.id);
      return s.campaign.status === 'COMPLETED' && s.awaitingReport === 0 ? s : undefined;
    }, 'the campaign to complete');
    expect(stats.counts.SUPPRESSED).toBe(1);
    const [row] = await env.query<{ status: string }>('SELECT status FROM message WHERE id = $1', [
      stopped.id,
    ]);
    expect(row!.status).toBe('SUPPRESSED');
    expect(env.sandbox.receivedByReference.has(stopped.id)).toBe(false);
    for (const other of messages.filter((m) => m !== stopped))
      expect(env.sandbox.receivedByReference.get(other.id)).toBe(1);
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
  });
});

/**
 * Each provider with an adapter: its own STOP reply and its opt-out delivery result, posted to the
 * real webhook route in the provider's wire format. Nothing is sent, so the base URLs go nowhere.
 */
interface ProviderCase {
  name: string;
  account: Partial<Account>;
  stopReply(from: string): unknown;
  /** A report for a message we sent that says the recipient has opted out; null: none exists. */
  optOutReport: ((messageId: string, providerId: string, to: string) => unknown) | null;
  optOutReason?: string;
}

const NOWHERE = 'http://127.0.0.1:9';
const time = () => new Date().toISOString();

const cases: ProviderCase[] = [
  {
    name: 'bandwidth',
    account: {
      name: 'bw',
      provider: 'bandwidth',
      baseUrl: `${NOWHERE}/api/v2`,
      credentials: { username: 'user', password: 'secret' },
      sender: '+15550001111',
      options: { accountId: '9900000', applicationId: 'app-1' },
    },
    stopReply: (from) => [
      {
        time: time(),
        type: 'message-received',
        to: '+15550001111',
        description: 'Incoming message received',
        message: {
          id: `bw-in-${from}`,
          owner: '+15550001111',
          applicationId: 'app-1',
          time: time(),
          segmentCount: 1,
          direction: 'in',
          to: ['+15550001111'],
          from,
          text: 'Stop',
        },
      },
    ],
    optOutReport: (messageId, providerId, to) => [
      {
        time: time(),
        type: 'message-failed',
        to,
        description: 'The destination has opted out',
        errorCode: 4775,
        message: {
          id: providerId,
          owner: '+15550001111',
          applicationId: 'app-1',
          time: time(),
          segmentCount: 1,
          direction: 'out',
          to: [to],
          from: '+15550001111',
          text: '',
          tag: messageId,
        },
      },
    ],
    optOutReason: 'provider opt-out (4775)',
  },
  {
    name: 'catapult',
    account: {
      name: 'cat',
      provider: 'catapult',
      baseUrl: NOWHERE,
      credentials: { apiToken: 't-token', apiSecret: 'secret' },
      sender: '+15550002222',
      options: { userId: 'u-user' },
    },
    stopReply: (from) => ({
      eventType: 'sms',
      direction: 'in',
      messageId: `m-in-${from}`,
      messageUri: 'https://api.catapult.inetwork.com/v1/users/u-user/messages/m-in',
      from,
      to: '+15550002222',
      text: 'UNSUBSCRIBE',
      time: time(),
      state: 'received',
    }),
    optOutReport: (messageId, providerId, to) => ({
      eventType: 'sms',
      direction: 'out',
      messageId: providerId,
      messageUri: `https://api.catapult.inetwork.com/v1/users/u-user/messages/${providerId}`,
      from: '+15550002222',
      to,
      text: 'Hi',
      time: time(),
      state: 'sent',
      deliveryState: 'not-delivered',
      deliveryCode: 775,
      deliveryDescription: 'Destination rejected: recipient opted out',
      tag: messageId,
    }),
    optOutReason: 'provider opt-out (775)',
  },
  {
    name: 'messagemedia',
    account: {
      name: 'mm',
      provider: 'messagemedia',
      baseUrl: NOWHERE,
      credentials: { apiKey: 'key', apiSecret: 'secret' },
      sender: '+61491570157',
      options: { rateLimitBackoffMs: 5000 },
    },
    stopReply: (from) => ({
      reply_id: `mm-in-${from}`,
      message_id: 'mm-original',
      content: 'stop',
      source_number: from,
      destination_number: '+61491570157',
      date_received: time(),
    }),
    optOutReport: (messageId, providerId) => ({
      delivery_report_id: `dr-${providerId}`,
      message_id: providerId,
      status: 'rejected',
      error_code: 'OPT_OUT',
      submitted_date: time(),
      date_received: time(),
      metadata: { herald_message_id: messageId },
    }),
    optOutReason: 'provider opt-out (OPT_OUT)',
  },
  {
    name: 'optus',
    account: {
      name: 'opt',
      provider: 'optus',
      baseUrl: NOWHERE,
      credentials: { applicationName: 'app', password: 'secret' },
      sender: '+61400000001',
      options: { rateLimitBackoffMs: 5000 },
    },
    // Optus documents `source` as "mobile number", here without the +.
    stopReply: (from) => ({
      id: `opt-in-${from}`,
      source: from.slice(1),
      destination: '+61400000001',
      content: 'Stop.',
      operator: 'Telstra',
    }),
    optOutReport: null, // Optus reports no opt-out result
  },
  {
    name: 'telstra v3',
    account: {
      name: 'tel',
      provider: 'telstra',
      baseUrl: `${NOWHERE}/messaging/v3`,
      credentials: { clientId: 'id', clientSecret: 'secret' },
      sender: '0400000000',
      options: { version: 'v3', multi: true },
    },
    stopReply: (from) => ({
      to: '0400000000',
      from,
      timestamp: time(),
      messageId: `tel-in-${from}`,
      messageContent: 'OPT OUT',
      multimedia: [],
    }),
    optOutReport: null, // Telstra refuses the send (RECIPIENT_OPTOUT) instead of reporting it
  },
];

describe.each(cases)('$name: STOP replies and opt-out reports through the webhook', (c) => {
  let env: TestEnv;
  let url: string;
  beforeAll(async () => {
    env = await createTestEnv({ account: c.account });
    url = webhookUrl(env.config.publicUrl, env.config.webhookSecret!, c.account.name!);
  });
  afterAll(() => env.close());

  it('suppresses the sender of a STOP reply', async () => {
    const phone = '+61412000901';
    const response = await post(url, c.stopReply(phone));
    expect(response.status).toBe(204);
    expect(await suppressionOf(env, phone)).toBe('STOP reply');
    const rows = await env.query('SELECT 1 FROM inbound_message WHERE from_phone = $1', [phone]);
    expect(rows).toHaveLength(1);
  });

  it.runIf(c.optOutReport !== null)(
    'suppresses the number when an opt-out report is folded',
    async () => {
      const { campaignId, messages } = await runningCampaign(env, c.account.name!, 2, 300);
      const [target, other] = messages;
      await markHandedOver(env, target!.id, 'prov-optout-1');
      await markHandedOver(env, other!.id, 'prov-other-1');
      expect(
        (await post(url, c.optOutReport!(target!.id, 'prov-optout-1', target!.phone))).status,
      ).toBe(204);
      // Stored, not yet folded: the number is suppressed by the folder, not by the webhook.
      expect(await suppressionOf(env, target!.phone)).toBeUndefined();
      const folded = await foldReports(env.context);
      expect(folded).toMatchObject({ applied: 1, optedOut: 1 });
      expect(await suppressionOf(env, target!.phone)).toBe(c.optOutReason);
      expect(await suppressionOf(env, other!.phone)).toBeUndefined();
      const [row] = await env.query<{ status: string }>(
        'SELECT status FROM message WHERE id = $1',
        [target!.id],
      );
      expect(row!.status).toBe('REJECTED');
      const { counters, truth } = await countersAndTruth(env, campaignId);
      expect(counters).toEqual(truth);
    },
  );
});
