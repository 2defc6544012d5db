import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max';

export type PhoneResult = { ok: true; e164: string } | { ok: false; reason: string };

/**
 * A number as written in a list → E.164, read in `region` when it has no country code. Numbers
 * that are invalid, or that libphonenumber knows to be fixed lines (no SMS), are refused with the
 * reason. Numbers of unknown type are let through: many ranges are mobile or fixed.
 */
export function normalisePhone(raw: string, region: string): PhoneResult {
  const text = raw.trim();
  if (!text) return { ok: false, reason: 'phone number is empty' };
  const parsed = parsePhoneNumberFromString(text, region as CountryCode);
  if (!parsed || !parsed.isValid())
    return { ok: false, reason: `"${text}" is not a valid phone number` };
  const type = parsed.getType();
  if (
    type === 'FIXED_LINE' ||
    type === 'PREMIUM_RATE' ||
    type === 'TOLL_FREE' ||
    type === 'SHARED_COST'
  ) {
    return {
      ok: false,
      reason: `"${text}" cannot receive SMS (${type.toLowerCase().replace('_', ' ')} number)`,
    };
  }
  return { ok: true, e164: parsed.number };
}

/** For logs: never a full number at info level. */
export function maskPhone(e164: string): string {
  return e164.length > 6 ? `${e164.slice(0, 4)}…${e164.slice(-2)}` : '…';
}
