/* global process, performance */
// Child process for bench/import.bench.ts: imports one CSV into a new campaign with the compiled
// build (plain node, as in production, so the peak RSS measured is the importer's, not a TypeScript
// loader's), and prints what it took.
import { createReadStream } from 'node:fs';
import { createCampaign } from '../dist/src/campaigns/campaign-service.js';
import { importRecipients } from '../dist/src/campaigns/import-recipients.js';
import { loadConfig } from '../dist/src/config/config.js';
import { closeContext, createContext } from '../dist/src/runtime/context.js';

const [file] = process.argv.slice(2);
const config = loadConfig();
config.logLevel = 'warn';
const context = createContext(config, { dbPoolSize: 2 });
const campaign = await createCampaign(context, {
  name: 'bench',
  account: 'sandbox',
  template: 'Hi {{first_name}} in {{city}}',
});
const idleRssMb = process.memoryUsage().rss / 1024 / 1024;
const started = performance.now();
const report = await importRecipients(context, campaign.id, createReadStream(file));
const seconds = (performance.now() - started) / 1000;
await closeContext(context);
process.stdout.write(
  JSON.stringify({
    seconds,
    idleRssMb,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    accepted: report.accepted,
    rejected: report.rejected,
  }),
);
