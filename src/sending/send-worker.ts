import { Worker } from 'bullmq';
import type { Account } from '../config/accounts.js';
import { sendQueueName } from '../queues/queues.js';
import type { AppContext } from '../runtime/context.js';
import { SendBatcher } from './send-batcher.js';
import { processSendJob } from './send-message.js';

/** Upper bound on jobs one process works on at once per account (they mostly wait on I/O). */
const MAX_JOB_CONCURRENCY = 200;

/**
 * The account's rate as a BullMQ limiter. The limiter is global to the queue across every worker
 * process, so this is the account's cluster-wide rate. Windows of ~100 ms instead of 1 s keep
 * sending smooth instead of a burst at the top of each second.
 */
export function limiterFor(rate: number): { max: number; duration: number } {
  const max = Math.max(1, Math.round(rate / 10));
  return { max, duration: Math.round((1000 * max) / rate) };
}

/** Starts one BullMQ worker per configured account. */
export function startSendWorkers(context: AppContext): Worker[] {
  return context.config.accounts.all().map((account) => startSendWorker(context, account));
}

function startSendWorker(context: AppContext, account: Account): Worker {
  const adapter = context.providers.get(account.name);
  const batcher = new SendBatcher(adapter);
  const log = context.logger.child({ account: account.name });
  // Enough concurrent jobs to fill the account's requests in flight with full batches.
  const concurrency = Math.min(MAX_JOB_CONCURRENCY, account.concurrency * adapter.maxBatchSize);
  const worker = new Worker(
    sendQueueName(account.name),
    (job) => processSendJob(context, job, account, batcher),
    {
      connection: context.redis,
      prefix: context.config.queuePrefix,
      concurrency,
      limiter: limiterFor(account.rate),
      lockDuration: context.config.jobLockMs,
      stalledInterval: context.config.jobLockMs,
      // A re-run is safe (the claim in Postgres guards it), so a job whose worker died more than
      // once is run again rather than failed with its message left in flight.
      maxStalledCount: 20,
    },
  );
  worker.on('failed', (job, error) => {
    log.debug(
      { messageId: job?.id, attempt: job?.attemptsMade, err: error },
      'send attempt failed; will retry',
    );
  });
  worker.on('error', (error) => log.error({ err: error }, 'send worker error'));
  log.info({ rate: account.rate, concurrency }, 'send worker started');
  return worker;
}
