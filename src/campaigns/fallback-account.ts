import type pg from 'pg';
import { UserError } from '../errors.js';
import { maxBodyCharsFor } from '../providers/registry.js';
import type { AppContext } from '../runtime/context.js';
import { renderedPages } from './rendered-messages.js';

/**
 * The checks on a campaign's fallback account (README "Rate limits and pushback"): the account its
 * messages not yet handed over go through while its own account's circuit is open.
 */

/** A fallback must be a configured account other than the campaign's own. */
export function checkFallbackAccount(
  context: AppContext,
  account: string,
  fallback: string | null | undefined,
): void {
  if (fallback === undefined || fallback === null) return;
  context.config.accounts.get(fallback); // unknown → ACCOUNT_UNKNOWN listing the configured ones
  if (fallback === account)
    throw new UserError(
      'FALLBACK_ACCOUNT_INVALID',
      `the fallback account must differ from the campaign's account (${account}): it is used while that one is down`,
    );
}

/**
 * The fallback's body limit where it is stricter than what the import checked (the campaign's own
 * account's limit), else undefined: then every imported message fits it already.
 */
function stricterLimit(context: AppContext, account: string, fallback: string): number | undefined {
  const own = maxBodyCharsFor(context.config.accounts.get(account));
  const theirs = maxBodyCharsFor(context.config.accounts.get(fallback));
  if (theirs === undefined) return undefined;
  return own === undefined || theirs < own ? theirs : undefined;
}

/**
 * Every imported message, rendered with `template`, must fit the fallback's provider, or the
 * change is refused (FALLBACK_BODY_TOO_LONG): a message rerouted there would otherwise fail at
 * send time. Checked when a fallback or template is set, and again at schedule and start, since
 * the import checks only the campaign's own account (recipients can be added to a DRAFT after the
 * fallback was named).
 */
export async function checkBodiesFitFallback(
  context: AppContext,
  db: pg.Pool | pg.PoolClient,
  campaign: { id: string; accountName: string; fallbackAccount: string | null; template: string },
): Promise<void> {
  if (!campaign.fallbackAccount) return;
  const limit = stricterLimit(context, campaign.accountName, campaign.fallbackAccount);
  if (limit === undefined) return;
  for await (const page of renderedPages(db, campaign.id, campaign.template)) {
    const longest = Math.max(...page.map(({ body }) => [...body].length));
    if (longest > limit)
      throw new UserError(
        'FALLBACK_BODY_TOO_LONG',
        `the message would be ${longest} characters for some recipients; the fallback account ${campaign.fallbackAccount}'s provider accepts at most ${limit}`,
      );
  }
}
