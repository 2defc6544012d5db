import { z } from 'zod';
import { ConflictError, NotFoundError, UserError } from '../errors.js';
import type { Campaign } from '../generated/prisma/client.js';
import { jobs } from '../queues/jobs.js';
import type pg from 'pg';
import { countSegments } from '../messages/segments.js';
import { templateFields } from '../messages/template.js';
import { maxBodyCharsFor } from '../providers/registry.js';
import { isValidTimeZone } from '../messages/zoned-time.js';
import { withTransaction } from '../db/database.js';
import { parseSendWindow, type SendWindow } from '../scheduling/send-window.js';
import type { AppContext } from '../runtime/context.js';
import { checkBodiesFitFallback, checkFallbackAccount } from './fallback-account.js';
import { renderedPages } from './rendered-messages.js';

/**
 * A second configured account for the messages not yet handed over while the campaign's account's
 * circuit is open (README "Rate limits and pushback"); null for none (they wait).
 */
const fallbackAccountInput = z.string().min(1).nullable().optional();

/** Timing fields a campaign is created or edited with (null clears one). */
const timingInput = {
  /** Quiet hours: {"days":["mon",…],"start":"09:00","end":"20:00"}; checked by parseSendWindow. */
  sendWindow: z.unknown().optional(),
  /** How late a message may still go after its time. @defaultValue HERALD_MAX_LATENESS_MS */
  maxLatenessMs: z
    .number()
    .int()
    .min(60_000, 'must be at least 60000 (a minute)')
    .max(2_147_483_647)
    .nullable()
    .optional(),
};

/** The window to store: checked (SEND_WINDOW_INVALID says why), null to clear, undefined to keep. */
function sendWindowOf(input: unknown): SendWindow | null | undefined {
  if (input === undefined || input === null) return input;
  return parseSendWindow(input);
}

export const createCampaignInput = z.strictObject({
  name: z.string().trim().min(1).max(200),
  account: z.string().min(1),
  /** Message text with {{field}} placeholders. */
  template: z.string().min(1).max(5000),
  /** ISO 3166 alpha-2 region for national-format numbers. @defaultValue "AU" */
  defaultRegion: z
    .string()
    .regex(/^[A-Z]{2}$/, 'must be a two-letter region code such as AU')
    .default('AU'),
  /** IANA time zone for local send times and schedules. @defaultValue "Australia/Sydney" */
  timezone: z
    .string()
    .refine(isValidTimeZone, 'must be an IANA time zone such as Australia/Sydney')
    .default('Australia/Sydney'),
  fallbackAccount: fallbackAccountInput,
  ...timingInput,
});
export type CreateCampaignInput = z.input<typeof createCampaignInput>;

export async function createCampaign(
  context: AppContext,
  input: CreateCampaignInput,
): Promise<Campaign> {
  const parsed = createCampaignInput.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UserError(
      'VALIDATION_FAILED',
      `${issue.path.join('.') || 'input'}: ${issue.message}`,
    );
  }
  const data = parsed.data;
  context.config.accounts.get(data.account); // unknown account → error listing the configured ones
  checkFallbackAccount(context, data.account, data.fallbackAccount);
  templateFields(data.template); // malformed placeholder → TEMPLATE_INVALID
  const sendWindow = sendWindowOf(data.sendWindow);
  return context.db.prisma.campaign.create({
    data: {
      name: data.name,
      accountName: data.account,
      template: data.template,
      timezone: data.timezone,
      defaultRegion: data.defaultRegion,
      ...(sendWindow ? { sendWindow: { ...sendWindow } } : {}),
      maxLatenessMs: data.maxLatenessMs ?? null,
      fallbackAccount: data.fallbackAccount ?? null,
    },
  });
}

export async function getCampaign(context: AppContext, id: string): Promise<Campaign> {
  const campaign = z.uuid().safeParse(id).success
    ? await context.db.prisma.campaign.findUnique({ where: { id } })
    : null;
  if (!campaign) throw new NotFoundError('CAMPAIGN_NOT_FOUND', `no campaign with id ${id}`);
  return campaign;
}

/**
 * DRAFT or SCHEDULED → RUNNING now, and hand it to the planner. The campaign must have recipients and its account
 * must still be configured.
 */
export async function startCampaign(context: AppContext, id: string): Promise<Campaign> {
  const campaign = await getCampaign(context, id);
  context.config.accounts.get(campaign.accountName);
  if (campaign.status !== 'DRAFT' && campaign.status !== 'SCHEDULED') {
    throw new ConflictError(
      'CAMPAIGN_NOT_STARTABLE',
      `campaign ${id} is ${campaign.status}; only a DRAFT or SCHEDULED campaign can be started`,
    );
  }
  const recipients = await context.db.prisma.message.count({ where: { campaignId: id } });
  if (recipients === 0) {
    throw new ConflictError(
      'CAMPAIGN_EMPTY',
      `campaign ${id} has no recipients; import a list first`,
    );
  }
  // Rows imported since the fallback was named were checked against the campaign's account only.
  await checkBodiesFitFallback(context, context.db.pool, campaign);
  const updated = await context.db.prisma.campaign.updateMany({
    where: { id, status: { in: ['DRAFT', 'SCHEDULED'] } },
    data: { status: 'RUNNING', startedAt: context.clock.now() },
  });
  if (updated.count === 0)
    throw new ConflictError(
      'CAMPAIGN_NOT_STARTABLE',
      `campaign ${id} was started or changed meanwhile`,
    );
  await enqueuePlan(context, id);
  context.logger.info({ campaignId: id, recipients }, 'campaign started');
  return getCampaign(context, id);
}

