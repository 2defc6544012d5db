import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { inject } from 'vitest';
import pg from 'pg';
import { Redis } from 'ioredis';
import type { FastifyInstance } from 'fastify';
import { AccountRegistry, type Account } from '../../src/config/accounts.js';
import { loadConfig, type Config } from '../../src/config/config.js';
import { buildApp } from '../../src/http/app.js';
import { createLogger } from '../../src/logger.js';
import {
  SandboxServer,
  type SandboxServerOptions,
} from '../../src/providers/sandbox/sandbox-server.js';
import { closeContext, createContext, type AppContext } from '../../src/runtime/context.js';
import { startWorkers, type RunningWorkers } from '../../src/runtime/workers.js';
import type { Clock } from '../../src/clock.js';
import { adminQuery, databaseUrl, dropDatabase, TEST_REDIS_URL, uniqueName } from './databases.js';

export const SANDBOX_ACCOUNT = 'test-sandbox';

/** Environment for a test: its own database (cloned from the migrated template) and Redis prefix. */
export interface TestEnv {
  databaseName: string;
  env: Record<string, string>;
  sandbox: SandboxServer;
  /** The sandboxes of `extraAccounts` (those without a baseUrl of their own), by account name. */
  sandboxes: Record<string, SandboxServer>;
  config: Config;
  /** The context the test itself uses (API, assertions). */
  context: AppContext;
  app: FastifyInstance;
  /** Worker sets started with startWorkerSet(), stopped by close(). */
  workers: RunningWorkers[];
  /** A second context with its own connections, as another process would have, running workers. */
  startWorkerSet(options?: { clock?: Clock }): Promise<RunningWorkers>;
  query<T extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

export interface TestEnvOptions {
  sandbox?: Partial<SandboxServerOptions>;
  account?: Partial<Account>;
  /**
   * More accounts beside the sandbox one (a campaign's fallback, say). Each is a sandbox account
   * with its own SandboxServer unless it names its own provider and baseUrl.
   */
  extraAccounts?: Array<Partial<Account> & { name: string }>;
  env?: Record<string, string>;
  clock?: Clock;
}

export async function createTestEnv(options: TestEnvOptions = {}): Promise<TestEnv> {
  const databaseName = uniqueName('herald_test');
  await adminQuery(
    `CREATE DATABASE ${pg.escapeIdentifier(databaseName)} TEMPLATE ${pg.escapeIdentifier(inject('templateDatabase'))}`,
  );
  const sandboxKey = randomBytes(12).toString('hex');
  const sandbox = new SandboxServer({ apiKey: sandboxKey, reportDelayMs: 50, ...options.sandbox });
  await sandbox.start();

  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl(databaseName),
    REDIS_URL: TEST_REDIS_URL,
    HERALD_QUEUE_PREFIX: uniqueName('herald-test'),
    HERALD_WEBHOOK_SECRET: randomBytes(32).toString('hex'),
    HERALD_API_KEYS: randomBytes(16).toString('hex'),
    HERALD_SWEEP_INTERVAL_MS: '300',
    HERALD_SHUTDOWN_TIMEOUT_MS: '5000',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    TEST_SANDBOX_KEY: sandboxKey,
    ...options.env,
  };
  const account: Account = {
    name: SANDBOX_ACCOUNT,
    provider: 'sandbox',
    baseUrl: sandbox.url,
    credentials: { apiKey: sandboxKey },
    rate: 1000,
    concurrency: 10,
    deliveryPolicy: 'at-most-once',
    options: {},
    ...options.account,
  };
  const sandboxes: Record<string, SandboxServer> = {};
  const extraAccounts: Account[] = [];
  for (const extra of options.extraAccounts ?? []) {
    let { baseUrl, credentials } = extra;
    if (baseUrl === undefined) {
      const apiKey = randomBytes(12).toString('hex');
      const server = new SandboxServer({ apiKey, reportDelayMs: 50, ...options.sandbox });
      await server.start();
      sandboxes[extra.name] = server;
      baseUrl = server.url;
      credentials = { apiKey };
    }
    extraAccounts.push({
      provider: 'sandbox',
      rate: 1000,
      concurrency: 10,
      deliveryPolicy: 'at-most-once',
      options: {},
      ...extra,
      baseUrl,
      credentials: credentials ?? {},
    });
  }
  const makeConfig = () => {
    const config = loadConfig(env);
    config.accounts = new AccountRegistry([account, ...extraAccounts]);
    return config;
  };
  const config = makeConfig();
  const logger = createLogger({ level: env.LOG_LEVEL! });
  const context = createContext(config, { logger, clock: options.clock });
  const app = await buildApp(context);
  await app.listen({ host: '127.0.0.1', port: 0 });
  config.publicUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  env.HERALD_PUBLIC_URL = config.publicUrl;

