import type { FastifyInstance } from 'fastify';
import { recordReports } from '../../events/record-reports.js';
import { WebhookAuthError, WebhookPayloadError } from '../../providers/errors.js';
import { isValidWebhookToken } from '../../providers/webhook-url.js';
import type { AppContext } from '../../runtime/context.js';
import { requireWebhookSecret } from '../../config/config.js';
import { errorBody } from '../error-handler.js';

/**
 * Provider callbacks: POST /webhooks/:account/:token. The token is an HMAC of the account name
 * under HERALD_WEBHOOK_SECRET; adapters add their provider's own checks (Basic credentials,
 * signatures). A forged callback gets 401 and changes nothing; an unreadable one 400. The answer
 * is sent once the report is stored in Postgres, never before.
 */
export async function webhookRoutes(app: FastifyInstance, { context }: { context: AppContext }) {
  const secret = requireWebhookSecret(context.config);
  const known = new Set(context.config.accounts.names);

  app.post<{ Params: { account: string; token: string } }>('/webhooks/:account/:token', async (request, reply) => {
    const { account, token } = request.params;
    // An unknown account gets the same answer as a bad token: no account names leak.
    if (!known.has(account) || !isValidWebhookToken(secret, account, token)) {
      request.log.warn({ account }, 'webhook with an invalid token refused');
      return reply.status(401).send(errorBody('WEBHOOK_UNAUTHORIZED', 'invalid webhook token'));
    }
    const provider = context.config.accounts.get(account).provider;
    let reports;
    try {
      reports = context.providers
        .get(account)
        .parseWebhook({ headers: request.headers, body: request.body, url: request.url }).reports;
    } catch (error) {
      if (error instanceof WebhookAuthError) {
        request.log.warn({ account, provider, reason: error.message }, 'webhook failed provider authentication');
        return reply.status(401).send(errorBody('WEBHOOK_UNAUTHORIZED', error.message));
      }
      if (error instanceof WebhookPayloadError) {
        request.log.warn({ account, provider, reason: error.message }, 'unreadable webhook payload');
        return reply.status(400).send(errorBody('WEBHOOK_PAYLOAD_INVALID', error.message));
      }
      throw error;
    }
    const stored = await recordReports(context, account, reports);
    request.log.debug({ account, received: reports.length, stored }, 'delivery reports stored');
    return reply.status(204).send();
  });
}
