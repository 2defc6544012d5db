import { DelayedError, Worker, type Job } from 'bullmq';
import type { Account } from '../config/accounts.js';
import { MissingFieldError, renderTemplate } from '../messages/template.js';
import { PermanentSendError, RateLimitedError, type ProviderError } from '../providers/errors.js';
import { jobs } from '../queues/jobs.js';
import type { AppContext } from '../runtime/context.js';
import { nativeSchedulingFor } from '../providers/registry.js';
import { decideSendTime, timingRules } from '../scheduling/send-time.js';
import {
  deferMessage,
  explainUnclaimed,
  markOutcome,
  reclaimInterrupted,
  releaseMessage,
  type ClaimedMessage,
} from './message-status.js';
import { recordAccountPause } from './account-state.js';
import { countSendError } from './send-error-counts.js';
import type { SendBatcher } from './send-batcher.js';
import { withDbRetry } from './db-retry.js';
import type { StatusWriter } from './status-writer.js';

/** What a send job did; the job's return value, for logs and tests. */
export type SendJobResult =
  | 'sent'
  | 'scheduled'
  | 'failed'
  | 'unknown'
  | 'suppressed'
  | 'expired'
  | 'deferred'
  | 'already-done'
  | 'not-running'
  | 'rerouted'
  | 'missing';

/**
 * One send job: claim the message in Postgres, render it, hand it to the provider (through the
 * batcher), and record the result. The worker acts on the adapter's typed error, never on HTTP
 * codes (DESIGN invariant 3):
 * - permanent → the message ends FAILED/REJECTED with the reason;
 * - rate-limited → the message goes back to QUEUED and the whole account queue waits;
 * - retryable (definitely not sent) → back to QUEUED and retried with backoff and jitter;
 * - ambiguous (request written, no answer) → UNKNOWN under at-most-once, retried under at-least-once;
 * - account problem → back to QUEUED and the account's queue waits (see README "Operations").
 */
export async function processSendJob(
  context: AppContext,
  job: Job,
  account: Account,
  batcher: SendBatcher,
  options: {
    /** Coalesces this process's claims and SENT writes. */
    writer: StatusWriter;
    /** The job's lock token: a job that came early goes back to BullMQ's delayed set with it. */
    token?: string;
    /** True once the worker is stopping: stop waiting for an unreachable database before sending. */
    stopping?: () => boolean;
  },
): Promise<SendJobResult> {
  const { stopping, writer, token } = options;
  const { pool } = context.db;
  const { messageId } = jobs.send.schema.parse(job.data);
  const log = context.logger.child({ messageId, account: account.name });
  // Before the provider is called, give up waiting for the database when stopping (the job goes
  // back to Redis untouched); after, keep trying: the provider's answer must be written.
  const beforeSend = <T>(fn: () => Promise<T>) =>
    withDbRetry(fn, { giveUp: stopping, onRetry: dbRetryLog(log) });
  const afterSend = <T>(fn: () => Promise<T>) => withDbRetry(fn, { onRetry: dbRetryLog(log) });

  let claimed: ClaimedMessage | undefined = await beforeSend(() => writer.claim(messageId));
  if (!claimed) {
    const found = await beforeSend(() => explainUnclaimed(pool, messageId));
    if (!found) return 'missing';
    // Moved to the campaign's fallback account (this job stayed behind in our queue), or this is
    // the fallback's job for a message still routed to the campaign's account: whatever its status,
    // it is the other account's to send or to settle. Never a second send.
    if (found.route !== account.name) return 'rerouted';
    if (found.campaignStatus !== 'RUNNING') return 'not-running';
    if (found.status !== 'SENDING' && found.status !== 'UNKNOWN') return 'already-done';
    // An earlier attempt claimed it and stopped before recording what the provider said.
    if (account.deliveryPolicy === 'at-most-once') {
      await beforeSend(() =>
        markOutcome(
          pool,
          messageId,
          'UNKNOWN',
          {
            code: 'SEND_INTERRUPTED',
            message: 'a worker stopped while sending; the provider may have sent it',
          },
          context.clock.now(),
        ),
      );
      log.warn('send interrupted earlier; marked UNKNOWN (at-most-once)');
      return 'unknown';
    }
    claimed = await beforeSend(() =>
      reclaimInterrupted(pool, messageId, context.clock.now(), account.name),
    );
    if (!claimed) return 'already-done';
    log.warn('send interrupted earlier; sending again (at-least-once)');
  }
  if (claimed.status === 'SUPPRESSED') return 'suppressed';

  // The last word on time, whatever the job's delay said: a window that closed while the message
  // waited, a job that came early (re-added, another machine's clock), a time missed while
  // workers were down. The provider has not been called, so stepping back is safe.
  const now = context.clock.now();
  const decision = decideSendTime(
    claimed.timing,
    timingRules(claimed.campaign, context.config.maxLatenessMs),
    now,
    nativeSchedulingFor(account),
  );
  if (decision.action === 'expire') {
    await afterSend(() =>
      markOutcome(
        pool,
        messageId,
        'EXPIRED',
        { code: decision.code, message: decision.reason },
        now,
      ),
    );
    log.warn({ code: decision.code }, 'message missed its send time; expired');
    return 'expired';
  }
  if (decision.action === 'wait') {
    const waitMs = decision.until.getTime() - now.getTime();
    if (waitMs > context.config.planHorizonMs || !token) {
      await afterSend(() => deferMessage(pool, messageId, decision.until, now));
      return 'deferred';
    }
    await afterSend(() => releaseMessage(pool, messageId, now, { notAttempted: true }));
    // BullMQ's delays run on this machine's real clock; the wait was decided on the context's.
    await job.moveToDelayed(Date.now() + waitMs, token);
    throw new DelayedError();
  }

  let body: string;
  try {
    body = renderTemplate(claimed.template, claimed.fields);
  } catch (error) {
    if (!(error instanceof MissingFieldError)) throw error;
    await afterSend(() =>
      markOutcome(
        pool,
        messageId,
        'FAILED',
        { code: 'TEMPLATE_FIELD_MISSING', message: error.message },
        context.clock.now(),
      ),
    );
    return 'failed';
  }

  const result = await batcher.send({
    messageId,
    to: claimed.phone,
    body,
    sendAt: decision.sendAt,
    segments: claimed.segments,
  });
  if (result.ok) {
    await afterSend(() => writer.markSent(messageId, { ...result, scheduledFor: decision.sendAt }));
    return decision.sendAt ? 'scheduled' : 'sent';
  }
  return afterSend(() => handleFailure(context, job, account, messageId, result.error));
}

