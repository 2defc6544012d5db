// Shared set-up for the sending benchmarks (not a benchmark itself: run.ts loads *.bench.ts only).
// Each run gets its own database, its own redis-server (so the machine's shared Redis neither
// skews the figures nor gets filled), a zero-latency recording provider, and real `herald worker`
// processes.
import { randomBytes } from 'node:crypto';
import { writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCampaign, startCampaign } from '../src/campaigns/campaign-service.js';
import { loadConfig } from '../src/config/config.js';
import { migrate } from '../src/db/migrate.js';
import { createLogger } from '../src/logger.js';
import { closeContext, createContext, type AppContext } from '../src/runtime/context.js';
import { databaseUrl, dropDatabase, uniqueName } from '../test/helpers/databases.js';
import { RecordingProvider } from '../test/helpers/recording-provider.js';
import { PrivateRedis } from '../test/helpers/services.js';
import { spawnHerald } from '../test/helpers/worker-process.js';

export const ACCOUNT = 'bench';

export interface SendBench {
  context: AppContext;
  provider: RecordingProvider;
  redis: PrivateRedis;
  env: Record<string, string>;
  /** A RUNNING-ready DRAFT campaign of `count` recipients, inserted in one statement. */
  seed(count: number): Promise<string>;
  /** Starts `count` worker processes and waits until they are ready. */
  startWorkers(count: number): Promise<void>;
  stopWorkers(): Promise<void>;
  start(campaignId: string): Promise<void>;
  /** Resolves when no message of the campaign is left PENDING, QUEUED or SENDING. */
  waitUntilSent(campaignId: string): Promise<void>;
  close(): Promise<void>;
}

export async function createSendBench(
  account: {
    rate: number;
    concurrency: number;
  },
  options: {
    /** Extra redis-server arguments for the private Redis, e.g. `['--hz', '100']`. */
    redisArgs?: string[];
  } = {},
): Promise<SendBench> {
  const databaseName = uniqueName('herald_bench');
  const url = databaseUrl(databaseName);
  await migrate(url);
  const key = randomBytes(12).toString('hex');
  const provider = new RecordingProvider(key);
  await provider.start();
  const redis = await PrivateRedis.start({ args: options.redisArgs });
  const accountsFile = join(tmpdir(), `herald-bench-${randomBytes(6).toString('hex')}.json`);
  await writeFile(
    accountsFile,
    JSON.stringify({
      accounts: [
        {
          name: ACCOUNT,
          provider: 'sandbox',
          baseUrl: provider.url,
          credentials: { apiKey: 'env:BENCH_PROVIDER_KEY' },
          ...account,
        },
      ],
    }),
  );
  const env: Record<string, string> = {
    DATABASE_URL: url,
    REDIS_URL: redis.url,
    HERALD_QUEUE_PREFIX: 'herald',
    HERALD_WEBHOOK_SECRET: randomBytes(32).toString('hex'),
    HERALD_ACCOUNTS_FILE: accountsFile,
    HERALD_PUBLIC_URL: 'http://127.0.0.1:9',
    HERALD_SWEEP_INTERVAL_MS: '500',
    BENCH_PROVIDER_KEY: key,
    LOG_LEVEL: 'warn',
  };
  const context = createContext(loadConfig(env), { logger: createLogger({ level: 'warn' }) });
  let workers: Array<ReturnType<typeof spawnHerald>> = [];

  const bench: SendBench = {
    context,
    provider,
    redis,
    env,
    async seed(count) {
      const campaign = await createCampaign(context, {
        name: 'bench',
        account: ACCOUNT,
        template: 'Hi {{first_name}}, this is a benchmark.',
      });
      await context.db.pool.query(
        `INSERT INTO message (campaign_id, phone, fields)
         SELECT $1, '+614' || lpad(i::text, 8, '0'), '{"first_name":"Sam"}'::jsonb
         FROM generate_series(1, $2::int) i`,
        [campaign.id, count],
      );
      return campaign.id;
    },
    async startWorkers(count) {
      const started = Array.from({ length: count }, () =>
        spawnHerald(['worker', '--roles', 'send,planner'], { ...env, LOG_LEVEL: 'info' }),
      );
      workers.push(...started);
      const deadline = Date.now() + 60_000;
      while (!started.every((w) => w.output().includes('workers started'))) {
        if (Date.now() > deadline) throw new Error('workers did not start');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async stopWorkers() {
      await Promise.all(
        workers.map(async (w) => {
          if (w.exitCode !== null) return;
          const exited = new Promise((resolve) => w.once('exit', resolve));
          w.kill('SIGTERM');
          await exited;
        }),
      );
      workers = [];
    },
    async start(campaignId) {
      await startCampaign(context, campaignId);
    },
    async waitUntilSent(campaignId) {
      for (;;) {
        const { rows } = await context.db.pool.query<{ n: string }>(
          `SELECT coalesce(sum(count), 0) AS n FROM campaign_counter
           WHERE campaign_id = $1 AND status IN ('PENDING', 'QUEUED', 'SENDING')`,
          [campaignId],
        );
        if (Number(rows[0]!.n) === 0) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async close() {
      await bench.stopWorkers();
      await closeContext(context);
      await provider.stop();
      await redis.stop();
      await dropDatabase(databaseName);
      await rm(accountsFile, { force: true });
    },
  };
  return bench;
}

/** Messages per second over the provider's arrivals from index `from` on. */
export function arrivalRate(arrivals: number[], from = 0): number {
  const slice = arrivals.slice(from);
  if (slice.length < 2) return 0;
  return (slice.length - 1) / ((slice[slice.length - 1]! - slice[0]!) / 1000);
}