/** Asks a planner to enqueue the campaign's due messages; deduplicated while one is waiting. */
export async function enqueuePlan(context: AppContext, campaignId: string): Promise<void> {
  await context.queues.control.add(
    jobs.planCampaign.name,
    { campaignId },
    { ...jobs.planCampaign.options, jobId: `plan-${campaignId}` },
  );
}

export const updateCampaignInput = z
  .strictObject({
    name: z.string().trim().min(1).max(200).optional(),
    template: z.string().min(1).max(5000).optional(),
    defaultRegion: z
      .string()
      .regex(/^[A-Z]{2}$/, 'must be a two-letter region code such as AU')
      .optional(),
    timezone: z
      .string()
      .refine(isValidTimeZone, 'must be an IANA time zone such as Australia/Sydney')
      .optional(),
    fallbackAccount: fallbackAccountInput,
    ...timingInput,
  })
  .refine((input) => Object.keys(input).length > 0, 'name at least one field to change');
export type UpdateCampaignInput = z.input<typeof updateCampaignInput>;

/**
 * Edits a DRAFT or SCHEDULED campaign. A new template is checked against every recipient already imported
 * (each must have a value for each field it uses, and the message must fit the provider's limit,
 * and the fallback's where there is one) and their segment counts are redone, all in one
 * transaction: an edit that any recipient fails changes nothing. The region cannot change once
 * numbers were read in it.
 */
export async function updateCampaign(
  context: AppContext,
  id: string,
  input: UpdateCampaignInput,
): Promise<Campaign> {
  const parsed = updateCampaignInput.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UserError(
      'VALIDATION_FAILED',
      `${issue.path.join('.') || 'input'}: ${issue.message}`,
    );
  }
  const changes = parsed.data;
  const sendWindow = sendWindowOf(changes.sendWindow);
  const campaign = await getCampaign(context, id);
  if (campaign.status !== 'DRAFT' && campaign.status !== 'SCHEDULED') {
    throw new ConflictError(
      'CAMPAIGN_NOT_EDITABLE',
      `campaign ${id} is ${campaign.status}; only a DRAFT or SCHEDULED campaign can be edited`,
    );
  }
  checkFallbackAccount(context, campaign.accountName, changes.fallbackAccount);
  const recipients = await context.db.prisma.message.count({ where: { campaignId: id } });
  if (changes.defaultRegion && changes.defaultRegion !== campaign.defaultRegion && recipients > 0) {
    throw new UserError(
      'VALIDATION_FAILED',
      'defaultRegion: cannot change once recipients are imported (their numbers were read in it)',
    );
  }
  await withTransaction(context.db.pool, async (client) => {
    const template = changes.template ?? campaign.template;
    if (template !== campaign.template) {
      templateFields(template);
      await resegment(context, client, campaign, template);
    }
    const fallbackAccount =
      changes.fallbackAccount === undefined ? campaign.fallbackAccount : changes.fallbackAccount;
    // A new template, or a new fallback, must suit the fallback's provider too.
    if (template !== campaign.template || fallbackAccount !== campaign.fallbackAccount)
      await checkBodiesFitFallback(context, client, { ...campaign, template, fallbackAccount });
    const updated = await client.query(
      `UPDATE campaign SET name = COALESCE($2, name), template = COALESCE($3, template),
         default_region = COALESCE($4, default_region), timezone = COALESCE($5, timezone),
         send_window = CASE WHEN $6 THEN $7::jsonb ELSE send_window END,
         max_lateness_ms = CASE WHEN $8 THEN $9::int ELSE max_lateness_ms END,
         fallback_account = CASE WHEN $10 THEN $11::text ELSE fallback_account END,
         updated_at = now()
       WHERE id = $1 AND status IN ('DRAFT', 'SCHEDULED')`,
      [
        id,
        changes.name ?? null,
        changes.template ?? null,
        changes.defaultRegion ?? null,
        changes.timezone ?? null,
        sendWindow !== undefined,
        sendWindow ? JSON.stringify(sendWindow) : null,
        changes.maxLatenessMs !== undefined,
        changes.maxLatenessMs ?? null,
        changes.fallbackAccount !== undefined,
        changes.fallbackAccount ?? null,
      ],
    );
    if (updated.rowCount === 0)
      throw new ConflictError('CAMPAIGN_NOT_EDITABLE', `campaign ${id} was started meanwhile`);
  });
  return getCampaign(context, id);
}

async function resegment(
  context: AppContext,
  client: pg.PoolClient,
  campaign: Campaign,
  template: string,
): Promise<void> {
  const account = context.config.accounts.get(campaign.accountName);
  const maxBody = maxBodyCharsFor(account);
  for await (const page of renderedPages(client, campaign.id, template)) {
    const segments = page.map(({ body }) => {
      if (maxBody !== undefined && [...body].length > maxBody) {
        throw new UserError(
          'TEMPLATE_TOO_LONG',
          `the message would be ${[...body].length} characters for some recipients; the account's provider accepts at most ${maxBody}`,
        );
      }
      return countSegments(body).segments;
    });
    await client.query(
      'UPDATE message m SET segments = u.segments FROM unnest($1::uuid[], $2::int[]) AS u(id, segments) WHERE m.id = u.id',
      [page.map((r) => r.id), segments],
    );
  }
}
