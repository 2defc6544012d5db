import { normalisePhone } from '../messages/phone.js';

/**
 * The default opt-out keywords (HERALD_OPT_OUT_KEYWORDS). STOPALL is in because carriers and
 * handsets suggest "STOP ALL" and some people type it without the space.
 */
export const DEFAULT_OPT_OUT_KEYWORDS = ['STOP', 'STOPALL', 'UNSUBSCRIBE', 'OPTOUT'] as const;

/** A keyword as configured → the form replies are compared in: upper case, no spaces or dashes. */
export function compactKeyword(word: string): string {
  return word
    .normalize('NFKC')
    .toUpperCase()
    .replace(/[\s\-_]+/g, '');
}

/**
 * Whether a reply asks to opt out. Case, surrounding spaces and punctuation, and spaces or dashes
 * inside the keyword are ignored; the keyword must be the whole reply or its first word (or first
 * two words run together), so "Stop", " STOP ", "stop.", "STOP ALL", "Stop please", "opt out" and
 * "Opt-Out" opt out while "Stopping by later" or "don't stop" do not. Treating a leading keyword as
 * an opt-out errs towards honouring a STOP, which is the costly mistake to get wrong (Spam Act
 * 2003 / CTIA), while a keyword in mid-sentence is too often a false alarm.
 */
export function isOptOutReply(body: string, keywords: ReadonlySet<string>): boolean {
  const text = body.normalize('NFKC').toUpperCase().trim();
  if (!text) return false;
  if (keywords.has(compactKeyword(text.replace(/[^\p{L}\p{N}\s\-_]/gu, '')))) return true;
  const words = text
    .split(/\s+/)
    .map((w) => w.replace(/[^\p{L}\p{N}]/gu, ''))
    .filter(Boolean);
  if (words.length === 0) return false;
  if (keywords.has(words[0]!)) return true;
  return words.length > 1 && keywords.has(words[0]! + words[1]!);
}

/**
 * Delivery-report results that mean "the recipient has opted out with the provider or carrier":
 * the number is suppressed as if it had replied STOP. Kept here rather than in each adapter so
 * that folding decides suppression in one place; an adapter only has to keep the provider's code
 * as the report's error code (Bandwidth `errorCode`, Catapult `deliveryCode`, MessageMedia
 * `error_code` / status).
 */
const PROVIDER_OPT_OUT_CODES: Record<string, ReadonlySet<string>> = {
  // 4775: "The destination has opted out (replied STOP)".
  bandwidth: new Set(['4775']),
  // 775: "Destination rejected: the recipient opted out".
  catapult: new Set(['775']),
  // Sinch MessageMedia auto-blacklists numbers that reply with opt-out keywords and reports them
  // as OPT_OUT (the OPT_OUT_SMS webhook event); sends to them are refused the same way.
  messagemedia: new Set(['OPT_OUT', 'OPT_OUT_SMS', 'OPTOUT', 'OPTED_OUT']),
  // Telstra v3 refuses a send to an opted-out number with RECIPIENT_OPTOUT (a send error, not a
  // report); listed for a report or poll that carries it.
  telstra: new Set(['RECIPIENT_OPTOUT']),
};

export function isProviderOptOut(
  providerType: string,
  errorCode: string | null | undefined,
  providerStatus: string | null | undefined,
): boolean {
  const codes = PROVIDER_OPT_OUT_CODES[providerType];
  if (!codes) return false;
  if (errorCode && codes.has(errorCode.toUpperCase())) return true;
  return !!providerStatus && codes.has(providerStatus.toUpperCase());
}

/**
 * A reply's sender → E.164 for the suppression list. Providers give E.164 almost always; a
 * national number is read in `region`. Returns undefined for something that is not a number
 * (an alphanumeric sender), which cannot be sent to anyway.
 */
export function optOutPhone(from: string, region = 'AU'): string | undefined {
  const trimmed = from.trim();
  const parsed = normalisePhone(trimmed, region);
  if (parsed.ok) return parsed.e164;
  // libphonenumber refuses some valid-looking E.164 ranges (new ranges, short codes); suppress
  // them as written rather than lose the opt-out.
  return /^\+[1-9]\d{6,14}$/.test(trimmed) ? trimmed : undefined;
}
