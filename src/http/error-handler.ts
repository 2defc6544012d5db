import type { FastifyError, FastifyInstance } from 'fastify';
import { UserError } from '../errors.js';

/** Every error answer has this shape: a stable code, a message, and sometimes details. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

export function errorBody(code: string, message: string, details?: unknown): ErrorBody {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

/**
 * Fastify's own client errors under names of ours, so that the codes clients see (and the OpenAPI
 * document lists) do not change when Fastify renames an internal error.
 */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
};

/** Called with the code of every error answer, for the metrics (errors by class). */
export type ErrorObserver = (code: string, status: number) => void;

/** One place that turns errors into HTTP answers with stable codes; nothing else writes them. */
export function installErrorHandler(app: FastifyInstance, observe: ErrorObserver = () => {}): void {
  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    if (error instanceof UserError) {
      observe(error.code, error.httpStatus);
      return reply
        .status(error.httpStatus)
        .send(errorBody(error.code, error.message, error.details));
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.validation) {
      observe('VALIDATION_FAILED', 400);
      return reply.status(400).send(
        errorBody(
          'VALIDATION_FAILED',
          error.message,
          fastifyError.validation.map((v) => ({
            in: fastifyError.validationContext,
            path: v.instancePath,
            message: v.message,
          })),
        ),
      );
    }
    if (fastifyError.statusCode && fastifyError.statusCode < 500) {
      // Fastify's own client errors: body too large, bad JSON, unsupported media type…
      const code =
        FASTIFY_CODES[fastifyError.code] ??
        fastifyError.code?.replace(/^FST_ERR_/, '') ??
        'BAD_REQUEST';
      observe(code, fastifyError.statusCode);
      return reply.status(fastifyError.statusCode).send(errorBody(code, error.message));
    }
    observe('INTERNAL', 500);
    request.log.error({ err: error }, 'request failed');
    return reply.status(500).send(errorBody('INTERNAL', 'internal error; see the server log'));
  });
  app.setNotFoundHandler((request, reply) => {
    observe('ROUTE_NOT_FOUND', 404);
    return reply
      .status(404)
      .send(
        errorBody('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`),
      );
  });
}
