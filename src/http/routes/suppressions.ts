import type { FastifyInstance } from 'fastify';
import { NotFoundError } from '../../errors.js';
import type { AppContext } from '../../runtime/context.js';
import { exportSuppressions, importSuppressions } from '../../suppressions/suppression-csv.js';
import {
  addSuppressions,
  parseSuppressionPhone,
  removeSuppression,
} from '../../suppressions/suppressions.js';
import { apiKeyAuth } from '../api-auth.js';
import { dateTime, errorResponses, responseObject } from '../openapi.js';
import { uploadStream } from '../upload-stream.js';

const tags = ['suppressions'];

const phoneParams = {
  type: 'object',
  required: ['phone'],
  properties: { phone: { type: 'string', description: 'E.164, or national format in `region`' } },
} as const;

const regionQuery = {
  type: 'object',
  properties: {
    region: {
      type: 'string',
      pattern: '^[A-Za-z]{2}$',
      description: 'region for national-format numbers (default AU)',
    },
  },
} as const;

const entrySchema = responseObject({
  phone: { type: 'string' },
  reason: { type: 'string' },
  createdAt: dateTime,
});

/** The suppression (opt-out) list under /v1 (Bearer API keys). */
export async function suppressionRoutes(
  app: FastifyInstance,
  { context }: { context: AppContext },
) {
  app.addHook('onRequest', apiKeyAuth(context.config.apiKeys));

  app.get(
    '/suppressions.csv',
    {
      schema: {
        tags,
        summary: 'The whole list as CSV (phone,reason,created_at), streamed',
        response: {
          200: { description: 'CSV', content: { 'text/csv': { schema: { type: 'string' } } } },
          ...errorResponses(),
        },
      },
    },
    async (_request, reply) =>
      reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', 'attachment; filename="suppressions.csv"')
        .send(exportSuppressions(context)),
  );

  app.get<{ Params: { phone: string }; Querystring: { region?: string } }>(
    '/suppressions/:phone',
    {
      schema: {
        tags,
        summary: 'One entry of the list',
        params: phoneParams,
        querystring: regionQuery,
        response: {
          200: entrySchema,
          ...errorResponses('SUPPRESSION_NOT_FOUND', 'PHONE_INVALID', 'VALIDATION_FAILED'),
        },
      },
    },
    async (request) => {
      const phone = parseSuppressionPhone(request.params.phone, request.query.region);
      const entry = await context.db.prisma.suppression.findUnique({ where: { phone } });
      if (!entry)
        throw new NotFoundError('SUPPRESSION_NOT_FOUND', `${phone} is not on the suppression list`);
      return entry;
    },
  );

  app.post<{ Body: { phone: string; reason?: string; region?: string } }>(
    '/suppressions',
    {
      schema: {
        tags,
        summary: 'Add a number (201; 200 if it was already listed)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['phone'],
          properties: {
            phone: { type: 'string', minLength: 1 },
            reason: { type: 'string', maxLength: 500, description: 'default "manual"' },
            region: regionQuery.properties.region,
          },
        },
        response: {
          200: responseObject({ phone: { type: 'string' }, added: { type: 'boolean' } }),
          201: responseObject({ phone: { type: 'string' }, added: { type: 'boolean' } }),
          ...errorResponses('VALIDATION_FAILED', 'PHONE_INVALID', 'INVALID_JSON'),
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const phone = parseSuppressionPhone(body.phone, body.region);
      const added = await addSuppressions(context, [{ phone, reason: body.reason || 'manual' }]);
      return reply.status(added ? 201 : 200).send({ phone, added: added === 1 });
    },
  );

  app.delete<{ Params: { phone: string }; Querystring: { region?: string } }>(
    '/suppressions/:phone',
    {
      schema: {
        tags,
        summary: 'Remove a number from the list',
        params: phoneParams,
        querystring: regionQuery,
        response: {
          204: { description: 'removed', type: 'null' },
          ...errorResponses('SUPPRESSION_NOT_FOUND', 'PHONE_INVALID', 'VALIDATION_FAILED'),
        },
      },
    },
    async (request, reply) => {
      const phone = parseSuppressionPhone(request.params.phone, request.query.region);
      if (!(await removeSuppression(context, phone))) {
        throw new NotFoundError('SUPPRESSION_NOT_FOUND', `${phone} is not on the suppression list`);
      }
      return reply.status(204).send();
    },
  );

  app.post<{ Querystring: { region?: string } }>(
    '/suppressions/import',
    {
      schema: {
        tags,
        summary: 'Import numbers from a CSV (a phone column, optional reason column)',
        querystring: regionQuery,
        response: {
          200: responseObject({
            rows: { type: 'integer' },
            added: { type: 'integer' },
            alreadyListed: { type: 'integer' },
            rejected: { type: 'integer' },
          }),
          ...errorResponses(
            'UNSUPPORTED_MEDIA_TYPE',
            'UPLOAD_FILE_MISSING',
            'CSV_TOO_LARGE',
            'CSV_NOT_UTF8',
            'CSV_NOT_TEXT',
            'CSV_EMPTY',
            'CSV_NO_PHONE_COLUMN',
            'VALIDATION_FAILED',
          ),
        },
      },
    },
    async (request) => {
      const upload = await uploadStream(request, context.config.maxUploadBytes);
      return importSuppressions(context, upload.stream, {
        region: request.query.region ?? upload.fields.region,
      });
    },
  );
}
