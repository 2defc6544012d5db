import { randomBytes } from 'node:crypto';
import type { RedisClient } from '../queues/queues.js';

/**
 * The cluster-wide rate of one account, as a reservation limiter (GCRA with no burst) kept in
 * Redis. Every process asks Redis for the next free slot before each provider request; the script
 * hands out slots exactly one emission interval (1 / rate) apart, on Redis's own clock, so however
 * many workers on however many machines send, no 1-second window holds more than `rate` grants.
 *
 * Why not BullMQ's `limiter`: it is a fixed window (max jobs per duration, counter expiring after
 * `duration`), which lets a whole window's jobs start together at the end of one window and again
 * at the start of the next, so a sliding second can see up to rate × (1 + 1/windows) and the jobs
 * start in bursts. It also counts job starts, not provider requests, and is fixed when the worker
 * starts, so a new rate would need a restart. This gate reads the rate on every call.
 *
 * The rate in force is the override in `<prefix>:account-rates` (set by `herald accounts
 * set-rate`) if there is one, else the accounts file's. Both keys share the prefix's hash tag, so
 * the script is valid on Redis Cluster.
 */
const RESERVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or ARGV[2])
local interval = 1000000 / (rate * tonumber(ARGV[4]))
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(tat, now)
local nextTat = slot + interval * tonumber(ARGV[3])
redis.call('SET', KEYS[1], string.format('%.0f', nextTat), 'PX', math.ceil((nextTat - now) / 1000) + 60000)
return { math.floor(slot - now), tostring(rate) }
`;

/**
 * The second step, at the moment of sending: a log of the last second's grants (member
 * "<count>:<random>", score = time in µs). The request may go only if the last second's grants plus
 * this one stay within the rate; otherwise the answer is how long until enough of them age out.
 * Reservations alone are decided ahead of time, and a sender that wakes late (a busy event loop,
 * a GC pause) would then send together with the next one, bunching two slots into one instant;
 * this check is decided when the request actually goes, so such bunching can never push a second
 * over the rate.
 */
const CONFIRM = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or ARGV[2])
local n = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1000000)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do used = used + tonumber(string.match(entries[i], '^(%d+):')) end
if used + n <= rate then
  redis.call('ZADD', KEYS[1], now, n .. ':' .. ARGV[4])
  redis.call('PEXPIRE', KEYS[1], 2000)
  return { 0, tostring(rate), tostring(now) }
end
local freed = 0
for i = 1, #entries, 2 do
  freed = freed + tonumber(string.match(entries[i], '^(%d+):'))
  if used - freed + n <= rate then
    return { math.floor(tonumber(entries[i + 1]) + 1000000 - now) + 1, tostring(rate) }
  end
end
return { 1000000, tostring(rate) }
`;

/**
 * Share of the configured rate the reservations are spaced for. The confirm step already keeps
 * every second within the rate on Redis's clock; spacing reservations 0.5% wider leaves room for
 * a little network and event-loop jitter before the confirm step has to hold a request back.
 */
export const RATE_HEADROOM = 0.995;

export const rateOverridesKey = (prefix: string) => `${prefix}:account-rates`;
const slotKey = (prefix: string, account: string) => `${prefix}:rate-slot:${account}`;
const logKey = (prefix: string, account: string) => `${prefix}:rate-log:${account}`;

type ReserveClient = RedisClient & {
  heraldReserveSlot(
    slotKey: string,
    overridesKey: string,
    account: string,
    rate: number,
    count: number,
    headroom: number,
  ): Promise<[number, string]>;
  heraldConfirmSlot(
    logKey: string,
    overridesKey: string,
    account: string,
    rate: number,
    count: number,
    member: string,
  ): Promise<[number, string, string?]>;
};

export class RateGate {
  private readonly redis: ReserveClient;
  /** The rate Redis last reported as in force (override or configured). */
  currentRate: number;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    private readonly account: string,
    private readonly configuredRate: number,
  ) {
    if (!('heraldReserveSlot' in redis)) {
      redis.defineCommand('heraldReserveSlot', { numberOfKeys: 2, lua: RESERVE });
      redis.defineCommand('heraldConfirmSlot', { numberOfKeys: 2, lua: CONFIRM });
    }
    this.redis = redis as ReserveClient;
    this.currentRate = configuredRate;
  }

  /**
   * Waits until `count` messages may go in one request: first a reserved slot (even spacing), then
   * a check against the last second's actual sends (never above the rate). A batch counts as
   * `count` messages: the slot after it is `count` intervals later.
   * A batch larger than the whole rate could never pass the second check: callers keep batches
   * to a fraction of the rate (SendBatcher does).
   * @returns when the request was allowed, in µs on Redis's clock (what the guarantee is about).
   */
  async acquire(count: number): Promise<number> {
    const [waitMicros, rate] = await this.redis.heraldReserveSlot(
      slotKey(this.prefix, this.account),
      rateOverridesKey(this.prefix),
      this.account,
      this.configuredRate,
      count,
      RATE_HEADROOM,
    );
    this.currentRate = Number(rate);
    if (waitMicros > 0) await sleepMicros(waitMicros);
    const member = randomBytes(6).toString('hex');
    for (;;) {
      const [wait, current, grantedAt] = await this.redis.heraldConfirmSlot(
        logKey(this.prefix, this.account),
        rateOverridesKey(this.prefix),
        this.account,
        this.configuredRate,
        Math.min(count, Math.max(1, Math.floor(this.currentRate))),
        member,
      );
      this.currentRate = Number(current);
      if (wait <= 0) return Number(grantedAt);
      await sleepMicros(wait);
    }
  }
}

/** setTimeout has millisecond resolution and may fire early by a fraction of one: round up. */
function sleepMicros(micros: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.ceil(micros / 1000)));
}

/** Sets (or, with `undefined`, removes) an account's rate override; takes effect at once everywhere. */
export async function setRateOverride(
  redis: RedisClient,
  prefix: string,
  account: string,
  rate: number | undefined,
): Promise<void> {
  if (rate === undefined) await redis.hdel(rateOverridesKey(prefix), account);
  else await redis.hset(rateOverridesKey(prefix), account, String(rate));
}

export async function readRateOverrides(
  redis: RedisClient,
  prefix: string,
): Promise<Record<string, number>> {
  const all = await redis.hgetall(rateOverridesKey(prefix));
  return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, Number(v)]));
}
