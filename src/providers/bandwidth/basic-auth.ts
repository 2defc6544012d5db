import { createHash, timingSafeEqual } from 'node:crypto';

/** `Basic base64(user:password)`, as both Bandwidth APIs (v2 and Catapult v1) take it. */
export function basicAuthorization(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
}

/**
 * Whether a request carries exactly these HTTP Basic credentials. Both sides are hashed before
 * the comparison so neither the length nor the content leaks through timing.
 */
export function hasBasicCredentials(
  headers: Record<string, string | string[] | undefined>,
  user: string,
  password: string,
): boolean {
  const raw = headers.authorization;
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (!value) return false;
  const match = /^Basic\s+(\S+)\s*$/i.exec(value);
  if (!match) return false;
  const given = Buffer.from(match[1]!, 'base64').toString('utf8');
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(`${user}:${password}`));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Our message id from a `tag` echoed back by the provider, when it is one (a UUID). */
export function messageIdFromTag(tag: unknown): string | undefined {
  return typeof tag === 'string' && UUID.test(tag) ? tag.toLowerCase() : undefined;
}

/** Text length as the providers' JSON schemas count it (`maxLength`: Unicode code points). */
export function textLength(text: string): number {
  return [...text].length;
}
