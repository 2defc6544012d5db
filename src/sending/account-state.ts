import type { RedisClient } from '../queues/queues.js';

/** Why an account's sending is paused, shown by `herald accounts` and the API. */
export interface AccountPause {
  code: string;
  message: string;
  at: string;
  /** Sending resumes by itself at this time; if the problem persists it pauses again. */
  until: string;
}

const key = (prefix: string) => `${prefix}:account-pauses`;

/**
 * Account-wide problems (bad credentials, not provisioned, out of credit) pause the account's
 * queue instead of failing every message; this records why, where every process can see it.
 */
export async function recordAccountPause(
  redis: RedisClient,
  prefix: string,
  account: string,
  pause: AccountPause,
): Promise<void> {
  await redis.hset(key(prefix), account, JSON.stringify(pause));
}

/** Current pauses by account (expired ones are left out). */
export async function readAccountPauses(
  redis: RedisClient,
  prefix: string,
  now: Date,
): Promise<Record<string, AccountPause>> {
  const all = await redis.hgetall(key(prefix));
  const pauses: Record<string, AccountPause> = {};
  for (const [account, text] of Object.entries(all)) {
    const pause = JSON.parse(text) as AccountPause;
    if (Date.parse(pause.until) > now.getTime()) pauses[account] = pause;
  }
  return pauses;
}
