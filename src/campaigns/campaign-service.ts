import { z } from 'zod';
import { ConflictError, NotFoundError, UserError } from '../errors.js';
import type { Campaign } from '../generated/prisma/client.js';
import { jobs } from '../queues/jobs.js';
import { templateFields } from '../messages/template.js';
import { isValidTimeZone } from '../messages/zoned-time.js';
import type { AppContext } from '../runtime/context.js';

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
  templateFields(data.template); // malformed placeholder → TEMPLATE_INVALID
  return context.db.prisma.campaign.create({
    data: {
      name: data.name,
      accountName: data.account,
      template: data.template,
      timezone: data.timezone,
      defaultRegion: data.defaultRegion,
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
