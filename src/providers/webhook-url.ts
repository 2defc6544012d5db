import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook URLs carry an unguessable token derived from the webhook secret and the account name,
 * so a callback for account A cannot be forged without the secret (most providers sign nothing).
 * Rotating HERALD_WEBHOOK_SECRET changes every URL.
 */
export function webhookToken(secret: string, accountName: string): string {
  return createHmac('sha256', secret).update(`herald-webhook:${accountName}`).digest('base64url');
}

export function webhookUrl(publicUrl: string, secret: string, accountName: string): string {
  return `${publicUrl}/webhooks/${accountName}/${webhookToken(secret, accountName)}`;
}

export function isValidWebhookToken(secret: string, accountName: string, token: string): boolean {
  const expected = Buffer.from(webhookToken(secret, accountName));
  const given = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
