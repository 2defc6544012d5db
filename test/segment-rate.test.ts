import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { rm } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCampaign } from '../src/campaigns/campaign-service.js';
import { getCampaignStats } from '../src/campaigns/campaign-stats.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
import {
  RateGate,
  acquireTogether,
  rateOverridesKey,
  segmentGateKey,
} from '../src/sending/rate-gate.js';
import {
  SANDBOX_ACCOUNT,
  clearRedisPrefix,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from './helpers/harness.js';
import { start } from './helpers/campaigns.js';
import { TEST_REDIS_URL, uniqueName } from './helpers/databases.js';
import { RecordingProvider, busiestWindow } from './helpers/recording-provider.js';
import { runHerald, writeAccountsFile } from './helpers/worker-process.js';

/** Each grant's time repeated once per unit it took, so busiestWindow() sums units. */
const weighted = (grants: Array<{ at: number; units: number }>) =>
  grants.flatMap(({ at, units }) => Array.from({ length: units }, () => at));

/**
 * Arrivals in this process add the delay between a worker's grant and this process reading the
 * request (see test/rate-limits.test.ts): allow 1.5×, which still catches a limit applied per
 * process (2 worker sets: 2×) or a gate that counts messages only (the message rate here is 1000).
 */
const arrivalCeiling = (rate: number) => Math.floor(rate * 1.5);

describe('segments per second: the gate', () => {
  it('never grants more than the segment rate in any sliding second, with messages of mixed size', async () => {
    const prefix = uniqueName('herald-test');
    // Three connections stand for three worker processes, each with 5 requests waiting at once.
    const connections = [0, 1, 2].map(() => new Redis(TEST_REDIS_URL));
    try {
      const grants: Array<{ at: number; units: number }> = [];
      const messages: number[] = [];
      const until = Date.now() + 2500;
      await Promise.all(
        connections.flatMap((redis, c) => {
          const gate = new RateGate(redis, prefix, 'acct', 1000);
          const segmentGate = new RateGate(redis, prefix, segmentGateKey('acct'), 20);
          return Array.from({ length: 5 }, async (_, i) => {
            const segments = 1 + ((c + i) % 3);
            while (Date.now() < until) {
              // Grant times on Redis's clock, in ms: what the gate guarantees.
              const at =
                (await acquireTogether([
                  { gate, count: 1 },
                  { gate: segmentGate, count: segments },
                ])) / 1000;
              grants.push({ at, units: segments });
              messages.push(at);
            }
          });
        }),
      );
      expect(grants.length).toBeGreaterThan(20);
      expect(busiestWindow(weighted(grants)).count).toBeLessThanOrEqual(20);
      // The message gate still took its share of every request: never above its own rate.
      expect(busiestWindow(messages).count).toBeLessThanOrEqual(1000);
    } finally {
      for (const redis of connections) redis.disconnect();
      await clearRedisPrefix(prefix);
    }
  });
});

describe('segments per second through the workers', () => {
  let env: TestEnv;
  let provider: RecordingProvider;
  let accountsFile: string;

  beforeAll(async () => {
    const key = randomBytes(8).toString('hex');
    provider = new RecordingProvider(key);
    await provider.start();
    env = await createTestEnv({
      account: { rate: 1000, segmentRate: 20, baseUrl: provider.url, credentials: { apiKey: key } },
    });
    env.env.TEST_SANDBOX_KEY = key;
    accountsFile = await writeAccountsFile(env, { segmentRate: 20 });
    // Two worker sets with their own connections, as two processes would have.
    await env.startWorkerSet();
    await env.startWorkerSet();
  });
  afterAll(async () => {
    await env.close();
    await provider.stop();
    await rm(accountsFile, { force: true });
  });

  it('2-segment messages on an account of 20 segments/s arrive at about 10 a second, each once', async () => {
    const campaign = await createCampaign(env.context, {
      name: 'two segments each',
      account: SANDBOX_ACCOUNT,
      // 13 + 150 characters of GSM-7: more than 160, so two segments each.
      template: `Hi {{first_name}}, ${'x'.repeat(150)}`,
    });
    await importRecipients(env.context, campaign.id, Readable.from([recipientsCsv(60)]));
    const segments = await env.query<{ segments: number }>(
      'SELECT DISTINCT segments FROM message WHERE campaign_id = $1',
      [campaign.id],
    );
    expect(segments).toEqual([{ segments: 2 }]);

    // The segment gate's log on Redis's clock, read often enough to see every grant (each stays
    // in the log for at least a second).
    const logKey = `${env.config.queuePrefix}:rate-log:${segmentGateKey(SANDBOX_ACCOUNT)}`;
    const granted = new Map<string, { at: number; units: number }>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const entries = await env.context.redis.zrange(logKey, '0', '-1', 'WITHSCORES');
        for (let i = 0; i < entries.length; i += 2)
          granted.set(entries[i]!, {
            at: Number(entries[i + 1]) / 1000,
            units: Number(entries[i]!.split(':')[0]),
          });
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();

    try {
      await start(env, campaign.id);
      // The recording provider posts no reports: done when nothing is left to send.
      await waitFor(async () => {
        const s = await getCampaignStats(env.context, campaign.id);
        return s.campaign.status === 'COMPLETED' ? s : undefined;
      }, 'the campaign to complete');
    } finally {
      watching = false;
      await watcher;
    }

    expect(provider.arrivals).toHaveLength(60);
    expect(busiestWindow(provider.arrivals).count).toBeLessThanOrEqual(arrivalCeiling(10));
    const ids = await env.query<{ id: string }>('SELECT id FROM message WHERE campaign_id = $1', [
      campaign.id,
    ]);
    for (const { id } of ids) expect(provider.received.get(id)).toBe(1);

    const grants = [...granted.values()];
    expect(grants.reduce((sum, g) => sum + g.units, 0)).toBe(120);
    expect(busiestWindow(weighted(grants)).count).toBeLessThanOrEqual(20);
  });

  it('`herald accounts set-rate NAME --segments N` overrides the segment rate; --clear removes both', async () => {
    const cli = { ...env.env, HERALD_ACCOUNTS_FILE: accountsFile };
    const overrides = () => env.context.redis.hgetall(rateOverridesKey(env.config.queuePrefix));
    const set = await runHerald(['accounts', 'set-rate', SANDBOX_ACCOUNT, '--segments', '30'], cli);
    expect(set.code, set.stderr).toBe(0);
    expect(await overrides()).toEqual({ [segmentGateKey(SANDBOX_ACCOUNT)]: '30' });
    const listing = await runHerald(['accounts'], cli);
    expect(listing.stdout).toContain('1000 msg/s, 30 segments/s, set at run time; file says 20');
    const clear = await runHerald(['accounts', 'set-rate', SANDBOX_ACCOUNT, '--clear'], cli);
    expect(clear.code, clear.stderr).toBe(0);
    expect(await overrides()).toEqual({});
    // Three CLI processes under tsx: slow on a busy machine.
  }, 120_000);
});