  const workerContexts: AppContext[] = [];
  const workers: RunningWorkers[] = [];
  const testEnv: TestEnv = {
    databaseName,
    env,
    sandbox,
    sandboxes,
    config,
    context,
    app,
    workers,
    async startWorkerSet(workerOptions = {}) {
      const workerConfig = makeConfig();
      workerConfig.publicUrl = config.publicUrl;
      const workerContext = createContext(workerConfig, {
        logger,
        clock: workerOptions.clock ?? options.clock,
      });
      workerContexts.push(workerContext);
      const running = await startWorkers(workerContext);
      workers.push(running);
      return running;
    },
    async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
      return (await context.db.pool.query<T>(sql, params)).rows;
    },
    async close() {
      // Each step is timed: a close that hangs names the step in the test output.
      await step('stop worker sets', () => Promise.all(workers.map((w) => w.close())));
      await step('close worker contexts', () =>
        Promise.all(workerContexts.map((c) => closeContext(c))),
      );
      await step('close the API', () => app.close());
      await step('stop the sandboxes', () =>
        Promise.all([sandbox, ...Object.values(sandboxes)].map((s) => s.stop())),
      );
      await step('clear the Redis prefix', () => clearRedisPrefix(env.HERALD_QUEUE_PREFIX!));
      await step('close the test context', () => closeContext(context));
      await step('drop the database', () => dropDatabase(databaseName));
    },
  };
  return testEnv;
}

/** Runs one step of a test environment's shutdown, saying on stderr which one if it is slow. */
async function step<T>(name: string, run: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const slow = setTimeout(
    () => process.stderr.write(`test env close: "${name}" still running after 10 s\n`),
    10_000,
  );
  try {
    return await run();
  } finally {
    clearTimeout(slow);
    if (Date.now() - started > 10_000)
      process.stderr.write(`test env close: "${name}" took ${Date.now() - started} ms\n`);
  }
}

export async function clearRedisPrefix(prefix: string): Promise<void> {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A CSV of `count` valid Australian mobiles, 0412000000 + offset upward, with a first_name column. */
export function recipientsCsv(count: number, offset = 0): string {
  const rows = ['phone,first_name'];
  for (let i = 0; i < count; i++)
    rows.push(`0412${String(offset + i).padStart(6, '0')},Person${i}`);
  return `${rows.join('\n')}\n`;
}

/** Campaign counters as maintained by the triggers, and the truth from GROUP BY, for comparison. */
export async function countersAndTruth(env: TestEnv, campaignId: string) {
  const counters = await env.query<{ status: string; count: string }>(
    'SELECT status, sum(count) AS count FROM campaign_counter WHERE campaign_id = $1 GROUP BY status HAVING sum(count) <> 0 ORDER BY status',
    [campaignId],
  );
  const truth = await env.query<{ status: string; count: string }>(
    'SELECT status, count(*) AS count FROM message WHERE campaign_id = $1 GROUP BY status ORDER BY status',
    [campaignId],
  );
  const asRecord = (rows: Array<{ status: string; count: string }>) =>
    Object.fromEntries(rows.map((r) => [r.status, Number(r.count)]));
  return { counters: asRecord(counters), truth: asRecord(truth) };
}
