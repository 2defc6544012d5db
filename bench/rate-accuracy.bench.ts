// Rate accuracy: a 200 msg/s account over 60 s, sent by 2 worker processes to a zero-latency
// provider that records when each message arrived. Reports the achieved rate over the 60 s and the
// busiest sliding 1-second window, beside what BullMQ's own limiter (the fixed-window limiter Herald
// used before) does with the same account, measured in the same run on the same provider.
import { randomBytes } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { busiestWindow, RecordingProvider } from '../test/helpers/recording-provider.js';
import type { BenchResult } from './run.js';
import { ACCOUNT, createSendBench } from './sending-support.js';

const RATE = 200;
const SECONDS = Number(process.env.BENCH_RATE_SECONDS ?? 60);

function measure(arrivals: number[]) {
  const sorted = [...arrivals].sort((a, b) => a - b);
  // Skip the first second (workers taking their first jobs), then count a whole SECONDS window.
  const start = sorted[0]! + 1000;
  const inWindow = sorted.filter((t) => t >= start && t < start + SECONDS * 1000);
  return {
    achieved: inWindow.length / SECONDS,
    busiest: busiestWindow(sorted).count,
  };
}

/** BullMQ's fixed-window limiter, 100 ms windows as Herald had, jobs posting to the provider. */
async function bullmqLimiter(redis: Redis, count: number): Promise<number[]> {
  const key = randomBytes(8).toString('hex');
  const provider = new RecordingProvider(key);
  await provider.start();
  const queue = new Queue('limited', { connection: redis, prefix: 'baseline' });
  await queue.addBulk(
    Array.from({ length: count }, (_, i) => ({
      name: 'send',
      data: { i },
      opts: { removeOnComplete: true },
    })),
  );
  let done = 0;
  const post = async () => {
    await fetch(`${provider.url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ reference: randomBytes(4).toString('hex') }] }),
    });
  };
  await new Promise<void>((resolve) => {
    const workers = [0, 1].map(
      () =>
        new Worker('limited', post, {
          connection: redis,
          prefix: 'baseline',
          concurrency: 50,
          limiter: { max: RATE / 10, duration: 100 },
        }),
    );
    for (const worker of workers)
      worker.on('completed', () => {
        done += 1;
        if (done === count) void Promise.all(workers.map((w) => w.close())).then(() => resolve());
      });
  });
  await queue.obliterate({ force: true });
  await queue.close();
  await provider.stop();
  return provider.arrivals;
}

export async function run(): Promise<BenchResult> {
  const count = RATE * (SECONDS + 3);
  const bench = await createSendBench({ rate: RATE, concurrency: 10 });
  try {
    const campaignId = await bench.seed(count);
    await bench.startWorkers(2);
    // The gate's own record of what it allowed (the last second's grants, on Redis's clock),
    // read often enough to see every grant: the guarantee itself, apart from transport jitter.
    const grants = new Map<string, { at: number; n: number }>();
    const logKey = `herald:rate-log:${ACCOUNT}`;
    const redis = bench.context.redis as Redis; // a single redis-server here
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const entries = await redis.zrange(logKey, '0', '-1', 'WITHSCORES');
        for (let i = 0; i < entries.length; i += 2)
          grants.set(entries[i]!, {
            at: Number(entries[i + 1]) / 1000,
            n: Number(entries[i]!.split(':')[0]),
          });
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    await bench.start(campaignId);
    await bench.waitUntilSent(campaignId);
    watching = false;
    await watcher;
    const grantTimes = [...grants.values()].flatMap((g) => Array<number>(g.n).fill(g.at));
    const herald = measure(bench.provider.arrivals);
    const atRedis = measure(grantTimes);
    const baseline = measure(await bullmqLimiter(redis, count));
    const row = (label: string, m: { achieved: number; busiest: number }) => ({
      run: label,
      'achieved msg/s': m.achieved.toFixed(1),
      'vs 200': `${((100 * m.achieved) / RATE - 100).toFixed(1)}%`,
      'busiest 1 s window': m.busiest,
    });
    return {
      name: 'rate-accuracy',
      rows: [
        row('herald (Redis rate gate), 2 worker processes', herald),
        row("herald, the same run as the gate granted it (Redis's clock)", atRedis),
        row('baseline: BullMQ limiter 20 per 100 ms, 2 workers', baseline),
      ],
      notes: [
        `grants seen at Redis: ${grantTimes.length} of ${count}`,
        `${count} messages at ${RATE} msg/s; achieved = arrivals in ${SECONDS} s after the first second; busiest = most arrivals in any sliding second`,
      ],
    };
  } finally {
    await bench.close();
  }
}
