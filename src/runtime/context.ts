import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config/config.js';
import { createDatabase, type Database } from '../db/database.js';
import { createLogger, type Logger } from '../logger.js';
import { ProviderPool } from '../providers/provider-pool.js';
import { Queues, createRedis, type RedisClient } from '../queues/queues.js';

/** The dependencies every part of Herald is given: no module singletons. */
export interface AppContext {
  config: Config;
  logger: Logger;
  clock: Clock;
  db: Database;
  redis: RedisClient;
  queues: Queues;
  /** Provider clients per account, created on first use. */
  providers: ProviderPool;
}

export function createContext(
  config: Config,
  overrides: { logger?: Logger; clock?: Clock; dbPoolSize?: number } = {},
): AppContext {
  const logger = overrides.logger ?? createLogger({ level: config.logLevel });
  const redis = createRedis(config.redisUrl, config.redisClusterNodes);
  const db = createDatabase(config.databaseUrl, { max: overrides.dbPoolSize ?? 20 });
  // A client checked out of the pool (a transaction in progress) whose connection drops emits
  // 'error' with no listener, which would crash the process on a Postgres restart. The query in
  // progress still fails and its caller retries; the pool discards the broken client.
  db.pool.on('connect', (client) => client.on('error', () => {}));
  return {
    config,
    logger,
    clock: overrides.clock ?? systemClock,
    db,
    redis,
    queues: new Queues(redis, config.queuePrefix),
    providers: new ProviderPool(config, logger),
  };
}

export async function closeContext(context: AppContext): Promise<void> {
  await context.providers.close();
  await context.queues.close();
  await context.db.close();
  context.redis.disconnect();
}
