import { ConfigError } from '../errors.js';
import { providerRequirements } from '../providers/registry.js';
import { AccountRegistry, loadAccounts } from './accounts.js';
import { readEnv } from './env.js';

/** The one configuration object, read once at boot and passed to whatever needs it. */
export interface Config {
  databaseUrl: string;
  redisUrl: string;
  /** Redis Cluster seed nodes; empty for a single Redis. */
  redisClusterNodes: string[];
  queuePrefix: string;
  host: string;
  port: number;
  /** Base URL providers call back; webhook URLs are built on it. */
  publicUrl: string;
  webhookSecret: string | undefined;
  apiKeys: string[];
  /** API requests per minute per key (HERALD_API_RATE_LIMIT). */
  apiRateLimit: number;
  accounts: AccountRegistry;
  sandboxUrl: string;
  maxUploadBytes: number;
  sandboxApiKey: string;
  logLevel: string;
  sweepIntervalMs: number;
  planHorizonMs: number;
  /** Default maximum lateness of a message with a send time (a campaign may set its own). */
  maxLatenessMs: number;
  staleAfterMs: number;
  eventsBatchSize: number;
  unmatchedReportTtlMs: number;
  shutdownTimeoutMs: number;
  jobLockMs: number;
  accountPauseMs: number;
  circuitFailures: number;
  circuitProbeMs: number;
  circuitProbeMaxMs: number;
  retryMaxMs: number;
  /** Reply keywords that opt the sender out, upper case without spaces or dashes. */
  optOutKeywords: string[];
  eventsConcurrency: number;
  pollAfterMs: number;
  pollIntervalMs: number;
  pollBatchSize: number;
}

export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const env = readEnv(source);
  const accounts = env.HERALD_ACCOUNTS_FILE
    ? loadAccounts(env.HERALD_ACCOUNTS_FILE, providerRequirements, source)
    : new AccountRegistry([
        {
          name: 'sandbox',
          provider: 'sandbox',
          baseUrl: env.HERALD_SANDBOX_URL,
          credentials: { apiKey: env.HERALD_SANDBOX_API_KEY },
          rate: 100,
          concurrency: 20,
          deliveryPolicy: 'at-most-once',
          options: {},
        },
      ]);
  return {
    databaseUrl: env.DATABASE_URL,
    redisUrl: env.REDIS_URL,
    redisClusterNodes: env.REDIS_CLUSTER_NODES,
    queuePrefix: env.HERALD_QUEUE_PREFIX,
    host: env.HOST,
    port: env.PORT,
    publicUrl: (env.HERALD_PUBLIC_URL ?? `http://${env.HOST}:${env.PORT}`).replace(/\/+$/, ''),
    webhookSecret: env.HERALD_WEBHOOK_SECRET,
    apiKeys: env.HERALD_API_KEYS,
    apiRateLimit: env.HERALD_API_RATE_LIMIT,
    accounts,
    sandboxUrl: env.HERALD_SANDBOX_URL,
    maxUploadBytes: env.HERALD_MAX_UPLOAD_BYTES,
    sandboxApiKey: env.HERALD_SANDBOX_API_KEY,
    logLevel: env.LOG_LEVEL,
    sweepIntervalMs: env.HERALD_SWEEP_INTERVAL_MS,
    planHorizonMs: env.HERALD_PLAN_HORIZON_MS,
    maxLatenessMs: env.HERALD_MAX_LATENESS_MS,
    staleAfterMs: env.HERALD_STALE_AFTER_MS,
    eventsBatchSize: env.HERALD_EVENTS_BATCH_SIZE,
    unmatchedReportTtlMs: env.HERALD_UNMATCHED_REPORT_TTL_MS,
    shutdownTimeoutMs: env.HERALD_SHUTDOWN_TIMEOUT_MS,
    jobLockMs: env.HERALD_JOB_LOCK_MS,
    accountPauseMs: env.HERALD_ACCOUNT_PAUSE_MS,
    circuitFailures: env.HERALD_CIRCUIT_FAILURES,
    circuitProbeMs: env.HERALD_CIRCUIT_PROBE_MS,
    circuitProbeMaxMs: env.HERALD_CIRCUIT_PROBE_MAX_MS,
    retryMaxMs: env.HERALD_RETRY_MAX_MS,
    optOutKeywords: env.HERALD_OPT_OUT_KEYWORDS,
    eventsConcurrency: env.HERALD_EVENTS_CONCURRENCY,
    pollAfterMs: env.HERALD_POLL_AFTER_MS,
    pollIntervalMs: env.HERALD_POLL_INTERVAL_MS,
    pollBatchSize: env.HERALD_POLL_BATCH_SIZE,
  };
}

/** The webhook secret, for the processes that build or check webhook URLs. */
export function requireWebhookSecret(config: Config): string {
  if (!config.webhookSecret) {
    throw new ConfigError(
      'HERALD_WEBHOOK_SECRET: not set; it signs webhook URLs (32+ characters, e.g. `openssl rand -hex 32`)',
    );
  }
  return config.webhookSecret;
}
