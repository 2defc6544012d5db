/**
 * A mistake the user can fix: bad input, a missing setting, an unknown account. It carries a
 * stable code for the HTTP API and a message that is printed as one line by the CLI, never with a
 * stack trace. Anything that is not a UserError is a bug or an outage and is logged in full.
 */
export class UserError extends Error {
  override readonly name: string = 'UserError';
  constructor(
    /** Stable, documented code, e.g. `CAMPAIGN_NOT_FOUND`. */
    readonly code: string,
    message: string,
    /** HTTP status for the API. @defaultValue 400 */
    readonly httpStatus = 400,
    /** Extra machine-readable detail returned beside the message. */
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export class NotFoundError extends UserError {
  override readonly name = 'NotFoundError';
  constructor(code: string, message: string) {
    super(code, message, 404);
  }
}

export class ConflictError extends UserError {
  override readonly name = 'ConflictError';
  constructor(code: string, message: string) {
    super(code, message, 409);
  }
}

/** A setting is missing or invalid. The message names the variable and what is wrong. */
export class ConfigError extends UserError {
  override readonly name = 'ConfigError';
  constructor(message: string) {
    super('CONFIG_INVALID', message, 500);
  }
}
