import type { AppContext } from '../runtime/context.js';
import { foldReports } from './fold-reports.js';

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
 */
export function startEventsWorker(context: AppContext): EventsWorker {
  let stopping = false;
  let wake: (() => void) | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const loop = (async () => {
    while (!stopping) {
      try {
        const result = await foldReports(context);
        if (result.read < context.config.eventsBatchSize) await sleep(IDLE_POLL_MS);
      } catch (error) {
        context.logger.error({ err: error }, 'folding delivery reports failed; retrying');
        await sleep(ERROR_BACKOFF_MS);
      }
    }
  })();

  return {
    async close() {
      stopping = true;
      wake?.();
      await loop;
    },
  };
}
