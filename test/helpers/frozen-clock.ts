// Boundary tests of send times ("exactly 60 days ahead is accepted, a millisecond more is not")
// cannot use the real clock: it moves between the test computing the time and the adapter
// checking it. Only `Date` is faked: timers, sockets and the HTTP fakes keep running for real.
import { vi } from 'vitest';

/** Stops `Date.now()` at the current instant until `vi.useRealTimers()`; returns that instant. */
export function freezeClock(): number {
  const now = Date.now();
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(now);
  return now;
}
