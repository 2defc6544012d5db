// Send-time precision with workers running: a campaign whose messages each have their own due time
// (appointment reminders), spread at random over a window that opens ~20 s after the start, sent by
// real `herald worker` processes to a zero-latency recording provider. Lateness of a message =
// its arrival at the provider (Date.now() there) − its due_at. Issue target: none early, p99 < 1 s.
//
// Baseline in the same run, on the same private redis-server: BullMQ alone, the same number of
// delayed jobs with the same due times (the same offsets from their start), a no-op worker of
// Herald's concurrency recording Date.now() as it takes each job. What Herald adds on top of it is
// the planner (Postgres → Redis), the claim in Postgres, the batcher, the rate gate and the request.
//
// Environment:
//   BENCH_PRECISION_MESSAGES   messages per run (default 5,000)
//   BENCH_PRECISION_LEAD_MS    from the start to the window's opening (default 20,000)
//   BENCH_PRECISION_WINDOW_MS  length of the window the due times are spread over (default 60,000)
//   BENCH_PRECISION_WORKERS    worker-process counts to run, comma-separated (default "1,2")
//   BENCH_PRECISION_SHORT_HORIZON_MS  one more run, 1 process, with HERALD_PLAN_HORIZON_MS this
//                              short so messages are planned during the window by the sweep
//                              (default 10,000; 0 skips it)
//   BENCH_PRECISION_REDIS_HZ   `--hz` of the private redis-server (default: Redis's own, 10). An
//                              idle Redis ends a blocking command's timeout only on its next
//                              `hz` tick, and BullMQ's worker waits for its next delayed job that
//                              way: up to 1000/hz ms late (see BENCHMARKS.md "Scheduling").
//
// Herald's lateness is also split per message, from the send queue's events (read as they happen):
// - due → fire time: the time the planner's job was set to become due (`delayed` event: the job's
//   timestamp + its delay) minus due_at, i.e. what planning itself adds;
// - fire time → taken: BullMQ's delayed-job wake-up (`active` event, stamped with Redis's clock),
//   plus any backlog of a busy worker;
// - taken → provider: Herald's send path (claim in Postgres, render, batcher, rate gate, request).
// A message planned after its due time (only with a short horizon) has no `delayed` event.
import { Queue, QueueEvents, Worker } from 'bullmq';
import { readFile } from 'node:fs/promises';
import type { BenchResult } from './run.js';
import { sendQueueName } from '../src/queues/queues.js';
import { ACCOUNT, createSendBench, type SendBench } from './sending-support.js';

const MESSAGES = Number(process.env.BENCH_PRECISION_MESSAGES ?? 5000);
const LEAD_MS = Number(process.env.BENCH_PRECISION_LEAD_MS ?? 20_000);
const WINDOW_MS = Number(process.env.BENCH_PRECISION_WINDOW_MS ?? 60_000);
const WORKERS = (process.env.BENCH_PRECISION_WORKERS ?? '1,2').split(',').map(Number);
const SHORT_HORIZON_MS = Number(process.env.BENCH_PRECISION_SHORT_HORIZON_MS ?? 10_000);
const REDIS_HZ = process.env.BENCH_PRECISION_REDIS_HZ;
/** Account: fast enough not to be the limit (the busiest second of a random spread is ~2× mean). */
const RATE = 1000;
const CONCURRENCY = 20;
/** What Herald's send worker takes at once for this account: min(200, 20 × 100, 1000 × 0.25). */
const JOB_CONCURRENCY = 200;
/** Herald's production sweep interval (sending-support sets 500 ms for throughput runs). */
const SWEEP_INTERVAL_MS = 2000;

interface Lateness {
  count: number;
  early: number;
  worstEarlyMs: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], p: number): number {
  return sorted[
    Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  ]!;
}

