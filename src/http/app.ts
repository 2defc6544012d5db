import multipart from '@fastify/multipart';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { AppContext } from '../runtime/context.js';
import { registerRateLimit } from './api-auth.js';
import { installErrorHandler } from './error-handler.js';
import { registerOpenApi } from './openapi.js';
import { bullBoardRoutes } from './routes/bull-board.js';
import { campaignRoutes } from './routes/campaigns.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { healthRoutes } from './routes/health.js';
import { HeraldMetrics, metricsRoutes } from './routes/metrics.js';
import { reportRoutes } from './routes/reports.js';
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
    ajv: {
      // An unknown body field is an error (VALIDATION_FAILED), not silently dropped: a typo in an
      // optional field would otherwise go unnoticed.
      customOptions: { removeAdditional: false },
    },
  });
  const metrics = new HeraldMetrics(context);
  installErrorHandler(app, (code, status) =>
    metrics.apiErrors.inc({ code, status: String(status) }),
  );
  // Before the routes: @fastify/swagger collects each route's schema as it is added.
  await registerOpenApi(app);
  await registerRateLimit(app, {
    keys: context.config.apiKeys,
    perMinute: context.config.apiRateLimit,
    redis: context.redis,
    prefix: context.config.queuePrefix,
  });
  // Uploads (text/csv bodies and multipart forms) are streamed to the importers, never buffered.
  app.addContentTypeParser(['text/csv', 'application/csv'], (_request, payload, done) =>
    done(null, payload),
  );
  await app.register(multipart);
  await app.register(healthRoutes, { context });
  await app.register(metricsRoutes, { metrics });
  await app.register(dashboardRoutes);
  await app.register(bullBoardRoutes, { context });
  await app.register(webhookRoutes, { context });
  await app.register(campaignRoutes, { context, prefix: '/v1' });
  await app.register(reportRoutes, { context, prefix: '/v1' });
  await app.register(suppressionRoutes, { context, prefix: '/v1' });
  return app;
}
