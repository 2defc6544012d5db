import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { redisMarkerKey } from '../src/campaigns/sweeper.js';
import { countersAndTruth, createTestEnv, type TestEnv } from './helpers/harness.js';
import { messagesOf, seedCampaign, start, waitForCompletion } from './helpers/campaigns.js';
import { PrivateRedisCluster } from './helpers/services.js';

describe('scale-out: Redis Cluster', () => {
  let cluster: PrivateRedisCluster;
  let env: TestEnv;

  beforeAll(async () => {
    cluster = await PrivateRedisCluster.start(3);
    env = await createTestEnv({
      account: { rate: 500 },
      env: {
        REDIS_URL: `redis://127.0.0.1:${cluster.nodes[0]!.port}`,
        REDIS_CLUSTER_NODES: cluster.seeds.join(','),
        // The hash tag keeps each queue's keys (and Herald's own) in one slot.
        HERALD_QUEUE_PREFIX: `{herald-test-${randomBytes(4).toString('hex')}}`,
      },
    });
    // Two worker sets, as two processes would run.
    await env.startWorkerSet();
    await env.startWorkerSet();
  });
  afterAll(async () => {
    await env?.close();
    await cluster?.stop();
  });

  it('runs a campaign through a 3-node cluster, each message sent once', async () => {
    expect(env.context.redis).toBeInstanceOf(Cluster);
    const campaign = await seedCampaign(env, 300);
    await start(env, campaign.id);
    const stats = await waitForCompletion(env, campaign.id, 40_000);
    expect(stats.remaining).toBe(0);
    for (const m of await messagesOf(env, campaign.id))
      expect(env.sandbox.receivedByReference.get(m.id), `message ${m.id}`).toBe(1);
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
    // Herald's keys really are in the cluster.
    expect(await env.context.redis.exists(redisMarkerKey(env.config.queuePrefix))).toBe(1);
  });
});
