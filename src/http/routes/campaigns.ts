import type { FastifyInstance } from 'fastify';
import {
  createCampaign,
  getCampaign,
  startCampaign,
  type CreateCampaignInput,
  type UpdateCampaignInput,
  updateCampaign,
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
import type { MessageStatus } from '../../generated/prisma/enums.js';
import { FAILURE_STATUSES } from '../../messages/status.js';
import { readAccountPauses } from '../../sending/account-state.js';
import type { AppContext } from '../../runtime/context.js';
import { apiKeyAuth } from '../api-auth.js';
import {
  anyObject,
  campaignSchema,
  dateTime,
  errorResponses,
  idParams,
  nullableDateTime,
  responseObject,
} from '../openapi.js';
import { uploadStream } from '../upload-stream.js';

type IdParams = { Params: { id: string } };

const tags = ['campaigns'];
const count = { type: 'integer' } as const;

/** The fallback account of create and edit (checked by the service). */
const fallbackProperty = {
  fallbackAccount: {
    type: ['string', 'null'],
    minLength: 1,
    description:
      "a configured account other than the campaign's: while the campaign's account's circuit is open (provider down), its messages not yet handed over go through this one instead; null for none (they wait). Every imported message must fit its provider (FALLBACK_BODY_TOO_LONG)",
  },
} as const;

/** The timing fields of create and edit (checked by the service: SEND_WINDOW_INVALID says why). */
const timingProperties = {
  sendWindow: {
    type: ['object', 'null'],
    description:
      'quiet hours, as the hours it may send, in each recipient\'s time zone (the row\'s `timezone`, else the campaign\'s): {"days":["mon","tue","wed","thu","fri","sat"],"start":"09:00","end":"20:00"}; null for any time',
  },
  maxLatenessMs: {
    type: ['integer', 'null'],
    minimum: 60000,
    description:
      'a message whose time passed more than this ago (workers were down) expires instead of going late; null: HERALD_MAX_LATENESS_MS',
  },
} as const;

const updateBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    template: { type: 'string', minLength: 1, maxLength: 5000 },
    defaultRegion: {
      type: 'string',
      pattern: '^[A-Z]{2}$',
      description: 'only before recipients are imported',
    },
    timezone: { type: 'string', description: 'IANA time zone for local send times and schedules' },
    ...fallbackProperty,
    ...timingProperties,
  },
} as const;

const statsProperties = {
  campaign: responseObject({
    id: { type: 'string' },
    name: { type: 'string' },
    account: { type: 'string' },
    fallbackAccount: {
      type: ['string', 'null'],
      description: 'where its messages go while its account is down; null: they wait',
    },
    status: { type: 'string' },
    createdAt: dateTime,
    startedAt: nullableDateTime,
    completedAt: nullableDateTime,
  }),
  total: count,
  counts: { ...anyObject, description: 'messages per status', additionalProperties: count },
  remaining: { ...count, description: 'not yet sent: PENDING + QUEUED + SENDING' },
  processed: { ...count, description: 'done sending, whatever the outcome' },
  delivered: count,
  failed: { ...count, description: 'FAILED + EXPIRED + REJECTED + UNDELIVERABLE' },
  awaitingReport: { ...count, description: 'SENT, final report not yet in' },
  scheduledAtProvider: {
    ...count,
    description: 'SCHEDULED: handed to a provider that holds them until their time',
  },
  deliveryRate: { type: ['number', 'null'] },
  eta: {
    type: ['object', 'null'],
    additionalProperties: true,
    properties: {
      ratePerSecond: { type: 'number' },
      remainingSeconds: { type: 'number' },
      finishesAt: dateTime,
    },
  },
};

const statsSchema = responseObject(statsProperties, 'Live counts from the campaign counters');

const reportSchema = responseObject(
  {
    ...statsProperties,
    failuresByReason: {
      type: 'array',
      items: responseObject({
        status: { type: 'string' },
        code: { type: 'string' },
        count,
      }),
    },
    segments: count,
    handedOverByAccount: {
      type: 'array',
      description:
        "messages handed to each account (accepted, or sent without an answer): the campaign's, and its fallback's while that was down",
      items: responseObject({ account: { type: 'string' }, messages: count }),
    },
    viaFallback: {
      ...count,
      description: "messages handed to an account other than the campaign's (its fallback)",
    },
    cost: { type: ['object', 'null'], additionalProperties: true },
    firstSentAt: nullableDateTime,
    lastSentAt: nullableDateTime,
    sendRate: { type: ['number', 'null'], description: 'messages per second, first to last send' },
    throughput: {
      type: 'array',
      description: 'sends and final reports per bucket of throughputBucketSeconds',
      items: responseObject({
        at: dateTime,
        sent: count,
        delivered: count,
        failed: count,
      }),
    },
    throughputBucketSeconds: count,
    replies: count,
    optedOut: count,
    unmatchedReports: anyObject,
  },
  'Stats plus failures by reason, throughput, cost and replies',
);

