import type { Logger } from '../logger.js';
import type { ProviderAdapter } from '../providers/types.js';
import type { RedisClient } from '../queues/queues.js';
import { recordAccountPause } from './account-state.js';

/** Why sends are held back: the account's circuit is open until `waitMs` from now. */
export interface CircuitVerdict {
  open: boolean;
  /** How long the account's queue should wait before the next try. */
  waitMs: number;
  /** This caller won the right to send a trial batch (no health check): report its outcome. */
  trial?: boolean;
}

interface OpenState {
  openedAt: number;
  /** The probe may run from this time (epoch ms). */
  probeAt: number;
  /** Wait before the next probe if this one fails. */
  probeMs: number;
}

export interface CircuitSettings {
  failures: number;
  probeMs: number;
  probeMaxMs: number;
}

/** Where an account's open circuit is kept (absent: closed). */
const circuitStateKey = (prefix: string, account: string) => `${prefix}:circuit:${account}`;

/**
 * True while the account's circuit is open and its probe not yet due: its provider is down and
 * nobody will try it before then. Read by whoever routes messages to a campaign's fallback account
 * (planner, reroute pass). Once the probe is due this is false again, so the account gets traffic
 * for its trial batch (a provider with no health check is probed with an ordinary send); if the
 * trial fails the circuit reopens and routing moves on to the fallback again. Epoch ms, as the
 * breaker keeps its times.
 */
export async function isCircuitOpen(
  redis: RedisClient,
  prefix: string,
  account: string,
  now = Date.now(),
): Promise<boolean> {
  const raw = await redis.get(circuitStateKey(prefix, account));
  return raw !== null && now < (JSON.parse(raw) as OpenState).probeAt;
}

/** How long failures are counted together: this many failed requests within it open the circuit. */
const FAILURE_WINDOW_MS = 30_000;
/** How long one process may hold the probe before another may try. */
const PROBE_LEASE_MS = 30_000;

/**
 * A circuit breaker per account, shared by every process through Redis. A provider that is down
 * for minutes would otherwise get every message retried 8 times and then failed; instead, after
 * `failures` failed requests (unreachable, 5xx, no answer) in 30 s without a success, the circuit
 * opens: the account's queue stops (BullMQ rate limit, so no worker anywhere takes its jobs) and
 * its messages wait QUEUED. When the wait is over, one process probes: the adapter's documented
 * health check where it has one, else one ordinary batch as a trial. Success closes the circuit and
 * sending resumes by itself; failure opens it again for twice as long, up to `probeMaxMs`.
 */
export class CircuitBreaker {
  /** This process counted a failure since the last reset, so its next success must reset. */
  private dirty = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly account: string,
    private readonly adapter: ProviderAdapter,
    private readonly settings: CircuitSettings,
    private readonly logger: Logger,
  ) {}

  private get stateKey() {
    return circuitStateKey(this.prefix, this.account);
  }
  private get failuresKey() {
    return `${this.prefix}:circuit-failures:${this.account}`;
  }
  private get probeKey() {
    return `${this.prefix}:circuit-probe:${this.account}`;
  }

  /** Called before each request: may the batch go now? */
  async check(): Promise<CircuitVerdict> {
    const raw = await this.redis.get(this.stateKey);
    if (!raw) return { open: false, waitMs: 0 };
    const state = JSON.parse(raw) as OpenState;
    const now = Date.now();
    if (now < state.probeAt) return { open: true, waitMs: state.probeAt - now };
    // Half-open: one process probes, the others keep waiting.
    const won = await this.redis.set(this.probeKey, String(now), 'PX', PROBE_LEASE_MS, 'NX');
    if (won !== 'OK') return { open: true, waitMs: 1000 };
    if (!this.adapter.checkHealth) return { open: false, waitMs: 0, trial: true };
    let healthy = false;
    let detail = '';
    try {
      const health = await this.adapter.checkHealth();
      healthy = health.ok;
      detail = health.detail;
    } catch (error) {
      detail = (error as Error).message;
    }
    if (healthy) {
      await this.close('health check passed');
      return { open: false, waitMs: 0 };
    }
    const next = await this.reopen(state, `health check failed: ${detail}`);
    return { open: true, waitMs: next };
  }

  /** A request failed as a whole in a way that suggests the provider is down. */
  async recordFailure(trial: boolean, reason: string): Promise<void> {
    if (trial) {
      const raw = await this.redis.get(this.stateKey);
      const state = raw ? (JSON.parse(raw) as OpenState) : undefined;
      await this.reopen(state, `trial send failed: ${reason}`);
      return;
    }
    this.dirty = true;
    const count = await this.redis.incr(this.failuresKey);
    if (count === 1) await this.redis.pexpire(this.failuresKey, FAILURE_WINDOW_MS);
    if (count >= this.settings.failures) {
      const opened = await this.redis.set(
        this.stateKey,
        JSON.stringify(this.openState(this.settings.probeMs)),
        'NX',
      );
      if (opened === 'OK')
        await this.announce(this.settings.probeMs, `${count} requests failed: ${reason}`);
    }
  }

  /** A request was answered: the provider is up. */
  async recordSuccess(trial: boolean): Promise<void> {
    if (trial) {
      await this.close('trial send succeeded');
      return;
    }
    if (!this.dirty) return;
    this.dirty = false;
    await this.redis.del(this.failuresKey);
  }

  private openState(probeMs: number): OpenState {
    const now = Date.now();
    return { openedAt: now, probeAt: now + probeMs, probeMs };
  }

  private async reopen(previous: OpenState | undefined, reason: string): Promise<number> {
    const probeMs = Math.min(
      this.settings.probeMaxMs,
      previous ? previous.probeMs * 2 : this.settings.probeMs,
    );
    await this.redis.set(this.stateKey, JSON.stringify(this.openState(probeMs)));
    await this.redis.del(this.probeKey);
    await this.announce(probeMs, reason);
    return probeMs;
  }

  private async close(reason: string): Promise<void> {
    await this.redis.del(this.stateKey, this.failuresKey, this.probeKey);
    this.dirty = false;
    this.logger.warn({ reason }, 'provider answering again; circuit closed, sending resumes');
  }

  private async announce(probeMs: number, reason: string): Promise<void> {
    const now = new Date();
    this.logger.error({ probeMs, reason }, 'provider down; circuit open, sending stopped');
    await recordAccountPause(this.redis, this.prefix, this.account, {
      code: 'CIRCUIT_OPEN',
      message: `provider unavailable (${reason}); probing again in ${Math.round(probeMs / 1000)} s`,
      at: now.toISOString(),
      until: new Date(now.getTime() + probeMs).toISOString(),
    });
  }
}
