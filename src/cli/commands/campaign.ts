import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { createCampaign, startCampaign, updateCampaign } from '../../campaigns/campaign-service.js';
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
import { recipientsCsv } from '../../campaigns/recipients-csv.js';
import type { AppContext } from '../../runtime/context.js';
import { openFile, withContext } from '../with-context.js';
import { formatCampaignReport, formatImportReport } from '../format-report.js';
import { formatDuration, parseDuration } from '../../duration.js';
import { UserError } from '../../errors.js';
import type { Campaign } from '../../generated/prisma/client.js';
import {
  formatSendWindow,
  parseSendWindowText,
  type SendWindow,
} from '../../scheduling/send-window.js';
import { watchCampaign } from '../watch-campaign.js';

async function importFile(
  context: AppContext,
  campaignId: string,
  file: string,
  options: { phoneColumn?: string; rejections?: string },
) {
  const report = await importRecipients(context, campaignId, await openFile(file), {
    phoneColumn: options.phoneColumn,
  });
  console.log(formatImportReport(report));
  if (options.rejections && report.rejected > 0) {
    await pipeline(
      await rejectionsCsv(context, campaignId, report.importId),
      createWriteStream(options.rejections),
    );
    console.log(`Rejected rows written to ${options.rejections}`);
  }
  return report;
}

