import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { Readable } from 'node:stream';
import { request as httpRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCampaign, startCampaign } from '../../campaigns/campaign-service.js';
import { getCampaignStats } from '../../campaigns/campaign-stats.js';
import { importRecipients } from '../../campaigns/import-recipients.js';
import { webhookUrl } from '../webhook-url.js';
import { METADATA_KEY } from './messagemedia.provider.js';
import { startOpenApiFake, type OpenApiFake } from '../../../test/helpers/openapi-fake.js';
import {
  countersAndTruth,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from '../../../test/helpers/harness.js';

const ACCOUNT = 'messagemedia-test';
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

/**
 * What the fake MessageMedia does with each destination, by its last digit: refuse it (a 400
 * that fails its whole batch, all-or-nothing), or accept it and report a final status later.
 */
function outcome(
  destination: string,
): { refuse: true } | { refuse: false; status: string; expected: string } {
  switch (Number(destination.at(-1))) {
    case 7:
      return { refuse: true };
    case 3:
      return { refuse: false, status: 'failed', expected: 'FAILED' };
    case 5:
      return { refuse: false, status: 'undeliverable', expected: 'UNDELIVERABLE' };
    case 9:
      return { refuse: false, status: 'expired', expected: 'EXPIRED' };
    default:
      return { refuse: false, status: 'delivered', expected: 'DELIVERED' };
  }
}

/** Posts a delivery report signed as Enterprise Webhooks do (request line + Date + body, RSA). */
async function postSigned(callbackUrl: string, report: unknown, key = privateKey): Promise<number> {
  const url = new URL(callbackUrl);
  const body = JSON.stringify(report);
  const date = new Date().toUTCString();
  const signature = sign(
    'sha224',
    Buffer.from(`POST ${url.pathname}${url.search} HTTP/1.1${date}${body}`),
    key,
  );
  const response = await httpRequest(callbackUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      date,
      'x-messagemedia-signature': signature.toString('base64'),
      'x-messagemedia-digest-type': 'SHA224',
      'x-messagemedia-cipher-type': 'RSA',
      'x-messagemedia-key-id': randomUUID(),
    },
    body,
  });
  await response.body.dump();
  return response.statusCode;
}

describe('a MessageMedia campaign end to end', () => {
  let env: TestEnv;
  let fake: OpenApiFake;
  const acceptedByReference = new Map<string, number>();
  const callbacks: Array<Promise<number[]>> = [];
  const batchSizes: number[] = [];

  beforeAll(async () => {
    fake = await startOpenApiFake({
      spec: 'messagemedia-openapi.yaml',
      validateResponses: true,
      handle(request) {
        // Everything here is pushed; the check endpoints have nothing left to collect.
        if (request.method === 'GET' && request.path === '/v1/delivery_reports')
          return { status: 200, body: { delivery_reports: [] } };
        if (request.method === 'GET' && request.path === '/v1/replies')
          return { status: 200, body: { replies: [] } };
        const { messages } = request.body as {
          messages: Array<{
            destination_number: string;
            callback_url: string;
            metadata: Record<string, string>;
            content: string;
          }>;
        };
        batchSizes.push(messages.length);
        if (messages.some((m) => outcome(m.destination_number).refuse)) {
          return {
            status: 400,
            body: { message: 'Invalid request', details: ['destination_number is blocked'] },
          };
        }
        const answered = messages.map((m) => {
          const ours = m.metadata[METADATA_KEY]!;
          acceptedByReference.set(ours, (acceptedByReference.get(ours) ?? 0) + 1);
          const message_id = randomUUID();
          const decided = outcome(m.destination_number) as { status: string };
          const report = (status: string) => ({
            callback_url: m.callback_url,
            delivery_report_id: randomUUID(),
            source_number: m.destination_number,
            date_received: new Date().toISOString(),
            status,
            delay: 0,
            billing_units: 1,
            submitted_date: new Date().toISOString(),
            original_text: m.content,
            message_id,
            vendor_account_id: { vendor_id: 'MessageMedia', account_id: 'HeraldTest' },
            error_code: status === 'delivered' ? '220' : '330',
            metadata: m.metadata,
          });
          callbacks.push(
            new Promise<void>((resolve) => setTimeout(resolve, 20)).then(async () => [
              await postSigned(m.callback_url, report('enroute')),
              await postSigned(m.callback_url, report(decided.status)),
            ]),
          );
          return { ...m, message_id, status: 'queued' };
        });
        return { status: 202, body: { messages: answered } };
      },
    });
    env = await createTestEnv({
      account: {
        name: ACCOUNT,
        provider: 'messagemedia',
        baseUrl: fake.url,
        credentials: { apiKey: 'mm-key', apiSecret: 'mm-secret' },
        sender: '+61491570157',
        options: {
          signaturePublicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        },
        rate: 500,
      },
    });
  });
  afterAll(async () => {
    await Promise.allSettled(callbacks);
    await env?.close();
    await fake?.close();
  });

  it('sends every recipient once, in batches, and folds the signed reports into matching counters', async () => {
    const { context } = env;
    const campaign = await createCampaign(context, {
      name: 'mm-flow',
      account: ACCOUNT,
      template: 'Hi {{first_name}}',
    });
    const imported = await importRecipients(
      context,
      campaign.id,
      Readable.from([recipientsCsv(50)]),
    );
    expect(imported).toMatchObject({ accepted: 50 });
    await env.startWorkerSet();
    await startCampaign(context, campaign.id);

    await waitFor(async () => {
      const s = await getCampaignStats(context, campaign.id);
      return s.campaign.status === 'COMPLETED' && s.awaitingReport === 0 ? s : undefined;
    }, 'the MessageMedia campaign to complete with every report in');

    const messages = await env.query<{ id: string; phone: string; status: string }>(
      'SELECT id, phone, status FROM message WHERE campaign_id = $1',
      [campaign.id],
    );
    expect(messages).toHaveLength(50);
    for (const m of messages) {
      const decided = outcome(m.phone);
      expect(acceptedByReference.get(m.id)).toBe(decided.refuse ? undefined : 1);
      expect(m.status).toBe(decided.refuse ? 'REJECTED' : decided.expected);
    }
    expect(Math.max(...batchSizes)).toBeGreaterThan(1); // the batcher did coalesce sends
    expect((await Promise.all(callbacks)).flat().every((status) => status === 204)).toBe(true);
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
    expect(fake.violations).toEqual([]);
  });

  it('refuses a report signed with another key (401) and an unreadable one (400) through the route', async () => {
    const url = webhookUrl(env.config.publicUrl, env.config.webhookSecret!, ACCOUNT);
    const report = { message_id: randomUUID(), status: 'delivered', metadata: {} };
    const { privateKey: stranger } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expect(await postSigned(url, report, stranger)).toBe(401);
    expect(await postSigned(url, { hello: 'world' })).toBe(400);
    expect(await postSigned(url, report)).toBe(204);
  });
});

