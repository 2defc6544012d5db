import { ProviderError } from '../providers/errors.js';

/**
 * Postgres being briefly unreachable (restart, failover, network cut) must not lose or duplicate a
 * send. The send path therefore waits it out instead of failing the job:
 * - before the provider is called, failing the job would spend one of its retries (and after the
 *   last one leave its message QUEUED with a failed job in Redis that blocks re-adding it);
 * - after the provider answered, failing would forget the answer, and the re-run would find the
 *   message SENDING and count it UNKNOWN although we know it was sent.
 * While a job waits here it keeps its BullMQ lock (renewed through Redis) and its concurrency
 * slot, so a worker whose database is gone stops taking new jobs: that is the backoff.
 */

/** Errors that mean "the database could not be reached", not "the statement was wrong". */
export function isConnectionError(error: unknown): boolean {
  // A provider's own connection failure (a send that may be retried) is not the database's, and
  // BullMQ's rate-limit signal is deliberate: both must pass straight through.
  if (error instanceof ProviderError || (error as Error | undefined)?.name === 'RateLimitError')
    return false;
  const e = error as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN)$/.test(code))
    return true;
  // SQLSTATE class 08 (connection exception), 57P01-57P03 (admin shutdown, crash, cannot connect now).
  if (/^(08...|57P0[123])$/.test(code)) return true;
  const message = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended/i.test(
    message,
  );
}

export interface DbRetryOptions {
  /** Stop waiting (and rethrow) once this says so, e.g. when the process is shutting down. */
  giveUp?: () => boolean;
  onRetry?: (error: unknown, attempt: number, waitMs: number) => void;
  /** @defaultValue 100 */
  firstDelayMs?: number;
  /** @defaultValue 5000 */
  maxDelayMs?: number;
}

/** Runs `fn`, retrying while the database is unreachable, with capped exponential backoff and jitter. */
export async function withDbRetry<T>(
  fn: () => Promise<T>,
  options: DbRetryOptions = {},
): Promise<T> {
  const first = options.firstDelayMs ?? 100;
  const max = options.maxDelayMs ?? 5000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!isConnectionError(error) || options.giveUp?.()) throw error;
      const ceiling = Math.min(max, first * 2 ** (attempt - 1));
      // "Full jitter" halves: many workers losing the database together do not retry in step.
      const wait = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      options.onRetry?.(error, attempt, wait);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}
