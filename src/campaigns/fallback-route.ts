import type { Account } from '../config/accounts.js';
import type { AppContext } from '../runtime/context.js';
import { isCircuitOpen } from '../sending/circuit-breaker.js';
import { queueRoom } from './queue-room.js';

/**
 * Which account a campaign's messages go through while they are not yet handed over, and moving
 * them when that changes. The route is decided in Postgres (message.route_account: null is the
 * campaign's account, else its fallback) and only the workers of a message's route account may
 * claim it (claimMessages), so however many processes on however many machines plan, reroute and
 * send, a message is sent through one account at most once. A job left behind in the other
 * account's queue finds nothing to do.
 *
 * The trigger is the circuit breaker (src/sending/circuit-breaker.ts), shared through Redis: while
 * the campaign's account's circuit is open (its provider down for a while), a campaign that names
 * a fallback plans its messages into the fallback's queue, and the reroute pass moves its QUEUED
 * messages there. Only PENDING and QUEUED messages move: one SENDING, UNKNOWN, SCHEDULED or SENT
 * may have reached the failed provider, and at-most-once means it is never sent again elsewhere.
 * When the circuit's probe is due, planning returns to the campaign's account (so the probe has
 * something to try); when it closes, everything new goes there again. Messages already moved stay
 * with the fallback.
 */

export interface Route {
  account: Account;
  /** The campaign's fallback account: its messages are marked with route_account. */
  viaFallback: boolean;
}

interface RoutedCampaign {
  id: string;
  accountName: string;
  fallbackAccount: string | null;
}

/** The account the campaign's unsent messages should go through now. */
export async function currentRoute(context: AppContext, campaign: RoutedCampaign): Promise<Route> {
  const { redis, config } = context;
  const primary = { account: config.accounts.get(campaign.accountName), viaFallback: false };
  if (!campaign.fallbackAccount) return primary;
  if (!(await isCircuitOpen(redis, config.queuePrefix, primary.account.name))) return primary;
  const fallback = config.accounts.find(campaign.fallbackAccount);
  if (!fallback) {
    // Removed from the accounts file after the campaign named it: its messages wait instead.
    context.logger.warn(
      { campaignId: campaign.id, fallbackAccount: campaign.fallbackAccount },
      "the campaign's account is down and its fallback account is not configured; its messages wait",
    );
    return primary;
  }
  // Both down: moving would gain nothing; they wait where they are.
  if (await isCircuitOpen(redis, config.queuePrefix, fallback.name)) return primary;
  return { account: fallback, viaFallback: true };
}

const REROUTE_PAGE = 1000;

/**
 * The reroute pass (run by the sweeper, once per interval cluster-wide): for every running
 * campaign whose account's circuit is open and which names a fallback, QUEUED messages still
 * routed to the campaign's account get the fallback as their route and a job in its queue
 * (jobId = message id), as much as the fallback's queue has room for (the rest on later passes).
 * Each page is one statement over rows locked with SKIP LOCKED, and a worker's claim of the same
 * message locks the row too, so a message is either claimed by the campaign's account first (and
 * is then SENDING, which never moves) or rerouted first (and that account's claim finds nothing).
 * A pass that dies between its commit and adding the jobs leaves QUEUED messages without jobs:
 * the sweeper's stale re-enqueue adds them to the route's queue later.
 */
export async function rerouteToFallback(context: AppContext): Promise<number> {
  const { db, clock, queues, logger } = context;
  const { rows: campaigns } = await db.pool.query<RoutedCampaign>(
    `SELECT id, account_name AS "accountName", fallback_account AS "fallbackAccount"
     FROM campaign WHERE status = 'RUNNING' AND fallback_account IS NOT NULL`,
  );
  let total = 0;
  for (const campaign of campaigns) {
    const route = await currentRoute(context, campaign);
    if (!route.viaFallback) continue;
    let moved = 0;
    for (;;) {
      const room = Math.min(REROUTE_PAGE, await queueRoom(context, route.account));
      if (room <= 0) break;
      const now = clock.now();
      const { rows } = await db.pool.query<{ id: string; due_at: Date | null }>(
        `UPDATE message m SET route_account = $2, updated_at = $3
         FROM (
           SELECT id FROM message
           WHERE campaign_id = $1 AND status = 'QUEUED' AND route_account IS NULL
           ORDER BY id LIMIT $4
           FOR UPDATE SKIP LOCKED
         ) q
         WHERE m.id = q.id AND m.status = 'QUEUED' AND m.route_account IS NULL
         RETURNING m.id, m.due_at`,
        [campaign.id, route.account.name, now, room],
      );
      if (rows.length === 0) break;
      // Its time, where it has one; the worker decides again (send windows) before sending.
      await queues.addSends(
        rows.map((row) => ({
          account: route.account.name,
          messageId: row.id,
          campaignId: campaign.id,
          delayMs: row.due_at ? row.due_at.getTime() - now.getTime() : 0,
        })),
      );
      moved += rows.length;
    }
    if (moved > 0)
      logger.warn(
        {
          campaignId: campaign.id,
          account: campaign.accountName,
          fallbackAccount: route.account.name,
          moved,
        },
        "the campaign's account is down; queued messages moved to its fallback account",
      );
    total += moved;
  }
  return total;
}
