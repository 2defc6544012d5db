// Redis stays bounded for a long reminder campaign: 1,000,000 messages, each with its own due time,
// spread evenly over 30 days. Herald keeps only the messages due within HERALD_PLAN_HORIZON_MS in
// Redis (as delayed jobs); the rest wait PENDING in Postgres until the planner reaches them.
//
// What runs: its own database and its own redis-server (never the shared one on 6379). A ManualClock
// is stepped through the 30 days; at each step the real planner (`planCampaign`) runs in-process
// against the private Redis, then used_memory, the send queue's jobs and the messages still PENDING
// are read. Between steps the messages are "sent" (see drain() below). Baseline in the same run, on
// the same redis-server after FLUSHALL: the naive design, every message of the campaign added at
// once as a BullMQ delayed job exactly as the planner adds one (jobId = message id, the real
// `jobs.send.options`, its delay).
//
// Environment:
//   BENCH_REMINDERS        messages in the campaign (default 1,000,000)
//   BENCH_REMINDER_DAYS    span of their due times from "now" (default 30)
//   BENCH_REMINDER_STEP_MS clock step between planner runs (default 6 h: 121 runs over 30 days).
//                          Must be ≥ HERALD_PLAN_HORIZON_MS; equal to it (300000), every message
//                          goes through the planner and Redis, but 8,641 planner runs (and
//                          drains) over 30 days take a long time: use it with fewer messages over
//                          fewer days at the same density (e.g. BENCH_REMINDERS=100000
//                          BENCH_REMINDER_DAYS=3).
//   BENCH_NAIVE_JOBS       jobs added for the naive baseline (default BENCH_REMINDERS); when
//                          smaller, the baseline's bytes are extrapolated linearly to BENCH_REMINDERS
//   HERALD_PLAN_HORIZON_MS read as Herald reads it (default 300000)
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { planCampaign } from '../src/campaigns/planner.js';
import { createCampaign, startCampaign } from '../src/campaigns/campaign-service.js';
import { sweep } from '../src/campaigns/sweeper.js';
import { ManualClock } from '../src/clock.js';
import { loadConfig } from '../src/config/config.js';
import { migrate } from '../src/db/migrate.js';
import { createLogger } from '../src/logger.js';
import { jobs, type SendJob } from '../src/queues/jobs.js';
import { sendQueueName } from '../src/queues/queues.js';
import { closeContext, createContext, type AppContext } from '../src/runtime/context.js';
import { databaseUrl, dropDatabase, uniqueName } from '../test/helpers/databases.js';
import { PrivateRedis } from '../test/helpers/services.js';
import type { BenchResult } from './run.js';

const REMINDERS = Number(process.env.BENCH_REMINDERS ?? 1_000_000);
const DAYS = Number(process.env.BENCH_REMINDER_DAYS ?? 30);
const NAIVE_JOBS = Math.min(REMINDERS, Number(process.env.BENCH_NAIVE_JOBS ?? REMINDERS));
const DAY_MS = 24 * 3600_000;
/** Rows of the per-day table (the figures are taken at every step; the table shows a sample). */
const TABLE_ROWS = 10;

interface Sample {
  at: number;
  pending: number;
  jobs: number;
  usedMemory: number;
  /** How long the planner run took (ms). */
  planMs: number;
}

async function usedMemory(redis: Redis): Promise<{ used: number; peak: number }> {
  const info = await redis.info('memory');
  return {
    used: Number(/used_memory:(\d+)/.exec(info)![1]),
    peak: Number(/used_memory_peak:(\d+)/.exec(info)![1]),
  };
}

async function pendingCount(context: AppContext, campaignId: string): Promise<number> {
  const { rows } = await context.db.pool.query<{ n: string }>(
    `SELECT coalesce(sum(count), 0) AS n FROM campaign_counter
     WHERE campaign_id = $1 AND status = 'PENDING'`,
    [campaignId],
  );
  return Number(rows[0]!.n);
}

