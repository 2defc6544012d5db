import { createHash, timingSafeEqual } from 'node:crypto';

/** `Basic base64(user:password)`: the HTTP Basic credentials most provider APIs take. */
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
