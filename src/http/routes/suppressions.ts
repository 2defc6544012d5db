import type { FastifyInstance } from 'fastify';
import { NotFoundError, UserError } from '../../errors.js';
import type { AppContext } from '../../runtime/context.js';
import { exportSuppressions, importSuppressions } from '../../suppressions/suppression-csv.js';
import {
  addSuppressions,
  parseSuppressionPhone,
  removeSuppression,
} from '../../suppressions/suppressions.js';
import { apiKeyAuth } from '../api-auth.js';
import { uploadStream } from '../upload-stream.js';

/** The suppression (opt-out) list under /v1 (Bearer API keys). */
export async function suppressionRoutes(
  app: FastifyInstance,
  { context }: { context: AppContext },
) {
  app.addHook('onRequest', apiKeyAuth(context.config.apiKeys));

  app.get('/suppressions.csv', async (_request, reply) =>
    reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', 'attachment; filename="suppressions.csv"')
      .send(exportSuppressions(context)),
  );

  app.get<{ Params: { phone: string }; Querystring: { region?: string } }>(
    '/suppressions/:phone',
    async (request) => {
      const phone = parseSuppressionPhone(request.params.phone, request.query.region);
      const entry = await context.db.prisma.suppression.findUnique({ where: { phone } });
      if (!entry)
        throw new NotFoundError('SUPPRESSION_NOT_FOUND', `${phone} is not on the suppression list`);
      return entry;
    },
  );

  app.post<{ Body: { phone?: unknown; reason?: unknown; region?: unknown } }>(
    '/suppressions',
    async (request, reply) => {
      const body = request.body ?? {};
      if (typeof body.phone !== 'string')
        throw new UserError('VALIDATION_FAILED', 'phone: expected a phone number string');
      if (body.reason !== undefined && typeof body.reason !== 'string') {
        throw new UserError('VALIDATION_FAILED', 'reason: expected a string');
      }
      const phone = parseSuppressionPhone(
        body.phone,
        typeof body.region === 'string' ? body.region : undefined,
      );
      const added = await addSuppressions(context, [
        { phone, reason: (body.reason as string | undefined) || 'manual' },
      ]);
      return reply.status(added ? 201 : 200).send({ phone, added: added === 1 });
    },
  );

  app.delete<{ Params: { phone: string }; Querystring: { region?: string } }>(
    '/suppressions/:phone',
    async (request, reply) => {
      const phone = parseSuppressionPhone(request.params.phone, request.query.region);
      if (!(await removeSuppression(context, phone))) {
        throw new NotFoundError('SUPPRESSION_NOT_FOUND', `${phone} is not on the suppression list`);
      }
      return reply.status(204).send();
    },
  );

  app.post<{ Querystring: { region?: string } }>('/suppressions/import', async (request) => {
    const upload = await uploadStream(request, context.config.maxUploadBytes);
    return importSuppressions(context, upload.stream, {
      region: request.query.region ?? upload.fields.region,
    });
  });
}
