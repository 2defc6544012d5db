import type { Worker } from 'bullmq';
import { startControlWorker } from '../campaigns/control-worker.js';
import { startEventsWorker, type EventsWorker } from '../events/events-worker.js';
import { startSendWorkers } from '../sending/send-worker.js';
import type { AppContext } from './context.js';

export const WORKER_ROLES = ['send', 'events', 'planner'] as const;
export type WorkerRole = (typeof WORKER_ROLES)[number];

export interface RunningWorkers {
  /** Stops taking jobs and waits for in-flight work, up to the shutdown timeout. */
  close(): Promise<void>;
  /** The BullMQ workers, for tests and metrics. */
  bullWorkers: Worker[];
}

/**
 * Starts the chosen worker roles in this process. Every role is safe to run in many processes on
 * many machines at once: send and planner through BullMQ, events through SKIP LOCKED.
 */
export async function startWorkers(
  context: AppContext,
  roles: readonly WorkerRole[] = WORKER_ROLES,
): Promise<RunningWorkers> {
  const bullWorkers: Worker[] = [];
  let events: EventsWorker | undefined;
  if (roles.includes('planner')) bullWorkers.push(await startControlWorker(context));
  if (roles.includes('send')) bullWorkers.push(...startSendWorkers(context));
  if (roles.includes('events')) events = startEventsWorker(context);
  context.logger.info({ roles }, 'workers started');

  return {
    bullWorkers,
    async close() {
      const timeout = context.config.shutdownTimeoutMs;
      await Promise.all([
        ...bullWorkers.map((worker) => closeWithin(worker, timeout, context)),
        events?.close(),
      ]);
    },
  };
}

/**
 * worker.close() waits for active jobs with no limit of its own: bound it. On timeout we stop
 * waiting rather than call close(true): once close() has begun, BullMQ hands every later call,
 * forced or not, the same promise that waits for the jobs. The jobs left are safe to abandon: their
 * locks lapse and another worker re-runs them, and the claim in Postgres decides what a re-run may do.
 */
async function closeWithin(worker: Worker, timeoutMs: number, context: AppContext): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>(
    (resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)),
  );
  const closing = worker.close();
  const outcome = await Promise.race([closing.then(() => 'closed' as const), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    closing.catch(() => {}); // it may still settle later, or never: nobody waits for it
    context.logger.warn(
      { queue: worker.name, timeoutMs },
      'in-flight jobs did not finish in time; leaving them to their locks and closing anyway',
    );
  }
}
