import type { FastifyInstance } from 'fastify';
import { loadConfig, requireWebhookSecret, type Config } from '../config/config.js';
import { ConfigError } from '../errors.js';
import { buildApp } from '../http/app.js';
import { closeContext, createContext, type AppContext } from './context.js';
import { startWorkers, type RunningWorkers, type WorkerRole } from './workers.js';

export interface ServeOptions {
  api: boolean;
  roles: readonly WorkerRole[];
}

export interface Service {
  context: AppContext;
  app?: FastifyInstance;
  workers?: RunningWorkers;
  /** Stops taking work, finishes in-flight work within the shutdown timeout, closes connections. */
  stop(): Promise<void>;
}

/** Starts the API and/or workers in this process. */
export async function serve(
  options: ServeOptions,
  config: Config = loadConfig(),
): Promise<Service> {
  // Check settings before opening any connection, so a mistake exits at once.
  requireWebhookSecret(config);
  if (options.api && config.apiKeys.length === 0) {
    throw new ConfigError(
      'HERALD_API_KEYS: not set; the API needs at least one key (comma-separated, 16+ characters each)',
    );
  }
  const context = createContext(config);
  let app: FastifyInstance | undefined;
  let workers: RunningWorkers | undefined;
  try {
    if (options.roles.length > 0) workers = await startWorkers(context, options.roles);
    if (options.api) {
      app = await buildApp(context);
      await app.listen({ host: config.host, port: config.port });
      context.logger.info(
        { url: `http://${config.host}:${config.port}`, publicUrl: config.publicUrl },
        'API listening',
      );
    }
  } catch (error) {
    await workers?.close();
    await app?.close();
    await closeContext(context);
    throw error;
  }
  let stopping: Promise<void> | undefined;
  return {
    context,
    app,
    workers,
    stop() {
      stopping ??= (async () => {
        // Workers first, so in-flight sends can still record their results; then the API,
        // which keeps answering webhooks until then.
        await workers?.close();
        await app?.close();
        await closeContext(context);
      })();
      return stopping;
    },
  };
}

/**
 * Runs until SIGTERM or SIGINT, then stops gracefully and exits 0. A second signal exits at once.
 */
export function stopOnSignals(
  service: { stop(): Promise<void> },
  logger: AppContext['logger'],
): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    signalled = true;
    logger.info({ signal }, 'stopping: no new jobs, finishing in-flight sends');
    service.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