function summarise(latenesses: number[]): Lateness {
  if (latenesses.length === 0)
    return {
      count: 0,
      early: 0,
      worstEarlyMs: 0,
      p50: NaN,
      p90: NaN,
      p99: NaN,
      max: NaN,
      mean: NaN,
    };
  const sorted = [...latenesses].sort((a, b) => a - b);
  const early = sorted.filter((l) => l < 0);
  return {
    count: sorted.length,
    early: early.length,
    worstEarlyMs: early.length > 0 ? -sorted[0]! : 0,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1]!,
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
  };
}

/** Integer ms offsets from a run's start, uniform in [LEAD, LEAD + WINDOW): the same for every run. */
const OFFSETS = Array.from(
  { length: MESSAGES },
  () => LEAD_MS + Math.floor(Math.random() * WINDOW_MS),
);

const loadAverage = async () =>
  (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');

async function bullmqBaseline(bench: SendBench): Promise<Lateness> {
  const connection = bench.context.redis;
  const queue = new Queue('precision', { connection, prefix: 'baseline' });
  const processed: number[] = new Array<number>(MESSAGES);
  let done = 0;
  let resolveAll!: () => void;
  const all = new Promise<void>((resolve) => (resolveAll = resolve));
  const worker = new Worker(
    'precision',
    async (job) => {
      processed[(job.data as { i: number }).i] = Date.now();
      done += 1;
      if (done === MESSAGES) resolveAll();
    },
    { connection, prefix: 'baseline', concurrency: JOB_CONCURRENCY },
  );
  await worker.waitUntilReady();
  const start = Date.now();
  const due = OFFSETS.map((o) => start + o);
  for (let i = 0; i < MESSAGES; i += 1000) {
    const now = Date.now();
    await queue.addBulk(
      due.slice(i, i + 1000).map((d, j) => ({
        name: 'send',
        data: { i: i + j },
        opts: { jobId: `m-${i + j}`, removeOnComplete: true, delay: Math.max(0, d - now) },
      })),
    );
  }
  await all;
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  return summarise(processed.map((at, i) => at - due[i]!));
}

interface HeraldLateness {
  total: Lateness;
  /** due → the time its delayed job was set for. */
  planned: Lateness;
  /** that time → job made active by BullMQ (Redis's clock). */
  taken: Lateness;
  /** job made active → arrival at the provider. */
  sendPath: Lateness;
}

async function heraldRun(
  bench: SendBench,
  workers: number,
  env: Record<string, string>,
): Promise<HeraldLateness> {
  const saved = { ...bench.env };
  Object.assign(bench.env, env);
  await bench.startWorkers(workers);
  const events = new QueueEvents(sendQueueName(ACCOUNT), {
    connection: bench.context.redis,
    prefix: bench.env.HERALD_QUEUE_PREFIX,
  });
  const activeAt = new Map<string, number>();
  const fireAt = new Map<string, number>();
  events.on('delayed', ({ jobId, delay }) => {
    if (!fireAt.has(jobId)) fireAt.set(jobId, Number(delay));
  });
  events.on('active', ({ jobId }, id) => {
    if (!activeAt.has(jobId)) activeAt.set(jobId, Number(id.split('-')[0]));
  });
  await events.waitUntilReady();
  try {
    const campaignId = await bench.seed(MESSAGES);
    const start = Date.now();
    // Each message its own time: the i-th message (by id) gets the i-th offset.
    await bench.context.db.pool.query(
      `UPDATE message m SET due_at = to_timestamp(($2::float8 + o.offset_ms) / 1000)
       FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM message WHERE campaign_id = $1) r
       JOIN unnest($3::int[]) WITH ORDINALITY AS o(offset_ms, n) ON o.n = r.n
       WHERE m.id = r.id`,
      [campaignId, start, OFFSETS],
    );
    await bench.start(campaignId);
    await bench.waitUntilSent(campaignId);
    const { rows } = await bench.context.db.pool.query<{
      id: string;
      due_at: Date;
      status: string;
    }>('SELECT id, due_at, status FROM message WHERE campaign_id = $1', [campaignId]);
    const total: number[] = [];
    const planned: number[] = [];
    const taken: number[] = [];
    const sendPath: number[] = [];
    for (const row of rows) {
      const at = bench.provider.firstArrivedAt.get(row.id);
      if (at === undefined) throw new Error(`message ${row.id} (${row.status}) never arrived`);
      total.push(at - row.due_at.getTime());
      const fire = fireAt.get(row.id);
      const active = activeAt.get(row.id);
      if (fire !== undefined) planned.push(fire - row.due_at.getTime());
      if (active !== undefined) {
        taken.push(active - (fire ?? row.due_at.getTime()));
        sendPath.push(at - active);
      }
    }
    return {
      total: summarise(total),
      planned: summarise(planned),
      taken: summarise(taken),
      sendPath: summarise(sendPath),
    };
  } finally {
    await events.close();
    await bench.stopWorkers();
    for (const key of Object.keys(env)) delete bench.env[key];
    Object.assign(bench.env, saved);
  }
}

export async function run(): Promise<BenchResult> {
  const bench = await createSendBench(
    { rate: RATE, concurrency: CONCURRENCY },
    { redisArgs: REDIS_HZ ? ['--hz', REDIS_HZ] : [] },
  );
  const loads: string[] = [];
  const ms = (v: number) => Math.round(v);
  const row = (label: string, stage: string, r: Lateness) => ({
    run: label,
    stage,
    messages: r.count,
    early: r.early,
    'worst early ms': r.worstEarlyMs,
    'p50 ms': ms(r.p50),
    'p90 ms': ms(r.p90),
    'p99 ms': ms(r.p99),
    'max ms': ms(r.max),
    'mean ms': ms(r.mean),
  });
  try {
    const rows: Array<ReturnType<typeof row>> = [];
    loads.push(await loadAverage());
    rows.push(
      row('baseline: BullMQ alone, no-op worker', 'due → taken', await bullmqBaseline(bench)),
    );
    const herald = async (label: string, workers: number, env: Record<string, string>) => {
      loads.push(await loadAverage());
      const r = await heraldRun(bench, workers, env);
      rows.push(row(label, 'due → provider', r.total));
      rows.push(row(label, '  due → fire time set', r.planned));
      rows.push(row(label, '  fire time → taken', r.taken));
      rows.push(row(label, '  taken → provider', r.sendPath));
    };
    const sweepEnv = { HERALD_SWEEP_INTERVAL_MS: String(SWEEP_INTERVAL_MS) };
    for (const n of WORKERS)
      await herald(`herald, ${n} worker process${n === 1 ? '' : 'es'}`, n, sweepEnv);
    if (SHORT_HORIZON_MS > 0)
      await herald(`herald, 1 worker process, horizon ${SHORT_HORIZON_MS / 1000} s`, 1, {
        ...sweepEnv,
        HERALD_PLAN_HORIZON_MS: String(SHORT_HORIZON_MS),
      });
    loads.push(await loadAverage());
    return {
      name: 'schedule-precision',
      rows,
      notes: [
        `${MESSAGES} messages per run, due at random (uniform, whole ms) over ${WINDOW_MS / 1000} s opening ${LEAD_MS / 1000} s after the start; the same offsets in every run`,
        `account ${RATE} msg/s, concurrency ${CONCURRENCY}; sweep every ${SWEEP_INTERVAL_MS} ms; horizon ${process.env.HERALD_PLAN_HORIZON_MS ?? 300_000} ms unless stated; baseline worker concurrency ${JOB_CONCURRENCY}; private redis-server hz ${REDIS_HZ ?? '10 (default)'}`,
        'lateness = Date.now() at the provider (herald) or in the processor (baseline) − due time; "fire time" = the delayed job’s timestamp + delay, "taken" = its active event (Redis time)',
        `load average before each run and at the end: ${loads.join(' | ')}`,
      ],
    };
  } finally {
    await bench.close();
  }
}
