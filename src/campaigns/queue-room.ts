import { messageRateBound, type Account } from '../config/accounts.js';
import type { AppContext } from '../runtime/context.js';

/** However slow the account, keep at least this many jobs ready so workers never starve. */
const MIN_QUEUE_BUDGET = 1000;
/** Keep about this many seconds of the account's sending in Redis; the rest waits in Postgres. */
const QUEUE_SECONDS = 60;

/**
 * How many more send jobs the account's queue may take: about a minute of its rate (at least
 * MIN_QUEUE_BUDGET) less what waits there now, so Redis stays bounded whatever the campaign sizes.
 * The planner and the reroute pass both fill queues up to it.
 */
export async function queueRoom(context: AppContext, account: Account): Promise<number> {
  const counts = await context.queues
    .send(account.name)
    .getJobCounts('wait', 'delayed', 'prioritized');
  const waiting = Object.values(counts).reduce((a, b) => a + b, 0);
  return Math.max(MIN_QUEUE_BUDGET, Math.ceil(messageRateBound(account) * QUEUE_SECONDS)) - waiting;
}
