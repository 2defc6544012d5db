import type { RedisClient } from '../queues/queues.js';
import type { ProviderError } from '../providers/errors.js';

/**
 * Provider errors by class (permanent, rate-limited, retryable, ambiguous, account), counted in
 * Redis so that `/metrics` on any API process shows what every worker process met. One HINCRBY
 * per failed send; successful sends cost nothing.
 */
const key = (prefix: string) => `${prefix}:send-errors`;

export async function countSendError(
  redis: RedisClient,
  prefix: string,
  account: string,
  error: ProviderError,
): Promise<void> {
  await redis.hincrby(key(prefix), `${account}|${error.kind}`, 1);
}

export async function readSendErrorCounts(
  redis: RedisClient,
  prefix: string,
): Promise<Array<{ account: string; kind: string; count: number }>> {
  const all = await redis.hgetall(key(prefix));
  return Object.entries(all).map(([field, count]) => {
    const [account = '', kind = ''] = field.split('|');
    return { account, kind, count: Number(count) };
  });
}
