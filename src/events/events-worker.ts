import type { AppContext } from '../runtime/context.js';
import { ReportFolder } from './fold-reports.js';

/** How long an idle folder waits before looking for new reports. */
const IDLE_POLL_MS = 200;
/** After a database error, wait before trying again (Postgres restarting, network blip). */
const ERROR_BACKOFF_MS = 2000;

export interface EventsWorker {
  close(): Promise<void>;
}

/**
 * Folds stored delivery reports into messages, continuously: back to back while there is a
 * backlog, every 200 ms when idle. Safe to run in any number of processes (SKIP LOCKED).
 *
 * While a backlog lasts, HERALD_EVENTS_CONCURRENCY folders work it side by side in this process
 * (folding waits on Postgres, not on Node: on a quiet machine 4 folders folded 1.75 times as many
 * reports per second as one, see BENCHMARKS.md). Only the first polls when idle; the others are
 * woken when it reads a full batch and go back to sleep when their own pass is not full.
 */
export function startEventsWorker(context: AppContext): EventsWorker {
  let stopping = false;
  const wakers = new Set<() => void>();
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wakers.delete(done);
        resolve();
      }
      wakers.add(done);
    });
  const helpersAsleep = new Set<() => void>();

  const run = async (lead: boolean) => {
    const folder = new ReportFolder(context);
    if (!lead) await helperNap();
    while (!stopping) {
      try {
        const result = await folder.fold();
        const full = result.read >= context.config.eventsBatchSize;
        if (full && lead) for (const wakeHelper of [...helpersAsleep]) wakeHelper();
        if (!full) await (lead ? sleep(IDLE_POLL_MS) : helperNap());
      } catch (error) {
        context.logger.error({ err: error }, 'folding delivery reports failed; retrying');
        await sleep(ERROR_BACKOFF_MS);
      }
    }
  };
  /** A helper sleeps until the lead finds a backlog (or the worker stops). */
  const helperNap = () =>
    new Promise<void>((resolve) => {
      const wakeUp = () => {
        helpersAsleep.delete(wakeUp);
        wakers.delete(wakeUp);
        resolve();
      };
      helpersAsleep.add(wakeUp);
      wakers.add(wakeUp);
    });

  const loops = Array.from({ length: context.config.eventsConcurrency }, (_, i) => run(i === 0));
  return {
    async close() {
      stopping = true;
      for (const wake of [...wakers]) wake();
      await Promise.all(loops);
    },
  };
}
