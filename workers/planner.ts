// Process entry point: the planner worker role alone, until SIGTERM. Same as `herald worker --roles planner`.
import { reportCliError } from '../src/cli/fail.js';
import { serve, stopOnSignals } from '../src/runtime/serve.js';

serve({ api: false, roles: ['planner'] }).then(
  (service) => stopOnSignals(service, service.context.logger),
  (error: unknown) => process.exit(reportCliError(error)),
);
