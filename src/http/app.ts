import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { AppContext } from '../runtime/context.js';
import { installErrorHandler } from './error-handler.js';
import { campaignRoutes } from './routes/campaigns.js';
import { healthRoutes } from './routes/health.js';
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
  await app.register(healthRoutes, { context });
  await app.register(webhookRoutes, { context });
  await app.register(campaignRoutes, { context, prefix: '/v1' });
  return app;
}
