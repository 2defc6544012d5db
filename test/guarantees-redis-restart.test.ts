import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisMarkerKey } from '../src/campaigns/sweeper.js';
import { countersAndTruth, createTestEnv, type TestEnv } from './helpers/harness.js';
import {
  messagesOf,
  seedCampaign,
  start,
  waitForCompletion,
  waitForProcessed,
} from './helpers/campaigns.js';
import { PrivateRedis } from './helpers/services.js';

describe('guarantee: Redis restarted empty mid-campaign', () => {
  let redis: PrivateRedis;
  let env: TestEnv;

  beforeAll(async () => {
    // A Redis of this test's own: the machine's shared one must never be restarted.
    redis = await PrivateRedis.start();
    env = await createTestEnv({
      sandbox: { latencyMs: 20, reportDelayMs: 200 },
      account: { rate: 200 },
      env: {
        REDIS_URL: redis.url,
        HERALD_JOB_LOCK_MS: '2000',
        // Far longer than this test: recovery must not rely on the stale-message sweep.
        HERALD_STALE_AFTER_MS: '600000',
      },
    });
    await env.startWorkerSet();
  });
  afterAll(async () => {
    await env?.close();
    await redis?.stop();
  });

  it('re-enqueues from Postgres at once, and the campaign completes with nothing sent twice', async () => {
    const campaign = await seedCampaign(env, 1000);
    await start(env, campaign.id);
    await waitForProcessed(env, campaign.id, 200);
    const prefix = env.config.queuePrefix;
    expect(await env.context.redis.exists(redisMarkerKey(prefix))).toBe(1);

    // Everything in Redis is lost: queued jobs, delayed jobs, the sweep's job scheduler.
    await redis.kill();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await redis.start();
    const sentBeforeRecovery = env.sandbox.receivedByReference.size;

    const stats = await waitForCompletion(env, campaign.id, 40_000);
    // The loss was detected and the marker put back.
    expect(await env.context.redis.exists(redisMarkerKey(prefix))).toBe(1);
    expect(env.sandbox.receivedByReference.size).toBeGreaterThan(sentBeforeRecovery);

    expect(stats.total).toBe(1000);
    expect(stats.remaining).toBe(0);
    for (const m of await messagesOf(env, campaign.id)) {
      const requests = env.sandbox.receivedByReference.get(m.id) ?? 0;
      expect(requests, `message ${m.id}`).toBeLessThanOrEqual(1);
      if (requests === 0) expect(m.status, `message ${m.id} was never sent`).toBe('UNKNOWN');
    }
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
  }, 120_000);
});
