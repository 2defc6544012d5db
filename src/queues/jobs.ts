import { z } from 'zod';

/** Name of the send queue's backoff strategy: exponential with jitter and a maximum. */
export const SEND_BACKOFF = 'capped-exponential';

/**
 * The job catalog: each job name with its payload schema and retry policy, in one place.
 * Payloads carry ids only; Postgres holds the truth and is read when the job runs.
 */
export const jobs = {
  /** Send one message. jobId = message id, so re-enqueueing the same message is a no-op. */
  send: {
    name: 'send',
    schema: z.object({ messageId: z.uuid(), campaignId: z.uuid() }),
    /** Retries apply only to definite not-sent failures (connection refused, documented 5xx). */
    options: {
      attempts: 8,
      // Doubling from 1 s with jitter, capped at HERALD_RETRY_MAX_MS (send-worker.ts computes it).
      backoff: { type: SEND_BACKOFF, delay: 1000, jitter: 0.5 },
      removeOnComplete: true,
      removeOnFail: { age: 7 * 24 * 3600 },
    },
  },
  /** Enqueue a running campaign's due messages, page by page. */
  planCampaign: {
    name: 'plan-campaign',
    schema: z.object({ campaignId: z.uuid() }),
    options: {
      attempts: 5,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: true,
      removeOnFail: 100,
    },
  },
  /** Periodic: plan running campaigns, start scheduled ones, re-enqueue lost jobs, complete finished ones. */
  sweep: {
    name: 'sweep',
    schema: z.object({}),
    options: { removeOnComplete: true, removeOnFail: 100 },
  },
  /**
   * Cancel at the provider the messages of a cancelled campaign that it holds until their time
   * (native scheduling). Retried while the provider refuses or is down; each message is cancelled
   * once (its status moves SCHEDULED → CANCELLED), so a retry asks only for the rest.
   */
  cancelScheduled: {
    name: 'cancel-scheduled',
    schema: z.object({ campaignId: z.uuid() }),
    options: {
      attempts: 12,
      backoff: { type: 'exponential', delay: 5000 },
      removeOnComplete: true,
      removeOnFail: 100,
    },
  },
  /** Periodic: ask providers about messages SENT long ago without a final report (src/polling/). */
  pollReports: {
    name: 'poll-reports',
    schema: z.object({}),
    options: { removeOnComplete: true, removeOnFail: 100 },
  },
} as const;

export type SendJob = z.infer<typeof jobs.send.schema>;
export type PlanCampaignJob = z.infer<typeof jobs.planCampaign.schema>;

/**
 * A send job as Queue.addBulk takes it: jobId = message id (adding it again while it exists is a
 * no-op), delayed by the time left until the message may go.
 */
export function sendJobOf(messageId: string, campaignId: string, delayMs = 0) {
  return {
    name: jobs.send.name,
    data: { messageId, campaignId } satisfies SendJob,
    opts: { ...jobs.send.options, jobId: messageId, delay: Math.max(0, delayMs) },
  };
}
