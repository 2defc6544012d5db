import { Worker } from 'bullmq';
import type { Account } from '../config/accounts.js';
import { sendQueueName } from '../queues/queues.js';
import type { AppContext } from '../runtime/context.js';
import { cappedExponentialBackoff } from './backoff.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { RateGate, segmentGateKey } from './rate-gate.js';
import { SendBatcher } from './send-batcher.js';
import { StatusWriter } from './status-writer.js';
import { processSendJob } from './send-message.js';

/** Upper bound on jobs one process works on at once per account (they mostly wait on I/O). */
const MAX_JOB_CONCURRENCY = 200;
/**
 * A job is claimed (SENDING in Postgres) before it waits for its rate slot. Taking at most about
 * this many seconds of the account's rate at once keeps that wait short, so a worker killed or
 * stopped leaves few claimed-but-unsent messages behind.
 */
const CLAIM_AHEAD_SECONDS = 0.25;
/** How often a worker adopts a changed rate's concurrency (the rate itself applies at once). */
const RATE_REFRESH_MS = 2000;

/**
 * BullMQ's limiter is kept only as the switch that `queue.rateLimit(ms)` (429s, open circuits,
 * refused accounts) pauses: the queue's limit must be at least this for that pause to be checked.
 * The account's actual rate is enforced by the RateGate in Redis, per provider request.
 */
const PAUSE_SWITCH_LIMITER = { max: 1_000_000, duration: 1000 };

/**
 * Jobs worked at once for a rate: enough to fill the requests in flight, not far beyond the rate.
 * `rate` is the most messages a second the account can send now: its message rate, or its segment
 * rate where that is lower (a message is at least one segment), so claims stay a short wait ahead.
 */
export function concurrencyFor(account: Account, maxBatchSize: number, rate: number): number {
  return Math.max(
    1,
    Math.min(
      MAX_JOB_CONCURRENCY,
      account.concurrency * maxBatchSize,
      Math.ceil(rate * CLAIM_AHEAD_SECONDS),
    ),
  );
}

/** Starts one BullMQ worker per configured account. */
export function startSendWorkers(context: AppContext): Worker[] {
  return context.config.accounts.all().map((account) => startSendWorker(context, account));
}

function startSendWorker(context: AppContext, account: Account): Worker {
  const { config } = context;
  const adapter = context.providers.get(account.name);
  const log = context.logger.child({ account: account.name });
  const gate = new RateGate(context.redis, config.queuePrefix, account.name, account.rate);
  const segmentGate =
    account.segmentRate === undefined
      ? undefined
      : new RateGate(
          context.redis,
          config.queuePrefix,
          segmentGateKey(account.name),
          account.segmentRate,
        );
  const messageRate = () => Math.min(gate.currentRate, segmentGate?.currentRate ?? Infinity);
  const circuit = new CircuitBreaker(
    context.redis,
    config.queuePrefix,
    account.name,
    adapter,
    {
      failures: config.circuitFailures,
      probeMs: config.circuitProbeMs,
      probeMaxMs: config.circuitProbeMaxMs,
    },
    log,
  );
  const batcher = new SendBatcher(adapter, { gate, segmentGate, circuit });
  const writer = new StatusWriter(context.db.pool, () => context.clock.now(), account.name);
  let stopping = false;
  const worker = new Worker(
    sendQueueName(account.name),
    (job, token) =>
      processSendJob(context, job, account, batcher, { writer, token, stopping: () => stopping }),
    {
      connection: context.redis,
      prefix: config.queuePrefix,
      concurrency: concurrencyFor(account, adapter.maxBatchSize, messageRate()),
      limiter: PAUSE_SWITCH_LIMITER,
      lockDuration: config.jobLockMs,
      stalledInterval: config.jobLockMs,
      // A re-run is safe (the claim in Postgres guards it), so a job whose worker died more than
      // once is run again rather than failed with its message left in flight.
      maxStalledCount: 20,
      settings: { backoffStrategy: cappedExponentialBackoff(config.retryMaxMs) },
    },
  );
  // A rate changed with `herald accounts set-rate` reaches the gates on their next request; the
  // number of jobs taken at once follows it here.
  const refresh = setInterval(() => {
    const wanted = concurrencyFor(account, adapter.maxBatchSize, messageRate());
    if (wanted !== worker.concurrency) {
      worker.concurrency = wanted;
      log.info(
        { rate: gate.currentRate, segmentRate: segmentGate?.currentRate, concurrency: wanted },
        'account rate changed',
      );
    }
  }, RATE_REFRESH_MS);
  refresh.unref();
  const close = worker.close.bind(worker);
  worker.close = (force?: boolean) => {
    stopping = true;
    clearInterval(refresh);
    return close(force);
  };
  worker.on('failed', (job, error) => {
    log.debug(
      { messageId: job?.id, attempt: job?.attemptsMade, err: error },
      'send attempt failed; will retry',
    );
  });
  worker.on('error', (error) => log.error({ err: error }, 'send worker error'));
  log.info(
    { rate: account.rate, segmentRate: account.segmentRate, concurrency: worker.concurrency },
    'send worker started',
  );
  return worker;
}
