// Redis bytes per queued message: a send job exactly as the planner adds it (jobId = message id,
// ids in the payload, the send options) against BullMQ's minimal job (auto id, empty payload, no
// options), each measured as used_memory growth on an otherwise empty private redis-server.
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { jobs } from '../src/queues/jobs.js';
import { PrivateRedis } from '../test/helpers/services.js';
import type { BenchResult } from './run.js';

const JOBS = 50_000;

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)![1]);
}

async function bytesPerJob(
  redis: Redis,
  name: string,
  job: (i: number) => { name: string; data: object; opts?: object },
): Promise<number> {
  const queue = new Queue(name, { connection: redis, prefix: '{herald}' });
  await queue.waitUntilReady();
  const before = await usedMemory(redis);
  for (let i = 0; i < JOBS; i += 1000)
    await queue.addBulk(Array.from({ length: Math.min(1000, JOBS - i) }, (_, j) => job(i + j)));
  const after = await usedMemory(redis);
  await queue.obliterate({ force: true });
  await queue.close();
  return (after - before) / JOBS;
}

export async function run(): Promise<BenchResult> {
  const server = await PrivateRedis.start();
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  try {
    const campaignId = randomUUID();
    const minimal = await bytesPerJob(redis, 'minimal', () => ({ name: 'x', data: {} }));
    const herald = await bytesPerJob(redis, 'send-bench', () => {
      const messageId = randomUUID();
      return {
        name: jobs.send.name,
        data: { messageId, campaignId },
        opts: { ...jobs.send.options, jobId: messageId },
      };
    });
    return {
      name: 'redis-memory',
      rows: [
        {
          job: 'BullMQ minimal (auto id, {} payload)',
          'bytes per waiting job': Math.round(minimal),
        },
        { job: 'herald send job (as planned)', 'bytes per waiting job': Math.round(herald) },
      ],
      notes: [
        `${JOBS} waiting jobs each, used_memory growth on a private redis-server ${(await redis.info('server')).match(/redis_version:(\S+)/)?.[1]}`,
        'the planner keeps at most max(1000, 60 s × rate) jobs per account waiting: 60 × 200 msg/s × this = the Redis cost of a 200 msg/s account',
      ],
    };
  } finally {
    redis.disconnect();
    await server.stop();
  }
}