describe('MessageMedia callbacks that never arrive: collected from its check endpoints', () => {
  const ACCOUNT_PULL = 'messagemedia-pull';
  let env: TestEnv;
  let fake: OpenApiFake;
  /** Reports and replies MessageMedia keeps until they are confirmed (none is pushed). */
  const keptReports = new Map<string, Record<string, unknown>>();
  const keptReplies = new Map<string, Record<string, unknown>>();
  const confirmedBeforeStored: string[] = [];
  let stopSender = '';

  beforeAll(async () => {
    fake = await startOpenApiFake({
      spec: 'messagemedia-openapi.yaml',
      validateResponses: true,
      async handle(request) {
        if (request.method === 'GET' && request.path === '/v1/delivery_reports')
          return {
            status: 200,
            body: { delivery_reports: [...keptReports.values()].slice(0, 100) },
          };
        if (request.method === 'GET' && request.path === '/v1/replies')
          return { status: 200, body: { replies: [...keptReplies.values()].slice(0, 100) } };
        if (request.method === 'POST' && request.path.endsWith('/confirmed')) {
          const body = request.body as { delivery_report_ids?: string[]; reply_ids?: string[] };
          for (const id of body.delivery_report_ids ?? []) {
            if (!keptReports.has(id)) continue; // confirmed twice (passes may overlap): harmless
            const stored = await env.query(
              'SELECT 1 FROM delivery_event WHERE account_name = $1 AND provider_message_id = $2',
              [ACCOUNT_PULL, keptReports.get(id)?.message_id],
            );
            if (stored.length === 0) confirmedBeforeStored.push(id);
            keptReports.delete(id);
          }
          for (const id of body.reply_ids ?? []) keptReplies.delete(id);
          return { status: 202 };
        }
        const { messages } = request.body as {
          messages: Array<{ destination_number: string; metadata: Record<string, string> }>;
        };
        const answered = messages.map((m) => {
          const message_id = randomUUID();
          const id = randomUUID();
          keptReports.set(id, {
            delivery_report_id: id,
            message_id,
            status: 'delivered',
            error_code: '220',
            source_number: m.destination_number,
            submitted_date: new Date().toISOString(),
            date_received: new Date().toISOString(),
            metadata: m.metadata,
          });
          if (!stopSender) {
            stopSender = m.destination_number;
            const replyId = randomUUID();
            keptReplies.set(replyId, {
              reply_id: replyId,
              message_id,
              content: 'Stop',
              source_number: m.destination_number,
              destination_number: '+61491570157',
              date_received: new Date().toISOString(),
              metadata: m.metadata,
            });
          }
          return { ...m, message_id, status: 'queued' };
        });
        return { status: 202, body: { messages: answered } };
      },
    });
    env = await createTestEnv({
      env: { HERALD_POLL_INTERVAL_MS: '1000' },
      account: {
        name: ACCOUNT_PULL,
        provider: 'messagemedia',
        baseUrl: fake.url,
        credentials: { apiKey: 'mm-key', apiSecret: 'mm-secret' },
        sender: '+61491570157',
        options: {},
        rate: 500,
      },
    });
  });
  afterAll(async () => {
    await env?.close();
    await fake?.close();
  });

  it('collects every report and reply, stores them, then confirms them; the campaign completes', async () => {
    const campaign = await createCampaign(env.context, {
      name: 'mm-pull',
      account: ACCOUNT_PULL,
      template: 'Hi {{first_name}}',
    });
    await importRecipients(env.context, campaign.id, Readable.from([recipientsCsv(150)]));
    await env.startWorkerSet();
    await startCampaign(env.context, campaign.id);
    const stats = await waitFor(async () => {
      const s = await getCampaignStats(env.context, campaign.id);
      return s.campaign.status === 'COMPLETED' && s.awaitingReport === 0 ? s : undefined;
    }, 'every report to be collected from GET /v1/delivery_reports');
    expect(stats.delivered).toBe(150);
    // The last page's confirm may still be on its way once the fold has run.
    await waitFor(
      async () => (keptReports.size + keptReplies.size === 0 ? true : undefined),
      'every collected event to be confirmed',
    );
    expect(confirmedBeforeStored).toEqual([]);
    const [suppressed] = await env.query('SELECT reason FROM suppression WHERE phone = $1', [
      stopSender,
    ]);
    expect(suppressed).toBeDefined();
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
    expect(fake.violations).toEqual([]);
  });
});
