import { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCampaign } from '../src/campaigns/campaign-service.js';
import { getCampaignStats } from '../src/campaigns/campaign-stats.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
import { startEventsWorker, type EventsWorker } from '../src/events/events-worker.js';
import { webhookUrl } from '../src/providers/webhook-url.js';
import { closeContext, createContext, type AppContext } from '../src/runtime/context.js';
import { claimMessage, markSent } from '../src/sending/message-status.js';
import {
  SANDBOX_ACCOUNT,
  countersAndTruth,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from './helpers/harness.js';

const MESSAGES = 1200;
/** Of which this many have their reports arrive before their send result is stored. */
const EARLY = 120;
const FOLDERS = 3;
const FINALS = ['delivered', 'failed', 'expired', 'undeliverable'] as const;
const FINAL_STATUS = {
  delivered: 'DELIVERED',
  failed: 'FAILED',
  expired: 'EXPIRED',
  undeliverable: 'UNDELIVERABLE',
} as const;

describe('a storm of duplicated and reordered reports, folded by several folders at once', () => {
  let env: TestEnv;
  const folderContexts: AppContext[] = [];
  const folders: EventsWorker[] = [];

  beforeAll(async () => {
    env = await createTestEnv({ env: { HERALD_EVENTS_BATCH_SIZE: '250' } });
  });
  afterAll(async () => {
    await Promise.all(folders.map((f) => f.close()));
    await Promise.all(folderContexts.map((c) => closeContext(c)));
    await env.close();
  });

  it('leaves every message at its final report and the counters equal to GROUP BY status', async () => {
    const campaign = await createCampaign(env.context, {
      name: 'storm',
      account: SANDBOX_ACCOUNT,
      template: 'Hi',
    });
    await importRecipients(env.context, campaign.id, Readable.from([recipientsCsv(MESSAGES)]));
    await env.query(`UPDATE campaign SET status = 'RUNNING' WHERE id = $1`, [campaign.id]);
    const messages = await env.query<{ id: string }>(
      'SELECT id FROM message WHERE campaign_id = $1 ORDER BY id',
      [campaign.id],
    );
    const pool = env.context.db.pool;
    const now = new Date();
    const providerId = (i: number) => `storm-${i}`;
    // Everything is handed over (SENDING); all but the first EARLY have their send result stored.
    const setup = pLimit(8);
    await Promise.all(
      messages.map((m, i) =>
        setup(async () => {
          await claimMessage(pool, m.id, now);
          if (i >= EARLY) await markSent(pool, m.id, { providerMessageId: providerId(i) }, now);
        }),
      ),
    );

    // Per message: one final report, sent 1–3 times, plus "sent" reports, all shuffled. The early
    // ones carry only the provider's id (as Telstra v2 does), so they can match nothing yet.
    const expected = new Map<string, string>();
    const earlyBodies: object[] = [];
    const bodies: object[] = [];
    messages.forEach((m, i) => {
      const final = FINALS[i % FINALS.length]!;
      expected.set(m.id, FINAL_STATUS[final]);
      const reference = i < EARLY ? undefined : m.id;
      const report = (status: string, seconds: number) => ({
        id: providerId(i),
        reference,
        status,
        error_code: status === 'delivered' || status === 'sent' ? null : `SBX-${status}`,
        timestamp: new Date(now.getTime() + seconds * 1000).toISOString(),
      });
      const into = i < EARLY ? earlyBodies : bodies;
      for (let copy = 0; copy < 1 + (i % 3); copy++) into.push(report(final, 10));
      into.push(report('sent', 1));
      if (i % 4 === 0) into.push(report('sent', 1)); // a duplicate of the "sent" too
    });
    for (const list of [earlyBodies, bodies]) {
      for (let i = list.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [list[i], list[j]] = [list[j]!, list[i]!];
      }
    }

    // Several folders, each with its own connections, as separate worker processes would have.
    for (let f = 0; f < FOLDERS; f++) {
      const context = createContext(env.config, { logger: env.context.logger, dbPoolSize: 5 });
      folderContexts.push(context);
      folders.push(startEventsWorker(context));
    }

    const url = webhookUrl(env.config.publicUrl, env.config.webhookSecret!, SANDBOX_ACCOUNT);
    const limit = pLimit(32);
    const postAll = (list: object[]) =>
      Promise.all(
        list.map((body) =>
          limit(async () => {
            const response = await fetch(url, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify(body),
            });
            return response.status;
          }),
        ),
      );
    // The early messages' reports come first, then their send results are stored, then the
    // rest of the storm (kept short so that the waiting reports' retry backoff stays short).
    const statuses = await postAll(earlyBodies);
    for (let i = 0; i < EARLY; i++)
      await markSent(pool, messages[i]!.id, { providerMessageId: providerId(i) }, now);
    statuses.push(...(await postAll(bodies)));
    expect(statuses.length).toBeGreaterThan(3500);
    expect(statuses.filter((s) => s !== 204)).toEqual([]);

    await waitFor(
      async () => {
        const [row] = await env.query<{ n: string }>(
          'SELECT count(*) AS n FROM delivery_event WHERE processed_at IS NULL',
        );
        return Number(row!.n) === 0 ? true : undefined;
      },
      'every report to be folded',
      45_000,
    );

    const rows = await env.query<{ id: string; status: string }>(
      'SELECT id, status FROM message WHERE campaign_id = $1',
      [campaign.id],
    );
    const wrong = rows.filter((r) => expected.get(r.id) !== r.status);
    expect(wrong).toEqual([]);
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
    expect(truth).toEqual({ DELIVERED: 300, FAILED: 300, EXPIRED: 300, UNDELIVERABLE: 300 });
    // Each distinct report was kept once; none matched nothing.
    const outcomes = await env.query<{ outcome: string; n: string }>(
      'SELECT outcome, count(*) AS n FROM delivery_event GROUP BY outcome ORDER BY outcome',
    );
    const byOutcome = Object.fromEntries(outcomes.map((o) => [o.outcome, Number(o.n)]));
    expect(byOutcome.APPLIED).toBe(MESSAGES);
    expect(byOutcome.EXPIRED_UNMATCHED).toBeUndefined();
    const stats = await getCampaignStats(env.context, campaign.id);
    expect(stats).toMatchObject({ delivered: 300, failed: 900, awaitingReport: 0 });
  });
});
