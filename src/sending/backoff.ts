import type { BackoffStrategy } from 'bullmq';

/**
 * BullMQ's built-in exponential backoff has no ceiling: 8 attempts from 1 s reach 64 s, and a
 * longer retry policy would wait hours. This one doubles from the job's `delay`, never exceeds
 * `maxMs`, and keeps only part of each wait fixed (`jitter` of it is random) so many messages that
 * failed together do not come back together.
 */
export function cappedExponentialBackoff(maxMs: number): BackoffStrategy {
  return (attemptsMade, _type, _error, job) => {
    const backoff = job?.opts.backoff;
    const base = typeof backoff === 'object' && backoff.delay ? backoff.delay : 1000;
    const jitter =
      typeof backoff === 'object' && backoff.jitter !== undefined ? backoff.jitter : 0.5;
    const ceiling = Math.min(maxMs, base * 2 ** Math.max(0, attemptsMade - 1));
    return Math.round(ceiling * (1 - jitter) + Math.random() * ceiling * jitter);
  };
}
