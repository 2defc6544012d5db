import type { FastifyInstance } from 'fastify';
import { parse as parseQueryString } from 'node:querystring';
import { requireWebhookSecret } from '../../config/config.js';
import { recordReplies } from '../../events/record-replies.js';
import { recordReports } from '../../events/record-reports.js';
import { WebhookAuthError, WebhookPayloadError } from '../../providers/errors.js';
import type { WebhookResult } from '../../providers/types.js';
import { isValidWebhookToken } from '../../providers/webhook-url.js';
import type { AppContext } from '../../runtime/context.js';
import { errorBody } from '../error-handler.js';

declare module 'fastify' {
  interface FastifyRequest {
    rawBody?: string;
  }
}

/**
 * Provider callbacks: /webhooks/:account/:token (POST, or GET for providers configured so). The
 * token is an HMAC of the account name under HERALD_WEBHOOK_SECRET; adapters add their provider's
 * own checks (Basic credentials, signatures over the raw body). A forged callback gets 401 and
 * changes nothing; an unreadable one 400. The answer is sent once the reports and replies are
 * stored in Postgres, never before.
 */
export async function webhookRoutes(app: FastifyInstance, { context }: { context: AppContext }) {
  const secret = requireWebhookSecret(context.config);
  const known = new Set(context.config.accounts.names);

  // Keep the exact bytes for signature checks; parse leniently here and let the adapter judge.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    request.rawBody = text;
    const type = request.headers['content-type'] ?? '';
    if (type.includes('application/x-www-form-urlencoded'))
      return done(null, parseQueryString(text));
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(null, undefined); // the adapter answers 400 for a body it cannot read
    }
  });

  app.route<{ Params: { account: string; token: string } }>({
    method: ['GET', 'POST'],
    url: '/webhooks/:account/:token',
    handler: async (request, reply) => {
      const { account, token } = request.params;
      // An unknown account gets the same answer as a bad token: no account names leak.
      if (!known.has(account) || !isValidWebhookToken(secret, account, token)) {
        request.log.warn({ account }, 'webhook with an invalid token refused');
        return reply.status(401).send(errorBody('WEBHOOK_UNAUTHORIZED', 'invalid webhook token'));
      }
      const provider = context.config.accounts.get(account).provider;
      let result: WebhookResult;
      try {
        result = context.providers.get(account).parseWebhook({
          method: request.method,
          headers: request.headers,
          body: request.body,
          rawBody: request.rawBody ?? '',
          url: request.url,
        });
      } catch (error) {
        if (error instanceof WebhookAuthError) {
          request.log.warn(
            { account, provider, reason: error.message },
            'webhook failed provider authentication',
          );
          return reply.status(401).send(errorBody('WEBHOOK_UNAUTHORIZED', error.message));
        }
        if (error instanceof WebhookPayloadError) {
          request.log.warn(
            { account, provider, reason: error.message },
            'unreadable webhook payload',
          );
          return reply.status(400).send(errorBody('WEBHOOK_PAYLOAD_INVALID', error.message));
        }
        throw error;
      }
      const reports = await recordReports(context, account, result.reports);
      const replies = await recordReplies(context, account, result.replies);
      request.log.debug({ account, reports, replies }, 'webhook stored');
      return reply.status(204).send();
    },
  });
}
