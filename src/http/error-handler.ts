import type { FastifyError, FastifyInstance } from 'fastify';
import { UserError } from '../errors.js';

/** Every error answer has this shape: a stable code, a message, and sometimes details. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

export function errorBody(code: string, message: string, details?: unknown): ErrorBody {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

/** One place that turns errors into HTTP answers with stable codes; nothing else writes them. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    if (error instanceof UserError) {
      return reply
        .status(error.httpStatus)
        .send(errorBody(error.code, error.message, error.details));
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.validation) {
      return reply.status(400).send(errorBody('VALIDATION_FAILED', error.message));
    }
    if (fastifyError.statusCode && fastifyError.statusCode < 500) {
      // Fastify's own client errors: body too large, bad JSON, unsupported media type…
      return reply
        .status(fastifyError.statusCode)
        .send(
          errorBody(fastifyError.code?.replace(/^FST_ERR_/, '') ?? 'BAD_REQUEST', error.message),
        );
    }
    request.log.error({ err: error }, 'request failed');
    return reply.status(500).send(errorBody('INTERNAL', 'internal error; see the server log'));
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      .send(
        errorBody('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`),
      ),
  );
}
