import { UserError } from '../errors.js';
import { normalisePhone } from '../messages/phone.js';
import type { AppContext } from '../runtime/context.js';

export interface SuppressionEntry {
  /** E.164. */
  phone: string;
  /** Why: "STOP reply", "provider opt-out (4775)", "manual", … */
  reason: string;
}

/**
 * Adds numbers to the suppression list (a number already there keeps its first reason). Every
 * later send to them becomes SUPPRESSED: the list is checked at import and again at send time.
 * Returns how many were new.
 */
export async function addSuppressions(
  context: AppContext,
  entries: SuppressionEntry[],
): Promise<number> {
  if (entries.length === 0) return 0;
  const result = await context.db.pool.query(
    `INSERT INTO suppression (phone, reason)
     SELECT * FROM unnest($1::text[], $2::text[])
     ON CONFLICT (phone) DO NOTHING`,
    [entries.map((e) => e.phone), entries.map((e) => e.reason.slice(0, 200))],
  );
  return result.rowCount ?? 0;
}

/** Removes a number; returns false when it was not on the list. */
export async function removeSuppression(context: AppContext, phone: string): Promise<boolean> {
  const result = await context.db.pool.query('DELETE FROM suppression WHERE phone = $1', [phone]);
  return (result.rowCount ?? 0) > 0;
}

/** A number typed by a person (API, CLI) → E.164, or a user error saying why not. */
export function parseSuppressionPhone(raw: string, region = 'AU'): string {
  const phone = normalisePhone(raw, region);
  if (!phone.ok) throw new UserError('PHONE_INVALID', phone.reason);
  return phone.e164;
}