const importReportSchema = responseObject(
  {
    importId: { type: 'string' },
    rows: count,
    accepted: count,
    rejected: count,
    duplicates: count,
    suppressed: count,
    rejections: {
      type: 'array',
      description: 'the first 100 rejected rows; all of them at …/rejections.csv',
      items: responseObject({ line: count, reason: { type: 'string' } }),
    },
    phoneColumn: { type: 'string' },
    columns: { type: 'array', items: { type: 'string' } },
  },
  'The validation report of the import',
);

const importSchema = responseObject({
  id: { type: 'string' },
  campaignId: { type: 'string' },
  phoneColumn: { type: 'string' },
  columns: { type: 'array', items: { type: 'string' } },
  rows: count,
  accepted: count,
  rejected: count,
  duplicates: count,
  suppressed: count,
  createdAt: dateTime,
});

const progressSchema = responseObject(
  { total: count, processed: count, delivered: count, failed: count },
  'Counts for a progress bar: processed = done sending, whatever the outcome',
);

type Progress = { total: number; processed: number; delivered: number; failed: number };

/** Progress of many campaigns in one query over the counters, for the list (and dashboard). */
async function progressOf(context: AppContext, ids: string[]): Promise<Map<string, Progress>> {
  const progress = new Map<string, Progress>(
    ids.map((id) => [id, { total: 0, processed: 0, delivered: 0, failed: 0 }]),
  );
  if (ids.length === 0) return progress;
  const { rows } = await context.db.pool.query<{
    id: string;
    status: MessageStatus;
    count: string;
  }>(
    `SELECT campaign_id AS id, status, sum(count) AS count FROM campaign_counter
     WHERE campaign_id = ANY($1::uuid[]) GROUP BY 1, 2`,
    [ids],
  );
  for (const row of rows) {
    const p = progress.get(row.id)!;
    const n = Number(row.count);
    p.total += n;
    if (!UNSENT.includes(row.status)) p.processed += n;
    if (row.status === 'DELIVERED') p.delivered += n;
    if (FAILURE_STATUSES.includes(row.status)) p.failed += n;
  }
  return progress;
}

const UNSENT: MessageStatus[] = ['PENDING', 'QUEUED', 'SENDING'];

const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'account', 'template'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    account: { type: 'string', minLength: 1, description: 'a configured provider account' },
    template: {
      type: 'string',
      minLength: 1,
      maxLength: 5000,
      description: 'message text with {{field}} placeholders filled from the list columns',
    },
    defaultRegion: {
      type: 'string',
      pattern: '^[A-Z]{2}$',
      default: 'AU',
      description: 'region for national-format numbers',
    },
    timezone: {
      type: 'string',
      default: 'Australia/Sydney',
      description: 'IANA time zone for local send times and schedules',
    },
    ...fallbackProperty,
    ...timingProperties,
  },
} as const;

/** Lifecycle actions share one shape: the campaign after the change, or a state conflict. */
const action = (summary: string) => ({
  tags,
  summary,
  params: idParams,
  response: {
    200: campaignSchema,
    ...errorResponses('CAMPAIGN_NOT_FOUND', 'CAMPAIGN_STATE_CONFLICT', 'VALIDATION_FAILED'),
  },
});

/**
 * The campaign API under /v1 (Bearer API keys). The schemas validate every request and generate
 * the OpenAPI document (/docs); README.md "HTTP API" gives the overview.
 */