export function registerCampaignCommands(program: Command): void {
  const campaign = program.command('campaign').description('create, start and follow campaigns');

  campaign
    .command('create')
    .description('create a DRAFT campaign, optionally importing a CSV and starting it')
    .requiredOption('--name <name>', 'campaign name')
    .requiredOption('--account <account>', 'provider account (see `herald accounts`)')
    .requiredOption('--message <template>', 'message text; {{column}} fills in a CSV column')
    .option(
      '--fallback-account <account>',
      "send through this account while the campaign's account is down (circuit open)",
    )
    .option('--region <code>', 'region for national-format numbers', 'AU')
    .option('--timezone <zone>', 'IANA time zone for local send times', 'Australia/Sydney')
    .option('--window <window>', 'send window (quiet hours), e.g. "mon-sat 09:00-20:00"')
    .option('--max-lateness <duration>', 'send a late message only this late, e.g. 30m, 2h')
    .option('--csv <file>', 'recipient list to import')
    .option('--phone-column <name>', 'CSV column holding the number (default: found by name)')
    .option('--rejections <file>', 'write every rejected row (line, reason, row) to this CSV')
    .option('--start', 'start sending right after the import')
    .action(
      async (opts: {
        name: string;
        account: string;
        message: string;
        fallbackAccount?: string;
        region: string;
        timezone: string;
        window?: string;
        maxLateness?: string;
        csv?: string;
        phoneColumn?: string;
        rejections?: string;
        start?: boolean;
      }) => {
        const timing = timingOptions(opts);
        await withContext(async (context) => {
          const created = await createCampaign(context, {
            name: opts.name,
            account: opts.account,
            template: opts.message,
            defaultRegion: opts.region,
            timezone: opts.timezone,
            ...fallbackOption(opts),
            ...timing,
          });
          console.log(`Created campaign ${created.id}${describeSettings(created)}`);
          if (opts.csv) await importFile(context, created.id, opts.csv, opts);
          if (opts.start) {
            await startCampaign(context, created.id);
            console.log(`Started; follow it with: herald campaign status ${created.id} --watch`);
          }
        });
      },
    );

  campaign
    .command('edit <id>')
    .description('change a DRAFT or SCHEDULED campaign')
    .option('--name <name>', 'campaign name')
    .option('--message <template>', 'message text (checked against every imported recipient)')
    .option('--fallback-account <account>', 'account to send through while it is down, or "none"')
    .option('--timezone <zone>', 'IANA time zone for local send times and the send window')
    .option('--window <window>', 'send window, e.g. "mon-sat 09:00-20:00", or "none"')
    .option('--max-lateness <duration>', 'e.g. 30m, 2h, or "default" (HERALD_MAX_LATENESS_MS)')
    .action(
      async (
        id: string,
        opts: {
          name?: string;
          message?: string;
          fallbackAccount?: string;
          timezone?: string;
          window?: string;
          maxLateness?: string;
        },
      ) => {
        const timing = timingOptions(opts);
        await withContext(async (context) => {
          const updated = await updateCampaign(context, id, {
            name: opts.name,
            template: opts.message,
            timezone: opts.timezone,
            ...fallbackOption(opts),
            ...timing,
          });
          console.log(`Campaign ${id} updated${describeSettings(updated)}`);
        });
      },
    );

  campaign
    .command('import <id> <file>')
    .description('import a CSV of recipients into a DRAFT campaign')
    .option('--phone-column <name>', 'CSV column holding the number (default: found by name)')
    .option('--rejections <file>', 'write every rejected row (line, reason, row) to this CSV')
    .action(
      async (id: string, file: string, opts: { phoneColumn?: string; rejections?: string }) => {
        await withContext((context) => importFile(context, id, file, opts));
      },
    );

  campaign
    .command('schedule <id>')
    .description('start the campaign at a time (again to reschedule)')
    .requiredOption(
      '--at <time>',
      "2026-12-04T10:00:00+11:00, or 2026-12-04 10:00 in the campaign's time zone",
    )
    .action(async (id: string, opts: { at: string }) => {
      await withContext(async (context) => {
        const campaign = await scheduleCampaign(context, id, opts.at);
        console.log(`Campaign ${id} starts at ${campaign.scheduledAt!.toISOString()}`);
      });
    });

  for (const [name, action, what] of [
    ['pause', pauseCampaign, 'stop sending (messages being sent finish)'],
    ['resume', resumeCampaign, 'carry on sending a paused campaign'],
  ] as const) {
    campaign
      .command(`${name} <id>`)
      .description(what)
      .action(async (id: string) => {
        await withContext(async (context) => {
          const updated = await action(context, id);
          console.log(`Campaign ${id} is ${updated.status}`);
        });
      });
  }

  campaign
    .command('cancel <id>')
    .description('cancel a campaign: messages not yet handed to the provider are never sent')
    .action(async (id: string) => {
      await withContext(async (context) => {
        const result = await cancelCampaign(context, id);
        console.log(
          `Campaign ${id} cancelled: ${result.cancelled} messages will not be sent; ${result.alreadyHandedOver} were already handed to the provider`,
        );
        if (result.scheduledNotCancellable > 0)
          console.log(
            `  ${result.scheduledNotCancellable} of those are held by the provider for later and it cannot cancel them: they will still be sent`,
          );
        if (result.cancellingAtProvider > 0)
          console.log(
            `  ${result.cancellingAtProvider} held by the provider for later are being cancelled there (see \`campaign status ${id}\`)`,
          );
      });
    });

  campaign
    .command('estimate <id>')
    .description('messages, segments and cost of what starting the campaign would send')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      await withContext(async (context) => {
        const estimate = await estimateCampaign(context, id);
        if (opts.json) return console.log(JSON.stringify(estimate, null, 2));
        const cost =
          estimate.cost === null
            ? 'no price set for the account'
            : `${estimate.cost.toFixed(2)} ${estimate.currency}`;
        console.log(
          `${estimate.messages} messages, ${estimate.segments} segments (${estimate.multipart} multipart), cost ${cost}`,
        );
      });
    });

  campaign
    .command('start <id>')
    .description('start sending a DRAFT campaign (workers must be running)')
    .action(async (id: string) => {
      await withContext(async (context) => {
        const started = await startCampaign(context, id);
        console.log(`Campaign ${started.id} is ${started.status}`);
      });
    });

  campaign
    .command('status <id>')
    .description("show a campaign's progress")
    .option('--watch', 'follow it live with a progress bar until it finishes')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { watch?: boolean; json?: boolean }) => {
      await withContext(async (context) => {
        const stats = opts.watch
          ? await watchCampaign(context, id)
          : await getCampaignStats(context, id);
        if (opts.json) console.log(JSON.stringify(stats, null, 2));
        else if (!opts.watch) {
          console.log(
            `${stats.campaign.name}: ${stats.campaign.status} · ${stats.processed}/${stats.total} sent · delivered ${stats.delivered} · failed ${stats.failed} · awaiting report ${stats.awaitingReport}${stats.eta ? ` · ETA ${formatDuration(stats.eta.remainingSeconds * 1000)}` : ''}`,
          );
        }
      });
    });

  campaign
    .command('report <id>')
    .description(
      "print a campaign's report: counts, delivery rate, failures by reason, throughput, cost",
    )
    .option('--json', 'print JSON')
    .option('--csv <file>', 'also write one row per recipient to this CSV file (streamed)')
    .action(async (id: string, opts: { json?: boolean; csv?: string }) => {
      await withContext(async (context) => {
        const report = await getCampaignReport(context, id);
        console.log(opts.json ? JSON.stringify(report, null, 2) : formatCampaignReport(report));
        if (opts.csv) {
          // Streamed page by page to the file: any campaign size in constant memory.
          await pipeline(
            Readable.from(await recipientsCsv(context, id)),
            createWriteStream(opts.csv),
          );
          if (!opts.json) console.log(`Wrote ${report.total} recipients to ${opts.csv}`);
        }
      });
    });

  campaign
    .command('list')
    .description('list the latest campaigns')
    .action(async () => {
      await withContext(async (context) => {
        const campaigns = await context.db.prisma.campaign.findMany({
          orderBy: { createdAt: 'desc' },
          take: 50,
        });
        for (const c of campaigns)
          console.log(`${c.id}  ${c.status.padEnd(9)}  ${c.accountName.padEnd(16)}  ${c.name}`);
      });
    });
}

