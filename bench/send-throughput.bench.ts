// End-to-end send throughput: campaign start → every message handed to a zero-latency provider,
// with 1 and 2 `herald worker` processes and no rate limit, beside BullMQ's own ceiling (the same
// number of jobs through one no-op worker, concurrency 200) measured in the same run.
import { Queue, Worker } from 'bullmq';
import type { BenchResult } from './run.js';
import { createSendBench, type SendBench } from './sending-support.js';

const MESSAGES = Number(process.env.BENCH_SEND_MESSAGES ?? 20_000);

async function bullmqCeiling(bench: SendBench, count: number): Promise<number> {
  const connection = bench.context.redis;
  const queue = new Queue('ceiling', { connection, prefix: 'ceiling' });
  for (let i = 0; i < count; i += 1000) {
    await queue.addBulk(
      Array.from({ length: Math.min(1000, count - i) }, (_, j) => ({
        name: 'send',
        data: { messageId: `m-${i + j}`, campaignId: 'c' },
        opts: { jobId: `m-${i + j}`, removeOnComplete: true },
      })),
    );
  }
  let done = 0;
  const started = performance.now();
  const finished = new Promise<void>((resolve) => {
    const worker = new Worker('ceiling', async () => {}, {
      connection,
      prefix: 'ceiling',
      concurrency: 200,
    });
    worker.on('completed', () => {
      done += 1;
      if (done === count) void worker.close().then(() => resolve());
    });
  });
  await finished;
  const rate = count / ((performance.now() - started) / 1000);
  await queue.obliterate({ force: true });
  await queue.close();
  return rate;
}

async function heraldRun(
  bench: SendBench,
  workers: number,
): Promise<{ e2e: number; send: number }> {
  const campaignId = await bench.seed(MESSAGES);
  await bench.startWorkers(workers);
  const from = bench.provider.arrivals.length;
  const started = performance.now();
  await bench.start(campaignId);
  await bench.waitUntilSent(campaignId);
  const seconds = (performance.now() - started) / 1000;
  const arrivals = bench.provider.arrivals.slice(from);
  await bench.stopWorkers();
  const span = (arrivals[arrivals.length - 1]! - arrivals[0]!) / 1000;
  return { e2e: MESSAGES / seconds, send: arrivals.length / span };
}

export async function run(): Promise<BenchResult> {
  // No rate limit to speak of; 20 requests in flight per process.
  const bench = await createSendBench({ rate: 1_000_000, concurrency: 20 });
  try {
    const ceiling = await bullmqCeiling(bench, MESSAGES);
    const one = await heraldRun(bench, 1);
    const two = await heraldRun(bench, 2);
    const row = (label: string, r: { e2e: number; send: number }) => ({
      run: label,
      'msgs/s (start → all sent)': Math.round(r.e2e),
      'msgs/s (first → last arrival)': Math.round(r.send),
      'of ceiling': `${Math.round((100 * r.e2e) / ceiling)}%`,
    });
    return {
      name: 'send-throughput',
      rows: [
        {
          run: 'BullMQ no-op ceiling (1 worker, concurrency 200)',
          'msgs/s (start → all sent)': Math.round(ceiling),
          'msgs/s (first → last arrival)': '',
          'of ceiling': '100%',
        },
        row('herald, 1 worker process', one),
        row('herald, 2 worker processes', two),
      ],
      notes: [
        `${MESSAGES} messages per run, zero-latency local provider (sandbox wire format, batches ≤ 100), own redis-server`,
        'start → all sent includes planning (Postgres → Redis) and every status write',
      ],
    };
  } finally {
    await bench.close();
  }
}