export async function campaignRoutes(app: FastifyInstance, { context }: { context: AppContext }) {
  app.addHook('onRequest', apiKeyAuth(context.config.apiKeys));

  app.get(
    '/accounts',
    {
      schema: {
        tags: ['accounts'],
        summary: 'Configured provider accounts (credential names only, never values)',
        response: {
          200: responseObject({
            accounts: {
              type: 'array',
              items: responseObject({
                name: { type: 'string' },
                provider: { type: 'string' },
                rate: { type: 'number', description: 'messages per second (accounts file)' },
                segmentRate: {
                  type: 'number',
                  description: 'segments per second, where the provider limits segments',
                },
                credentials: { type: 'array', items: { type: 'string' } },
                paused: {
                  type: ['object', 'null'],
                  additionalProperties: true,
                  description: 'set while sending on the account is paused, with the reason',
                },
              }),
            },
          }),
          ...errorResponses(),
        },
      },
    },
    async () => {
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
    },
  );

  app.post<{ Body: CreateCampaignInput }>(
    '/campaigns',
    {
      schema: {
        tags,
        summary: 'Create a DRAFT campaign',
        body: createBody,
        response: {
          201: campaignSchema,
          ...errorResponses(
            'VALIDATION_FAILED',
            'INVALID_JSON',
            'BODY_TOO_LARGE',
            'ACCOUNT_UNKNOWN',
            'FALLBACK_ACCOUNT_INVALID',
            'TEMPLATE_INVALID',
            'SEND_WINDOW_INVALID',
            'UNSUPPORTED_MEDIA_TYPE',
          ),
        },
      },
    },
    async (request, reply) => {
      if (typeof request.body !== 'object' || request.body === null) {
        throw new UserError('VALIDATION_FAILED', 'expected a JSON object body');
      }
      const campaign = await createCampaign(context, request.body);
      return reply.status(201).send(campaign);
    },
  );

  app.patch<IdParams & { Body: UpdateCampaignInput }>(
    '/campaigns/:id',
    {
      schema: {
        tags,
        summary:
          'Edit a DRAFT or SCHEDULED campaign (a new template is checked against every imported recipient)',
        params: idParams,
        body: updateBody,
        response: {
          200: campaignSchema,
          ...errorResponses(
            'VALIDATION_FAILED',
            'CAMPAIGN_NOT_FOUND',
            'CAMPAIGN_NOT_EDITABLE',
            'TEMPLATE_INVALID',
            'TEMPLATE_FIELD_MISSING',
            'TEMPLATE_TOO_LONG',
            'SEND_WINDOW_INVALID',
            'ACCOUNT_UNKNOWN',
            'FALLBACK_ACCOUNT_INVALID',
            'FALLBACK_BODY_TOO_LONG',
          ),
        },
      },
    },
    async (request) => updateCampaign(context, request.params.id, request.body),
  );

  app.get(
    '/campaigns',
    {
      schema: {
        tags,
        summary: 'The latest 100 campaigns, newest first',
        response: {
          200: responseObject({
            campaigns: {
              type: 'array',
              items: {
                ...campaignSchema,
                properties: { ...(campaignSchema.properties as object), progress: progressSchema },
              },
            },
          }),
          ...errorResponses(),
        },
      },
    },
    async () => {
      const campaigns = await context.db.prisma.campaign.findMany({
        orderBy: { createdAt: 'desc' },
        take: 100,
      });
      const progress = await progressOf(
        context,
        campaigns.map((c) => c.id),
      );
      return { campaigns: campaigns.map((c) => ({ ...c, progress: progress.get(c.id) })) };
    },
  );

  app.get<IdParams>(
    '/campaigns/:id',
    {
      schema: {
        tags,
        summary: 'Live stats: counts by status, progress, delivery rate, ETA',
        params: idParams,
        response: { 200: statsSchema, ...errorResponses('CAMPAIGN_NOT_FOUND') },
      },
    },
    async (request) => getCampaignStats(context, request.params.id),
  );

  app.get<IdParams>(
    '/campaigns/:id/report',
    {
      schema: {
        tags,
        summary: 'The report: stats, failures by reason, throughput over time, cost, replies',
        params: idParams,
        response: { 200: reportSchema, ...errorResponses('CAMPAIGN_NOT_FOUND') },
      },
    },
    async (request) => getCampaignReport(context, request.params.id),
  );

  app.post<IdParams & { Querystring: { phoneColumn?: string } }>(
    '/campaigns/:id/recipients',
    {
      schema: {
        tags,
        summary: 'Import a recipient list (CSV) into a DRAFT campaign',
        description:
          'Send the CSV as a text/csv body or as the file field of a multipart/form-data form (a phoneColumn field before the file names the phone column). All or nothing: bad rows are reported and skipped, a bad file imports nothing.',
        params: idParams,
        querystring: {
          type: 'object',
          properties: {
            phoneColumn: { type: 'string', description: 'the phone column, if not found by name' },
          },
        },
        response: {
          200: importReportSchema,
          ...errorResponses(
            'CAMPAIGN_NOT_FOUND',
            'CAMPAIGN_NOT_EDITABLE',
            'UNSUPPORTED_MEDIA_TYPE',
            'UPLOAD_FILE_MISSING',
            'CSV_TOO_LARGE',
            'CSV_NOT_UTF8',
            'CSV_NOT_TEXT',
            'CSV_EMPTY',
            'CSV_NO_PHONE_COLUMN',
            'CSV_NO_VALID_ROWS',
            'TEMPLATE_FIELD_UNKNOWN',
            'VALIDATION_FAILED',
          ),
        },
      },
    },
    async (request) => {
      await getCampaign(context, request.params.id);
      const upload = await uploadStream(request, context.config.maxUploadBytes);
      return importRecipients(context, request.params.id, upload.stream, {
        phoneColumn: request.query.phoneColumn ?? upload.fields.phoneColumn,
      });
    },
  );

  app.get<IdParams>(
    '/campaigns/:id/imports',
    {
      schema: {
        tags,
        summary: "The campaign's imports, oldest first",
        params: idParams,
        response: {
          200: responseObject({ imports: { type: 'array', items: importSchema } }),
          ...errorResponses('CAMPAIGN_NOT_FOUND'),
        },
      },
    },
    async (request) => {
      await getCampaign(context, request.params.id);
      return {
        imports: await context.db.prisma.recipientImport.findMany({
          where: { campaignId: request.params.id },
          orderBy: { createdAt: 'asc' },
        }),
      };
    },
  );

  app.get<{ Params: { id: string; importId: string } }>(
    '/campaigns/:id/imports/:importId/rejections.csv',
    {
      schema: {
        tags,
        summary: 'Every rejected row of an import: line, reason, the row as written',
        params: {
          type: 'object',
          required: ['id', 'importId'],
          properties: { id: { type: 'string' }, importId: { type: 'string' } },
        },
        response: {
          200: {
            description: 'CSV: line,reason,row',
            content: { 'text/csv': { schema: { type: 'string' } } },
          },
          ...errorResponses('CAMPAIGN_NOT_FOUND', 'IMPORT_NOT_FOUND'),
        },
      },
    },
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

  app.get<IdParams>(
    '/campaigns/:id/estimate',
    {
      schema: {
        tags,
        summary: 'Messages, segments and cost of what starting would send',
        params: idParams,
        response: {
          200: responseObject({
            messages: count,
            segments: count,
            multipart: count,
            pricePerSegment: { type: ['number', 'null'] },
            cost: { type: ['number', 'null'] },
            currency: { type: ['string', 'null'] },
          }),
          ...errorResponses('CAMPAIGN_NOT_FOUND'),
        },
      },
    },
    async (request) => estimateCampaign(context, request.params.id),
  );

  app.post<IdParams>(
    '/campaigns/:id/start',
    {
      schema: {
        tags,
        summary: 'Start a DRAFT or SCHEDULED campaign now (workers must be running)',
        params: idParams,
        response: {
          200: campaignSchema,
          ...errorResponses(
            'CAMPAIGN_NOT_FOUND',
            'CAMPAIGN_NOT_STARTABLE',
            'CAMPAIGN_EMPTY',
            'ACCOUNT_UNKNOWN',
            'FALLBACK_BODY_TOO_LONG',
          ),
        },
      },
    },
    async (request) => startCampaign(context, request.params.id),
  );

  app.post<IdParams & { Body: { at: string } }>(
    '/campaigns/:id/schedule',
    {
      schema: {
        tags,
        summary: 'Schedule (or reschedule) a DRAFT or SCHEDULED campaign',
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['at'],
          properties: {
            at: {
              type: 'string',
              minLength: 1,
              description:
                "ISO 8601 with an offset, or a local time (2026-12-04 10:00) read in the campaign's time zone",
            },
          },
        },
        response: {
          200: campaignSchema,
          ...errorResponses(
            'CAMPAIGN_NOT_FOUND',
            'CAMPAIGN_STATE_CONFLICT',
            'CAMPAIGN_EMPTY',
            'SCHEDULE_INVALID',
            'SCHEDULE_IN_PAST',
            'FALLBACK_BODY_TOO_LONG',
            'VALIDATION_FAILED',
            'INVALID_JSON',
          ),
        },
      },
    },
    async (request) => scheduleCampaign(context, request.params.id, request.body.at),
  );
  app.post<IdParams>(
    '/campaigns/:id/pause',
    { schema: action('Pause a RUNNING campaign: no new sends within seconds') },
    async (request) => pauseCampaign(context, request.params.id),
  );
  app.post<IdParams>(
    '/campaigns/:id/resume',
    { schema: action('Resume a PAUSED campaign') },
    async (request) => resumeCampaign(context, request.params.id),
  );
  app.post<IdParams>(
    '/campaigns/:id/cancel',
    {
      schema: {
        ...action('Cancel a campaign: its unsent messages become CANCELLED'),
        response: {
          200: responseObject({
            campaign: campaignSchema,
            cancelled: { ...count, description: 'messages that will now never be sent' },
            alreadyHandedOver: {
              ...count,
              description:
                'messages the provider already had and cannot take back (sent, being sent, unknown, or held for later by a provider that cannot cancel)',
            },
            scheduledNotCancellable: {
              ...count,
              description:
                'of those, held by the provider until their time (native scheduling) and not cancellable there: they will be sent',
            },
            cancellingAtProvider: {
              ...count,
              description:
                'held by the provider until their time and being cancelled there by a background job',
            },
          }),
          ...errorResponses('CAMPAIGN_NOT_FOUND', 'CAMPAIGN_STATE_CONFLICT', 'VALIDATION_FAILED'),
        },
      },
    },
    async (request) => cancelCampaign(context, request.params.id),
  );
}
