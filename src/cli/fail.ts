import { UserError } from '../errors.js';

/**
 * How the CLI ends on an error: a user mistake (bad setting, unknown account, bad CSV) is one line
 * with no stack trace and exit code 2; anything else is a bug or an outage, printed in full, exit 1.
 */
export function reportCliError(error: unknown): number {
  if (error instanceof UserError) {
    process.stderr.write(`herald: ${error.message}\n`);
    return 2;
  }
  const err = error as { code?: string; message?: string };
  // Unreachable services are not bugs either: say which, without a stack.
  if (err.code === 'ECONNREFUSED' || err.code === 'ENOTFOUND') {
    process.stderr.write(
      `herald: cannot connect: ${err.message}; check DATABASE_URL and REDIS_URL\n`,
    );
    return 1;
  }
  process.stderr.write(`herald: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
  return 1;
}
