import { randomBytes } from 'node:crypto';
import type { RedisClient } from '../queues/queues.js';

/**
 * A cluster-wide rate of one account (its messages per second, or its segments per second for
 * providers whose limits count segments), as a reservation limiter (GCRA with no burst) kept in
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
 * set-rate`, field = the gate's key) if there is one, else the accounts file's. Every key shares
 * the prefix's hash tag, so the scripts are valid on Redis Cluster.
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
 * The second step, at the moment of sending: a log of the last second's grants per gate (member
 * "<count>:<random>", score = time in µs). The request may go only if, for every gate it needs,
 * the last second's grants plus this one stay within the rate; otherwise the answer is how long
 * until enough of them age out (the longest wait of any gate), and nothing is recorded.
 * Reservations alone are decided ahead of time, and a sender that wakes late (a busy event loop,
 * a GC pause) would then send together with the next one, bunching two slots into one instant;
 * this check is decided when the request actually goes, so such bunching can never push a second
 * over the rate. All of a request's gates are checked and recorded in one script: recording the
 * messages first and then waiting for the segments would log the messages too early, and a
 * sliding second of real sends could then hold more than the rate.
 *
 * KEYS: the overrides hash, then one log key per gate. ARGV: the member, then per gate its
 * override field, configured rate and count. A count above the rate (one 10-segment message on a
 * 5 segments/s account) counts as the whole second; a rate below 1 lets one through per second
 * (the reservations space them further apart).
 */
const CONFIRM = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local gates = #KEYS - 1
local rates = {}
local counts = {}
local wait = 0
for g = 1, gates do
  local base = 1 + (g - 1) * 3
  local rate = tonumber(redis.call('HGET', KEYS[1], ARGV[base + 1]) or ARGV[base + 2])
  local limit = math.max(1, rate)
  local n = math.min(tonumber(ARGV[base + 3]), math.max(1, math.floor(rate)))
  rates[g] = tostring(rate)
  counts[g] = n
  local key = KEYS[g + 1]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 1000000)
  local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local used = 0
  for i = 1, #entries, 2 do used = used + tonumber(string.match(entries[i], '^(%d+):')) end
  if used + n > limit then
    local w = 1000000
    local freed = 0
    for i = 1, #entries, 2 do
      freed = freed + tonumber(string.match(entries[i], '^(%d+):'))
      if used - freed + n <= limit then
        w = math.floor(tonumber(entries[i + 1]) + 1000000 - now) + 1
        break
      end
    end
    if w > wait then wait = w end
  end
end
if wait == 0 then
  for g = 1, gates do
    redis.call('ZADD', KEYS[g + 1], now, string.format('%d', counts[g]) .. ':' .. ARGV[1])
    redis.call('PEXPIRE', KEYS[g + 1], 2000)
  end
