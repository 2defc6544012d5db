import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { createCampaign, startCampaign } from '../../campaigns/campaign-service.js';
import { getCampaignReport, getCampaignStats } from '../../campaigns/campaign-stats.js';
import { importRecipients } from '../../campaigns/import-recipients.js';
import { loadConfig } from '../../config/config.js';
import { UserError } from '../../errors.js';
import { closeContext, createContext, type AppContext } from '../../runtime/context.js';
import { formatCampaignReport, formatImportReport } from '../format-report.js';
import { watchCampaign } from '../watch-campaign.js';

/** Runs `fn` with a context (quiet logs unless LOG_LEVEL says otherwise) and always closes it. */
async function withContext<T>(fn: (context: AppContext) => Promise<T>): Promise<T> {
  const config = loadConfig();
  if (!process.env.LOG_LEVEL) config.logLevel = 'warn';
  const context = createContext(config, { dbPoolSize: 4 });
  try {
    return await fn(context);
  } finally {
    await closeContext(context);
  }
}

async function importFile(
  context: AppContext,
  campaignId: string,
  file: string,
  phoneColumn?: string,
) {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) throw new UserError('FILE_NOT_FOUND', `no such file: ${file}`);
  const report = await importRecipients(context, campaignId, createReadStream(file), {
    phoneColumn,
  });
  console.log(formatImportReport(report));
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
    .option('--region <code>', 'region for national-format numbers', 'AU')
    .option('--csv <file>', 'recipient list to import')
    .option('--phone-column <name>', 'CSV column holding the number (default: found by name)')
    .option('--start', 'start sending right after the import')
    .action(
      async (opts: {
        name: string;
        account: string;
        message: string;
        region: string;
        csv?: string;
        phoneColumn?: string;
        start?: boolean;
      }) => {
        await withContext(async (context) => {
          const created = await createCampaign(context, {
            name: opts.name,
            account: opts.account,
            template: opts.message,
            defaultRegion: opts.region,
          });
          console.log(`Created campaign ${created.id}`);
          if (opts.csv) await importFile(context, created.id, opts.csv, opts.phoneColumn);
          if (opts.start) {
            await startCampaign(context, created.id);
            console.log(`Started; follow it with: herald campaign status ${created.id} --watch`);
          }
        });
      },
    );

  campaign
    .command('import <id> <file>')
    .description('import a CSV of recipients into a DRAFT campaign')
    .option('--phone-column <name>', 'CSV column holding the number (default: found by name)')
    .action(async (id: string, file: string, opts: { phoneColumn?: string }) => {
      await withContext((context) => importFile(context, id, file, opts.phoneColumn));
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
            `${stats.campaign.name}: ${stats.campaign.status} · ${stats.processed}/${stats.total} sent · delivered ${stats.delivered} · failed ${stats.failed} · awaiting report ${stats.awaitingReport}`,
          );
        }
      });
    });

  campaign
    .command('report <id>')
    .description("print a campaign's report: counts, delivery rate, failures by reason")
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      await withContext(async (context) => {
        const report = await getCampaignReport(context, id);
        console.log(opts.json ? JSON.stringify(report, null, 2) : formatCampaignReport(report));
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