/** --fallback-account as the service takes it ("none" clears it). */
function fallbackOption(opts: { fallbackAccount?: string }): { fallbackAccount?: string | null } {
  if (opts.fallbackAccount === undefined) return {};
  return { fallbackAccount: opts.fallbackAccount === 'none' ? null : opts.fallbackAccount };
}

/** --window and --max-lateness as the service takes them ("none" / "default" clear them). */
function timingOptions(opts: { window?: string; maxLateness?: string }): {
  sendWindow?: SendWindow | null;
  maxLatenessMs?: number | null;
} {
  const timing: { sendWindow?: SendWindow | null; maxLatenessMs?: number | null } = {};
  if (opts.window !== undefined)
    timing.sendWindow = opts.window === 'none' ? null : parseSendWindowText(opts.window);
  if (opts.maxLateness !== undefined) {
    const ms = opts.maxLateness === 'default' ? null : parseDuration(opts.maxLateness);
    if (ms === undefined)
      throw new UserError(
        'VALIDATION_FAILED',
        `--max-lateness "${opts.maxLateness}": write a duration such as 30m, 2h or 1d`,
      );
    timing.maxLatenessMs = ms;
  }
  return timing;
}

function describeSettings(campaign: Campaign): string {
  const parts: string[] = [];
  if (campaign.fallbackAccount) parts.push(`falls back to ${campaign.fallbackAccount}`);
  if (campaign.sendWindow)
    parts.push(
      `sends ${formatSendWindow(campaign.sendWindow as unknown as SendWindow)} (${campaign.timezone} unless the row says)`,
    );
  if (campaign.maxLatenessMs !== null)
    parts.push(`max lateness ${formatDuration(campaign.maxLatenessMs)}`);
  return parts.length > 0 ? `: ${parts.join(', ')}` : '';
}
