// Process entry point: the send worker role alone, until SIGTERM. Same as `herald worker --roles send`.
import { reportCliError } from '../src/cli/fail.js';
import { serve, stopOnSignals } from '../src/runtime/serve.js';

serve({ api: false, roles: ['send'] }).then(
  (service) => stopOnSignals(service, service.context.logger),
  (error: unknown) => process.exit(reportCliError(error)),
);
