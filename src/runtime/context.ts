import type { Redis } from 'ioredis';
import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config/config.js';
import { createDatabase, type Database } from '../db/database.js';
import { createLogger, type Logger } from '../logger.js';
import { ProviderPool } from '../providers/provider-pool.js';
import { Queues, createRedis } from '../queues/queues.js';

/** The dependencies every part of Herald is given: no module singletons. */
export interface AppContext {
  config: Config;
  logger: Logger;
  clock: Clock;
  db: Database;
  redis: Redis;
  queues: Queues;
  /** Provider clients per account, created on first use. */
  providers: ProviderPool;
}

export function createContext(
  config: Config,
  overrides: { logger?: Logger; clock?: Clock; dbPoolSize?: number } = {},
): AppContext {
  const logger = overrides.logger ?? createLogger({ level: config.logLevel });
  const redis = createRedis(config.redisUrl);
  return {
    config,
    logger,
    clock: overrides.clock ?? systemClock,
    db: createDatabase(config.databaseUrl, { max: overrides.dbPoolSize ?? 20 }),
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