/** Least-squares slope of y over x: Redis bytes per message pending. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MiB`;

export async function run(): Promise<BenchResult> {
  const databaseName = uniqueName('herald_bench');
  const url = databaseUrl(databaseName);
  await migrate(url);
  const server = await PrivateRedis.start();
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  const env = {
    DATABASE_URL: url,
    REDIS_URL: server.url,
    HERALD_QUEUE_PREFIX: 'herald',
    LOG_LEVEL: 'warn',
    ...(process.env.HERALD_PLAN_HORIZON_MS
      ? { HERALD_PLAN_HORIZON_MS: process.env.HERALD_PLAN_HORIZON_MS }
      : {}),
  };
  const config = loadConfig(env); // the built-in `sandbox` account (rate 100): nothing is sent
  const account = config.accounts.all()[0]!.name;
  const horizonMs = config.planHorizonMs;
  const stepMs = Number(process.env.BENCH_REMINDER_STEP_MS ?? 6 * 3600_000);
  if (stepMs < horizonMs)
    throw new Error('BENCH_REMINDER_STEP_MS must be at least HERALD_PLAN_HORIZON_MS (see drain())');
  // A round start time, so the steps fall on round times of the emulated calendar.
  const t0 = Math.ceil(Date.now() / 3600_000) * 3600_000;
  const clock = new ManualClock(new Date(t0));
  const context = createContext(config, { logger: createLogger({ level: 'warn' }), clock });
  const queue = context.queues.send(account);
  // Emulates the send workers: takes each job, does nothing, completes it (removeOnComplete as
  // planned). Jobs wait in BullMQ's delayed set on the real clock (minutes), so it takes only
  // what drain() promotes.
  const sender = new Worker(sendQueueName(account), async () => {}, {
    connection: redis,
    prefix: config.queuePrefix,
    concurrency: 200,
  });
  try {
    // --- seed: one set-based insert, due times evenly over DAYS from t0 -----------------------
    const seedStarted = performance.now();
    const campaign = await createCampaign(context, {
      name: 'reminders',
      account,
      template: 'Hi {{first_name}}, a reminder of your appointment.',
    });
    const campaignId = campaign.id;
    await context.db.pool.query(
      `INSERT INTO message (campaign_id, phone, fields, due_at)
       SELECT $1, '+614' || lpad(i::text, 8, '0'), '{"first_name":"Sam"}'::jsonb,
              to_timestamp(($3::float8 + i * $4::float8) / 1000)
       FROM generate_series(1, $2::int) i`,
      [campaignId, REMINDERS, t0, (DAYS * DAY_MS) / REMINDERS],
    );
    await context.db.pool.query('VACUUM ANALYZE message');
    const seedSeconds = (performance.now() - seedStarted) / 1000;
    const empty = await usedMemory(redis);
    await startCampaign(context, campaignId); // RUNNING, and a plan job on the control queue
    await context.queues.control.obliterate({ force: true }); // a control worker would take it

    // --- Herald: step the clock, plan, measure, "send" -----------------------------------------
    /**
     * "Sends" every message due by the clock's time: the jobs in Redis (all due by now, because the
     * step is at least the horizon) are promoted and taken by the no-op worker, which completes
     * them as a send worker would (the job is removed, BullMQ writes its events), and one UPDATE
     * marks those messages, and any still PENDING whose time has passed (only when the step is
     * longer than the horizon: they would have gone through Redis in an earlier window of the
     * same size), SENT at their due time. Redis then holds what it would hold at this moment in a
     * real run: nothing older than now. Sending itself never adds to Redis beyond the job being
     * worked, which was already counted while it waited.
     */
    const drain = async (now: Date) => {
      await queue.promoteJobs();
      for (;;) {
        const counts = await queue.getJobCounts('wait', 'delayed', 'prioritized', 'active');
        if (Object.values(counts).every((n) => n === 0)) break;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      await context.db.pool.query(
        `UPDATE message SET status = 'SENT', sent_at = due_at, updated_at = $2
         WHERE campaign_id = $1
           AND (status = 'QUEUED' OR (status = 'PENDING' AND due_at <= $2))`,
        [campaignId, now],
      );
    };
    const samples: Sample[] = [];
    const steps = Math.ceil((DAYS * DAY_MS) / stepMs);
    const loopStarted = performance.now();
    for (let k = 0; k <= steps + 1; k++) {
      const now = new Date(t0 + k * stepMs);
      clock.set(now);
      if (k > 0) await drain(now);
      const planStarted = performance.now();
      await planCampaign(context, campaignId);
      const planMs = performance.now() - planStarted;
      const counts = await queue.getJobCounts('wait', 'delayed', 'prioritized');
      samples.push({
        at: now.getTime() - t0,
        pending: await pendingCount(context, campaignId),
        jobs: Object.values(counts).reduce((a, b) => a + b, 0),
        usedMemory: (await usedMemory(redis)).used,
        planMs,
      });
    }
    const loopSeconds = (performance.now() - loopStarted) / 1000;
    const heraldPeakInfo = (await usedMemory(redis)).peak;
    const result = await sweep(context);
    const { rows: status } = await context.db.pool.query<{ status: string }>(
      'SELECT status FROM campaign WHERE id = $1',
      [campaignId],
    );
    const sent = await context.db.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM message WHERE campaign_id = $1 AND status = 'SENT'`,
      [campaignId],
    );
    if (Number(sent.rows[0]!.n) !== REMINDERS || status[0]!.status !== 'COMPLETED')
      throw new Error(
        `campaign did not complete: ${sent.rows[0]!.n} of ${REMINDERS} sent, ${status[0]!.status} (sweep: ${JSON.stringify(result)})`,
      );
    await sender.close();

    // --- baseline: every message as a delayed job at once, on the same server, flushed --------
    await redis.flushall();
    const naiveEmpty = await usedMemory(redis);
    const naiveStarted = performance.now();
    let after = '00000000-0000-0000-0000-000000000000';
    let added = 0;
    const naiveNow = t0; // the campaign's start: every delay is the full wait to the due time
    while (added < NAIVE_JOBS) {
      const { rows } = await context.db.pool.query<{ id: string; due_at: Date }>(
        `SELECT id, due_at FROM message WHERE campaign_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
        [campaignId, after, Math.min(1000, NAIVE_JOBS - added)],
      );
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.id;
      await queue.addBulk(
        rows.map((row) => ({
          name: jobs.send.name,
          data: { messageId: row.id, campaignId } satisfies SendJob,
          opts: {
            ...jobs.send.options,
            jobId: row.id,
            delay: Math.max(0, row.due_at.getTime() - naiveNow),
          },
        })),
      );
      added += rows.length;
    }
    const naiveSeconds = (performance.now() - naiveStarted) / 1000;
    const naiveCounts = await queue.getJobCounts('wait', 'delayed', 'prioritized');
    const naiveJobs = Object.values(naiveCounts).reduce((a, b) => a + b, 0);
    const naiveUsed = (await usedMemory(redis)).used;
    const naivePerJob = (naiveUsed - naiveEmpty.used) / added;
    const naiveBytes = naiveEmpty.used + naivePerJob * REMINDERS;
    await redis.flushall();

    // --- report --------------------------------------------------------------------------------
    const used = samples.map((s) => s.usedMemory);
    const peak = samples.reduce((a, b) => (b.usedMemory > a.usedMemory ? b : a));
    const mean = used.reduce((a, b) => a + b, 0) / used.length;
    const maxJobs = Math.max(...samples.map((s) => s.jobs));
    const meanJobs = samples.reduce((a, s) => a + s.jobs, 0) / samples.length;
    const perPending = slope(
      samples.map((s) => s.pending),
      used,
    );
    const every = Math.max(1, Math.round(samples.length / TABLE_ROWS));
    const table = samples
      .filter((_, i) => i % every === 0 || i === samples.length - 1)
      .map((s) => ({
        run: `herald, day ${(s.at / DAY_MS).toFixed(2)}`,
        'pending in Postgres': s.pending,
        'jobs in Redis': s.jobs,
        'Redis used_memory': mib(s.usedMemory),
        'above empty Redis': mib(s.usedMemory - empty.used),
        'planner run ms': Math.round(s.planMs),
      }));
    const naiveLabel =
      added === REMINDERS
        ? `baseline: all ${REMINDERS} as delayed jobs`
        : `baseline: all ${REMINDERS} as delayed jobs (${added} measured, extrapolated)`;
    return {
      name: 'reminder-redis',
      rows: [
        ...table,
        {
          run: `herald, peak over ${samples.length} steps (day ${(peak.at / DAY_MS).toFixed(2)})`,
          'pending in Postgres': peak.pending,
          'jobs in Redis': peak.jobs,
          'Redis used_memory': mib(peak.usedMemory),
          'above empty Redis': mib(peak.usedMemory - empty.used),
          'planner run ms': Math.round(peak.planMs),
        },
        {
          run: `herald, mean over ${samples.length} steps`,
          'pending in Postgres': Math.round(
            samples.reduce((a, s) => a + s.pending, 0) / samples.length,
          ),
          'jobs in Redis': Math.round(meanJobs),
          'Redis used_memory': mib(mean),
          'above empty Redis': mib(mean - empty.used),
          'planner run ms': Math.round(samples.reduce((a, s) => a + s.planMs, 0) / samples.length),
        },
        {
          run: naiveLabel,
          'pending in Postgres': REMINDERS,
          'jobs in Redis': added === REMINDERS ? naiveJobs : REMINDERS,
          'Redis used_memory': mib(naiveBytes),
          'above empty Redis': mib(naiveBytes - naiveEmpty.used),
          'planner run ms': '',
        },
      ],
      notes: [
        `${REMINDERS} messages due evenly over ${DAYS} days (one every ${((DAYS * DAY_MS) / REMINDERS / 1000).toFixed(2)} s); horizon ${horizonMs / 1000} s, clock step ${stepMs / 1000} s, ${samples.length} planner runs in ${loopSeconds.toFixed(0)} s (seed ${seedSeconds.toFixed(0)} s); campaign COMPLETED by the sweeper with all ${REMINDERS} SENT`,
        `empty private redis-server: ${mib(empty.used)} used_memory; Herald's peak ${mib(peak.usedMemory)} (INFO used_memory_peak over the whole run incl. draining: ${mib(heraldPeakInfo)}), at most ${maxJobs} jobs in Redis (mean ${meanJobs.toFixed(0)})`,
        `Redis bytes per message pending in Postgres (least-squares slope over the ${samples.length} samples): Herald ${perPending.toFixed(3)} B; naive ${naivePerJob.toFixed(0)} B per delayed job`,
        `planner run time vs messages pending (least-squares slope): ${(
          slope(
            samples.map((s) => s.pending),
            samples.map((s) => s.planMs),
          ) * 100_000
        ).toFixed(0)} ms per 100,000 pending`,
        `naive / Herald peak: ${(naiveBytes / peak.usedMemory).toFixed(0)}× in used_memory, ${((naiveBytes - naiveEmpty.used) / (peak.usedMemory - empty.used)).toFixed(0)}× above an empty Redis; naive addBulk of ${added} jobs took ${naiveSeconds.toFixed(0)} s`,
      ],
    };
  } finally {
    await sender.close().catch(() => {});
    await closeContext(context);
    redis.disconnect();
    await server.stop();
    await dropDatabase(databaseName);
  }
}
