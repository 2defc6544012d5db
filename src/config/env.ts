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
  /** How long a stopping worker waits for in-flight sends before it exits. */
  HERALD_SHUTDOWN_TIMEOUT_MS: positiveInt.default(30_000),
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
  return parsed.data;
}
