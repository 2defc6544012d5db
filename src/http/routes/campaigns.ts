import type { FastifyInstance } from 'fastify';
import type { Readable } from 'node:stream';
import {
  createCampaign,
  getCampaign,
  startCampaign,
  type CreateCampaignInput,
} from '../../campaigns/campaign-service.js';
import { getCampaignReport, getCampaignStats } from '../../campaigns/campaign-stats.js';
import { importRecipients } from '../../campaigns/import-recipients.js';
import { UserError } from '../../errors.js';
import { readAccountPauses } from '../../sending/account-state.js';
import type { AppContext } from '../../runtime/context.js';
import { apiKeyAuth } from '../api-auth.js';

type IdParams = { Params: { id: string } };

/** The campaign API under /v1 (Bearer API keys). README.md "HTTP API" documents each route. */
export async function campaignRoutes(app: FastifyInstance, { context }: { context: AppContext }) {
  app.addHook('onRequest', apiKeyAuth(context.config.apiKeys));

  // A CSV upload is streamed straight into the importer, never buffered whole.
  app.addContentTypeParser(['text/csv', 'application/csv'], (_request, payload, done) =>
    done(null, payload),
  );

  app.get('/accounts', async () => {
    const pauses = await readAccountPauses(
      context.redis,
      context.config.queuePrefix,
      context.clock.now(),
    );
    return {
      accounts: context.config.accounts
        .describe()
        .map((a) => ({ ...a, paused: pauses[a.name] ?? null })),
    };
  });

  app.post<{ Body: CreateCampaignInput }>('/campaigns', async (request, reply) => {
    if (typeof request.body !== 'object' || request.body === null) {
      throw new UserError('VALIDATION_FAILED', 'expected a JSON object body');
    }
    const campaign = await createCampaign(context, request.body);
    return reply.status(201).send(campaign);
  });

  app.get('/campaigns', async () => ({
    campaigns: await context.db.prisma.campaign.findMany({
      orderBy: { createdAt: 'desc' },
      take: 100,
    }),
  }));

  app.get<IdParams>('/campaigns/:id', async (request) =>
    getCampaignStats(context, request.params.id),
  );

  app.get<IdParams>('/campaigns/:id/report', async (request) =>
    getCampaignReport(context, request.params.id),
  );

  app.post<IdParams & { Querystring: { phoneColumn?: string } }>(
    '/campaigns/:id/recipients',
    async (request) => {
      if (!request.headers['content-type']?.match(/^(text|application)\/csv/)) {
        throw new UserError('UNSUPPORTED_MEDIA_TYPE', 'send the recipient list as text/csv', 415);
      }
      await getCampaign(context, request.params.id);
      return importRecipients(context, request.params.id, request.body as Readable, {
        phoneColumn: request.query.phoneColumn,
      });
    },
  );

  app.post<IdParams>('/campaigns/:id/start', async (request) =>
    startCampaign(context, request.params.id),
  );
}
