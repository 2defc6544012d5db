// Process entry point: the events worker role alone, until SIGTERM. Same as `herald worker --roles events`.
import { reportCliError } from '../src/cli/fail.js';
import { serve, stopOnSignals } from '../src/runtime/serve.js';

serve({ api: false, roles: ['events'] }).then(
  (service) => stopOnSignals(service, service.context.logger),
  (error: unknown) => process.exit(reportCliError(error)),
);
