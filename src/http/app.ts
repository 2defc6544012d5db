import multipart from '@fastify/multipart';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { AppContext } from '../runtime/context.js';
import { installErrorHandler } from './error-handler.js';
import { campaignRoutes } from './routes/campaigns.js';
import { healthRoutes } from './routes/health.js';
import { suppressionRoutes } from './routes/suppressions.js';
import { webhookRoutes } from './routes/webhooks.js';

/** Builds the HTTP app without listening: entry points listen, tests inject. */
export async function buildApp(context: AppContext): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: context.logger.child({ component: 'http' }) as FastifyBaseLogger,
    // Webhook and JSON bodies are small; CSV uploads stream past this limit (their own parser).
    bodyLimit: 1024 * 1024,
    // Per-request logs would drown the log at thousands of webhooks a second; errors still log.
    logController: new LogController({ disableRequestLogging: true }),
  });
  installErrorHandler(app);
  // Uploads (text/csv bodies and multipart forms) are streamed to the importers, never buffered.
  app.addContentTypeParser(['text/csv', 'application/csv'], (_request, payload, done) =>
    done(null, payload),
  );
  await app.register(multipart);
  await app.register(healthRoutes, { context });
  await app.register(webhookRoutes, { context });
  await app.register(campaignRoutes, { context, prefix: '/v1' });
  await app.register(suppressionRoutes, { context, prefix: '/v1' });
  return app;
}
