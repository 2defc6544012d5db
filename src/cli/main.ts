#!/usr/bin/env node
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig } from '../config/config.js';
import { migrate } from '../db/migrate.js';
import { createLogger } from '../logger.js';
import { SandboxServer } from '../providers/sandbox/sandbox-server.js';
import { serve, stopOnSignals } from '../runtime/serve.js';
import { WORKER_ROLES, type WorkerRole } from '../runtime/workers.js';
import { registerAccountsCommands } from './commands/accounts.js';
import { registerCampaignCommands } from './commands/campaign.js';
import { runDemo } from './commands/demo.js';
import { registerSuppressionCommands } from './commands/suppression.js';
import { reportCliError } from './fail.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new InvalidArgumentError('must be a positive whole number');
  return n;
}

function roles(value: string): WorkerRole[] {
  const list = value.split(',').map((r) => r.trim());
  const bad = list.find((r) => !(WORKER_ROLES as readonly string[]).includes(r));
  if (bad)
    throw new InvalidArgumentError(`unknown role "${bad}"; roles: ${WORKER_ROLES.join(', ')}`);
  return list as WorkerRole[];
}

async function runService(options: { api: boolean; roles: readonly WorkerRole[] }) {
  const service = await serve(options);
  stopOnSignals(service, service.context.logger);
}

export function buildProgram(): Command {
  const program = new Command('herald')
    .description('Bulk SMS campaigns and scheduled broadcasts')
    .showHelpAfterError()
    .configureOutput({
      outputError: (text, write) => write(`herald: ${text.replace(/^error: /, '')}`),
    });

  program
    .command('migrate')
    .description('create the database if needed and apply migrations')
    .action(async () => {
      const config = loadConfig();
      const { created } = await migrate(config.databaseUrl);
      console.log(`Database ${created ? 'created and ' : ''}up to date.`);
    });

  program
    .command('worker')
    .description('run workers (all roles unless --roles says otherwise) until SIGTERM')
    .option('--roles <list>', `comma-separated: ${WORKER_ROLES.join(', ')}`, roles, [
      ...WORKER_ROLES,
    ])
    .action((opts: { roles: WorkerRole[] }) => runService({ api: false, roles: opts.roles }));

  program
    .command('api')
    .description('run the HTTP API and webhooks until SIGTERM')
    .action(() => runService({ api: true, roles: [] }));

  program
    .command('start')
    .description('run the API and every worker role in one process')
    .action(() => runService({ api: true, roles: WORKER_ROLES }));

  program
    .command('sandbox')
    .description('run the sandbox SMS provider (accepts sends, posts delivery reports back)')
    .option('--port <port>', 'port to listen on', positiveInt, 4010)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--report-delay <ms>', 'delay before each delivery report', positiveInt, 250)
    .action(async (opts: { port: number; host: string; reportDelay: number }) => {
      const config = loadConfig();
      const logger = createLogger({ level: config.logLevel, name: 'herald-sandbox' });
      const sandbox = new SandboxServer({
        apiKey: config.sandboxApiKey,
        host: opts.host,
        port: opts.port,
        reportDelayMs: opts.reportDelay,
        logger,
      });
      await sandbox.start();
      logger.info({ url: sandbox.url }, 'sandbox provider listening');
      stopOnSignals(sandbox, logger);
    });

  program
    .command('demo')
    .description('run a sample campaign end to end through the sandbox provider, then exit')
    .option('--recipients <n>', 'recipients to generate', positiveInt, 10_000)
    .option('--rate <n>', 'messages per second', positiveInt, 1000)
    .action((opts: { recipients: number; rate: number }) => runDemo(opts));

  registerAccountsCommands(program);
  registerCampaignCommands(program);
  registerSuppressionCommands(program);
  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    // Exit now: a command that failed half-way may still hold connections open.
    process.exit(reportCliError(error));
  });