function dbRetryLog(log: AppContext['logger']) {
  return (error: unknown, attempt: number, waitMs: number) => {
    if (attempt === 1 || attempt % 10 === 0)
      log.warn({ err: error, attempt, waitMs }, 'database unreachable; waiting to retry');
  };
}

async function handleFailure(
  context: AppContext,
  job: Job,
  account: Account,
  messageId: string,
  error: ProviderError,
): Promise<SendJobResult> {
  const { pool } = context.db;
  const now = context.clock.now();
  const reason = { code: error.code, message: error.message };
  const log = context.logger.child({ messageId, account: account.name, code: error.code });
  // Metrics only: a Redis hiccup here must not change what happens to the message.
  await countSendError(context.redis, context.config.queuePrefix, account.name, error).catch(
    () => {},
  );
  switch (error.kind) {
    case 'permanent': {
      const status = error instanceof PermanentSendError ? error.finalStatus : 'FAILED';
      await markOutcome(pool, messageId, status, reason, now);
      log.debug({ status }, 'send refused permanently');
      return 'failed';
    }
    case 'rate-limited':
    case 'account': {
      await releaseMessage(pool, messageId, now);
      const wait =
        error instanceof RateLimitedError ? error.retryAfterMs : context.config.accountPauseMs;
      if (error.kind === 'account') {
        log.error({ err: error }, 'provider refused the account; its sending is paused');
        await recordAccountPause(context.redis, context.config.queuePrefix, account.name, {
          code: error.code,
          message: error.message,
          at: now.toISOString(),
          until: new Date(now.getTime() + wait).toISOString(),
        });
      } else {
        log.warn({ waitMs: wait }, 'provider rate limit; account queue waits');
      }
      await context.queues.send(account.name).rateLimit(wait);
      throw Worker.RateLimitError();
    }
    case 'ambiguous':
      if (account.deliveryPolicy === 'at-most-once') {
        await markOutcome(pool, messageId, 'UNKNOWN', reason, now);
        log.warn('send outcome unknown; marked UNKNOWN (at-most-once)');
        return 'unknown';
      }
      return retryOrGiveUp(context, job, messageId, error);
    case 'retryable':
      return retryOrGiveUp(context, job, messageId, error);
  }
}

async function retryOrGiveUp(
  context: AppContext,
  job: Job,
  messageId: string,
  error: ProviderError,
): Promise<SendJobResult> {
  const now = context.clock.now();
  if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) {
    await markOutcome(
      context.db.pool,
      messageId,
      'FAILED',
      {
        code: error.code,
        message: `gave up after ${job.attemptsMade + 1} attempts: ${error.message}`,
      },
      now,
    );
    return 'failed';
  }
  await releaseMessage(context.db.pool, messageId, now);
  throw error; // BullMQ retries it with exponential backoff and jitter (see queues/jobs.ts)
}
