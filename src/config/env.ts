import { z } from 'zod';
import { ConfigError } from '../errors.js';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();

/**
 * Every environment variable Herald reads, with its default. README.md "Configuration" lists the
 * same table; keep them together.
 */
const envSchema = z.object({
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/, error: 'must be a postgresql:// URL' })
    .default('postgresql://postgres@127.0.0.1:5432/herald'),
  REDIS_URL: z
    .url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' })
    .default('redis://127.0.0.1:6379'),
  /**
   * Redis Cluster seed nodes, comma-separated `host:port` (ioredis's Redis.Cluster takes seeds and
   * discovers the rest). When set, Herald talks to the cluster; REDIS_URL then only supplies the
   * user, password and TLS (`rediss:`), and HERALD_QUEUE_PREFIX must hold a hash tag.
   */
  REDIS_CLUSTER_NODES: z
    .string()
    .optional()
    .transform((v) =>
      (v ?? '')
        .split(',')
        .map((n) => n.trim())
        .filter(Boolean),
    )
    .refine(
      (nodes) => nodes.every((n) => /^(rediss?:\/\/)?[^\s:/]+:\d+$/.test(n)),
      'must be comma-separated host:port pairs',
    ),
  /** Prefix of every Redis key Herald writes; use a hash tag such as {herald} on Redis Cluster. */
  HERALD_QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_{}:-]+$/, 'may hold only letters, digits, _ - : { }')
    .default('herald'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: port.default(3000),
  /** Base URL at which providers reach this API's webhooks. Defaults to http://HOST:PORT. */
  HERALD_PUBLIC_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s):// URL' }).optional(),
  /** Signs the tokens in webhook URLs. At least 32 characters. */
  HERALD_WEBHOOK_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  /** Comma-separated Bearer keys accepted by the HTTP API. */
  HERALD_API_KEYS: z
    .string()
    .optional()
    .transform((v) =>
      (v ?? '')
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean),
    )
    .refine((keys) => keys.every((k) => k.length >= 16), 'each key must be at least 16 characters'),
  /** API requests per minute per API key (per client IP without a valid key), across API processes. */
  HERALD_API_RATE_LIMIT: positiveInt.default(600),
  /** JSON file declaring provider accounts; unset means the built-in `sandbox` account only. */
  HERALD_ACCOUNTS_FILE: z.string().min(1).optional(),
  /** Base URL of the sandbox provider used by the built-in `sandbox` account. */
  HERALD_SANDBOX_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http(s):// URL' })
    .default('http://127.0.0.1:4010'),
  /** Key the sandbox provider accepts, and the built-in `sandbox` account sends. */
  HERALD_SANDBOX_API_KEY: z.string().min(1).default('sandbox-key'),
  /** Largest recipient list accepted in one upload, in bytes (256 MiB ≈ 5 million rows). */
  HERALD_MAX_UPLOAD_BYTES: positiveInt.default(256 * 1024 * 1024),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** How often the sweeper plans running campaigns and looks for lost jobs. */
  HERALD_SWEEP_INTERVAL_MS: positiveInt.default(2000),
  /** Messages due within this horizon are put in Redis as delayed jobs; the rest wait in Postgres. */
  HERALD_PLAN_HORIZON_MS: positiveInt.default(5 * 60_000),
  /**
   * A message whose send time passed more than this ago (workers were down) is EXPIRED instead of
   * sent; a campaign may set its own. At least a minute: sending itself takes a moment.
   */
  HERALD_MAX_LATENESS_MS: positiveInt.min(60_000).default(60 * 60_000),
  /** A queued or sending message untouched this long is assumed lost from Redis and re-enqueued. */
  HERALD_STALE_AFTER_MS: positiveInt.default(10 * 60_000),
  /** Delivery reports folded into messages per database round trip. */
  HERALD_EVENTS_BATCH_SIZE: positiveInt.max(10_000).default(1000),
  /** A delivery report that matches no message is kept this long, then expired and counted. */
  HERALD_UNMATCHED_REPORT_TTL_MS: positiveInt.default(24 * 3600_000),
  /**
   * A job whose worker stops renewing its lock this long (process killed, machine lost) is handed
   * to another worker; its claim in Postgres decides what the re-run may do.
   */
  HERALD_JOB_LOCK_MS: positiveInt.min(1000).default(30_000),
  /** How long an account's sending pauses when the provider refuses the account as a whole. */
  HERALD_ACCOUNT_PAUSE_MS: positiveInt.default(60_000),
  /**
   * Consecutive whole-request failures (provider unreachable, 5xx, no answer) after which an
   * account's circuit opens: its sending stops and a health probe runs until the provider answers.
   */
  HERALD_CIRCUIT_FAILURES: positiveInt.default(10),
  /** First wait of an open circuit before its probe; doubles while the probe fails. */
  HERALD_CIRCUIT_PROBE_MS: positiveInt.default(5000),
  /** Longest wait between probes of an open circuit. */
  HERALD_CIRCUIT_PROBE_MAX_MS: positiveInt.default(60_000),
  /** Longest backoff between retries of a send the provider definitely did not take. */
  HERALD_RETRY_MAX_MS: positiveInt.default(60_000),
  /** How long a stopping worker waits for in-flight sends before it exits. */
  HERALD_SHUTDOWN_TIMEOUT_MS: positiveInt.default(30_000),
  /**
   * Replies that opt the sender out (suppression list), comma-separated; matched ignoring case,
   * spaces and dashes, as the whole reply or its first word (src/events/opt-outs.ts).
   */
  HERALD_OPT_OUT_KEYWORDS: z
    .string()
    .default('STOP,STOPALL,UNSUBSCRIBE,OPTOUT')
    .transform((v) =>
      v
        .split(',')
        .map((k) =>
          k
            .normalize('NFKC')
            .toUpperCase()
            .replace(/[\s\-_]+/g, ''),
        )
        .filter(Boolean),
    )
    .refine((keywords) => keywords.length > 0, 'must name at least one keyword'),
  /** Folders per events worker process while a backlog of delivery reports lasts. */
  HERALD_EVENTS_CONCURRENCY: positiveInt.max(32).default(4),
  /** A message SENT this long without a final report is polled, where the provider allows. */
  HERALD_POLL_AFTER_MS: positiveInt.default(30 * 60_000),
  /** How often the polling fallback looks for such messages. */
  HERALD_POLL_INTERVAL_MS: positiveInt.min(1000).default(60_000),
  /** Messages polled per account per pass at most (the provider's own budget limits it too). */
  HERALD_POLL_BATCH_SIZE: positiveInt.max(10_000).default(500),
});

export type Env = z.infer<typeof envSchema>;

/** Reads and checks the environment; a problem is one line naming the variable. */
export function readEnv(source: NodeJS.ProcessEnv = process.env): Env {
  // An empty variable means "not set", as in most twelve-factor tools.
  const present = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? 'environment');
    throw new ConfigError(`${name}: ${issue.message}`);
  }
  // On a cluster every key of one BullMQ queue must hash to one slot, or its scripts fail.
  if (
    parsed.data.REDIS_CLUSTER_NODES.length > 0 &&
    !/\{[^}]+\}/.test(parsed.data.HERALD_QUEUE_PREFIX)
  )
    throw new ConfigError(
      'HERALD_QUEUE_PREFIX: must hold a hash tag such as {herald} when REDIS_CLUSTER_NODES is set',
    );
  return parsed.data;
}