end
local result = { wait, tostring(now) }
for g = 1, gates do result[g + 2] = rates[g] end
return result
`;

/**
 * Share of the configured rate the reservations are spaced for. The confirm step already keeps
 * every second within the rate on Redis's clock; spacing reservations 0.5% wider leaves room for
 * a little network and event-loop jitter before the confirm step has to hold a request back.
 */
export const RATE_HEADROOM = 0.995;

export const rateOverridesKey = (prefix: string) => `${prefix}:account-rates`;
const slotKey = (prefix: string, key: string) => `${prefix}:rate-slot:${key}`;
const logKey = (prefix: string, key: string) => `${prefix}:rate-log:${key}`;

type ReserveClient = RedisClient & {
  heraldReserveSlot(
    slotKey: string,
    overridesKey: string,
    key: string,
    rate: number,
    count: number,
    headroom: number,
  ): Promise<[number, string]>;
  heraldConfirmSlots(
    ...keysAndArgs: Array<string | number>
  ): Promise<[number, string, ...string[]]>;
};

/**
 * One cluster-wide rate: an account's messages per second (keyed by the account's name), or its
 * segments per second (keyed `<account>:segments`, see segmentGateKey). A request that needs
 * several (messages and segments) takes them together with acquireTogether().
 */
export class RateGate {
  readonly redis: ReserveClient;
  /** The rate Redis last reported as in force (override or configured). */
  currentRate: number;

  constructor(
    redis: RedisClient,
    readonly prefix: string,
    /** The key of this rate: the override field and the slot and log keys' suffix. */
    readonly key: string,
    readonly configuredRate: number,
  ) {
    if (!('heraldReserveSlot' in redis)) {
      redis.defineCommand('heraldReserveSlot', { numberOfKeys: 2, lua: RESERVE });
    }
    if (!('heraldConfirmSlots' in redis)) {
      // The number of keys varies with the number of gates: given first on each call.
      redis.defineCommand('heraldConfirmSlots', { lua: CONFIRM });
    }
    this.redis = redis as ReserveClient;
    this.currentRate = configuredRate;
  }

  /**
   * Waits until `count` units (messages, or segments) may go in one request: first a reserved
   * slot (even spacing), then a check against the last second's actual sends (never above the
   * rate). A batch counts as `count`: the slot after it is `count` intervals later.
   * A batch larger than the whole rate could never pass the second check: callers keep batches
   * to a fraction of the rate (SendBatcher does).
   * @returns when the request was allowed, in µs on Redis's clock (what the guarantee is about).
   */
  acquire(count: number): Promise<number> {
    return acquireTogether([{ gate: this, count }]);
  }

  /** The first step only: a slot spaced after everyone else's. Returns how long to wait, in µs. */
  async reserve(count: number): Promise<number> {
    const [waitMicros, rate] = await this.redis.heraldReserveSlot(
      slotKey(this.prefix, this.key),
      rateOverridesKey(this.prefix),
      this.key,
      this.configuredRate,
      count,
      RATE_HEADROOM,
    );
    this.currentRate = Number(rate);
    return waitMicros;
  }
}

/** The gate key of an account's segments-per-second rate (and its override's field). */
export const segmentGateKey = (account: string) => `${account}:segments`;

/**
 * Waits until one request may go through every gate it needs (an account's message rate, and its
 * segment rate where it has one), each with its own count. The slots are reserved on all gates at
 * once and the request waits for the latest; then one script checks every gate's last second
 * and records the request in all of them, or in none (see CONFIRM).
 * @returns when the request was allowed, in µs on Redis's clock.
 */
export async function acquireTogether(
  demands: ReadonlyArray<{ gate: RateGate; count: number }>,
): Promise<number> {
  if (demands.length === 0) throw new Error('acquireTogether needs at least one gate');
  const { redis, prefix } = demands[0]!.gate;
  const waits = await Promise.all(demands.map(({ gate, count }) => gate.reserve(count)));
  const waitMicros = Math.max(...waits);
  if (waitMicros > 0) await sleepMicros(waitMicros);
  const member = randomBytes(6).toString('hex');
  const keys = [rateOverridesKey(prefix), ...demands.map(({ gate }) => logKey(prefix, gate.key))];
  const args = [
    member,
    ...demands.flatMap(({ gate, count }) => [gate.key, gate.configuredRate, count]),
  ];
  for (;;) {
    const [wait, grantedAt, ...rates] = await redis.heraldConfirmSlots(
      keys.length,
      ...keys,
      ...args,
    );
    demands.forEach(({ gate }, i) => (gate.currentRate = Number(rates[i])));
    if (wait <= 0) return Number(grantedAt);
    await sleepMicros(wait);
  }
}

/** setTimeout has millisecond resolution and may fire early by a fraction of one: round up. */
function sleepMicros(micros: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.ceil(micros / 1000)));
}

/**
 * Sets (or, with `undefined`, removes) a rate override; takes effect at once everywhere. `key` is
 * the account's name for its messages per second, segmentGateKey(name) for its segments.
 */
export async function setRateOverride(
  redis: RedisClient,
  prefix: string,
  key: string,
  rate: number | undefined,
): Promise<void> {
  if (rate === undefined) await redis.hdel(rateOverridesKey(prefix), key);
  else await redis.hset(rateOverridesKey(prefix), key, String(rate));
}

export async function readRateOverrides(
  redis: RedisClient,
  prefix: string,
): Promise<Record<string, number>> {
  const all = await redis.hgetall(rateOverridesKey(prefix));
  return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, Number(v)]));
}
