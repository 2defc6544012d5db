import type { FastifyInstance } from 'fastify';
import {
  createCampaign,
  getCampaign,
  startCampaign,
  type CreateCampaignInput,
} from '../../campaigns/campaign-service.js';
import { getCampaignReport, getCampaignStats } from '../../campaigns/campaign-stats.js';
import {
  cancelCampaign,
  pauseCampaign,
  resumeCampaign,
  scheduleCampaign,
} from '../../campaigns/campaign-lifecycle.js';
import { estimateCampaign } from '../../campaigns/estimate.js';
import { rejectionsCsv } from '../../campaigns/import-rejections.js';
import { importRecipients } from '../../campaigns/import-recipients.js';
import { UserError } from '../../errors.js';
import { readAccountPauses } from '../../sending/account-state.js';
import type { AppContext } from '../../runtime/context.js';
import { apiKeyAuth } from '../api-auth.js';
import { uploadStream } from '../upload-stream.js';

type IdParams = { Params: { id: string } };

/** The campaign API under /v1 (Bearer API keys). README.md "HTTP API" documents each route. */
export async function campaignRoutes(app: FastifyInstance, { context }: { context: AppContext }) {
  app.addHook('onRequest', apiKeyAuth(context.config.apiKeys));

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
      await getCampaign(context, request.params.id);
      const upload = await uploadStream(request, context.config.maxUploadBytes);
      return importRecipients(context, request.params.id, upload.stream, {
        phoneColumn: request.query.phoneColumn ?? upload.fields.phoneColumn,
      });
    },
  );

  app.get<IdParams>('/campaigns/:id/imports', async (request) => {
    await getCampaign(context, request.params.id);
    return {
      imports: await context.db.prisma.recipientImport.findMany({
        where: { campaignId: request.params.id },
        orderBy: { createdAt: 'asc' },
      }),
    };
  });

  app.get<{ Params: { id: string; importId: string } }>(
    '/campaigns/:id/imports/:importId/rejections.csv',
    async (request, reply) => {
      const csv = await rejectionsCsv(context, request.params.id, request.params.importId);
      return reply
        .type('text/csv; charset=utf-8')
        .header(
          'content-disposition',
          `attachment; filename="rejections-${request.params.importId}.csv"`,
        )
        .send(csv);
    },
  );

  app.get<IdParams>('/campaigns/:id/estimate', async (request) =>
    estimateCampaign(context, request.params.id),
  );

  app.post<IdParams>('/campaigns/:id/start', async (request) =>
    startCampaign(context, request.params.id),
  );

  app.post<IdParams>('/campaigns/:id/schedule', async (request) => {
    const at = (request.body as { at?: unknown } | undefined)?.at;
    if (typeof at !== 'string')
      throw new UserError('VALIDATION_FAILED', 'at: expected a date and time string');
    return scheduleCampaign(context, request.params.id, at);
  });
  app.post<IdParams>('/campaigns/:id/pause', async (request) =>
    pauseCampaign(context, request.params.id),
  );
  app.post<IdParams>('/campaigns/:id/resume', async (request) =>
    resumeCampaign(context, request.params.id),
  );
  app.post<IdParams>('/campaigns/:id/cancel', async (request) =>
    cancelCampaign(context, request.params.id),
  );
}
