import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createReadStream } from 'node:fs';
import { createCampaign, startCampaign } from '../../campaigns/campaign-service.js';
import { getCampaignReport } from '../../campaigns/campaign-stats.js';
import { importRecipients } from '../../campaigns/import-recipients.js';
import { AccountRegistry } from '../../config/accounts.js';
import { loadConfig } from '../../config/config.js';
import { migrate } from '../../db/migrate.js';
import { buildApp } from '../../http/app.js';
import { SandboxServer } from '../../providers/sandbox/sandbox-server.js';
import { closeContext, createContext } from '../../runtime/context.js';
import { startWorkers } from '../../runtime/workers.js';
import { formatCampaignReport, formatImportReport } from '../format-report.js';
import { watchCampaign } from '../watch-campaign.js';

export interface DemoOptions {
  recipients: number;
  /** Messages per second for the demo account. */
  rate: number;
}

const CITIES = [
  'Sydney',
  'Melbourne',
  'Brisbane',
  'Perth',
  'Adelaide',
  'Hobart',
  'Darwin',
  'Canberra',
];
const NAMES = ['Ava', 'Noah', 'Mia', 'Leo', 'Isla', 'Jack', 'Zoe', 'Liam', 'Ella', 'Oscar'];

/**
 * A list like a real upload: mostly good rows, and a few of each kind of mistake so the import
 * report has something to say (bad number, landline, missing name, wrong column count, duplicate).
 */
export function demoCsv(recipients: number): string {
  const lines = ['Mobile,First Name,City'];
  for (let i = 0; i < recipients; i++) {
    const phone = `0412${String(i).padStart(6, '0')}`;
    lines.push(`${phone},${NAMES[i % NAMES.length]},${CITIES[i % CITIES.length]}`);
    if (i % 2000 === 500) lines.push(`04123,${NAMES[0]},Sydney`); // too short
    if (i % 2000 === 900) lines.push(`(02) 9876 5432,${NAMES[1]},Sydney`); // landline: no SMS
    if (i % 2000 === 1300) lines.push(`0413${String(i).padStart(6, '0')},,Perth`); // no first name
    if (i % 2000 === 1700) lines.push(`0414${String(i).padStart(6, '0')},Ann`); // a column short
    if (i % 2500 === 2000) lines.push(`${phone},${NAMES[i % NAMES.length]},Sydney`); // duplicate
  }
  return `${lines.join('\n')}\n`;
}

/**
 * `herald demo`: migrates, starts a sandbox provider, the API (for its webhooks) and every worker
 * in this process, imports a generated list, sends it with a live progress bar, prints the final
 * report and exits 0. Needs only Postgres and Redis.
 */
export async function runDemo(options: DemoOptions): Promise<void> {
  const config = loadConfig();
  if (!process.env.LOG_LEVEL) config.logLevel = 'warn';
  const out = (line: string) => process.stdout.write(`${line}\n`);

  out(
    'Herald demo: a campaign from CSV to delivery reports through Postgres, Redis and the sandbox provider.',
  );
  const { created } = await migrate(config.databaseUrl);
  out(
    `Database ${created ? 'created and ' : ''}migrated (${new URL(config.databaseUrl).pathname.slice(1)}).`,
  );

  const apiKey = randomBytes(16).toString('hex');
  const sandbox = new SandboxServer({ apiKey, reportDelayMs: 300 });
  await sandbox.start();
  out(`Sandbox provider listening on ${sandbox.url}`);

  config.webhookSecret = randomBytes(32).toString('hex');
  config.apiKeys = [randomBytes(16).toString('hex')];
  config.accounts = new AccountRegistry([
    {
      name: 'demo-sandbox',
      provider: 'sandbox',
      baseUrl: sandbox.url,
      credentials: { apiKey },
      rate: options.rate,
      concurrency: 10,
      deliveryPolicy: 'at-most-once',
      options: {},
    },
  ]);
  const context = createContext(config);
  const app = await buildApp(context);
  const workDir = await mkdtemp(join(tmpdir(), 'herald-demo-'));
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    // Provider clients are created after this, so their callback URLs point at the real port.
    config.publicUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const workers = await startWorkers(context);
    try {
      const campaign = await createCampaign(context, {
        name: `Demo ${new Date().toISOString().slice(0, 16).replace('T', ' ')}`,
        account: 'demo-sandbox',
        template:
          'Hi {{first_name}}, Herald demo: 20% off in {{city}} this week. Reply STOP to opt out.',
      });
      const file = join(workDir, 'recipients.csv');
      await writeFile(file, demoCsv(options.recipients));
      const imported = await importRecipients(context, campaign.id, createReadStream(file));
      out(formatImportReport(imported));

      await startCampaign(context, campaign.id);
      out(`Sending campaign ${campaign.id} at up to ${options.rate} messages/s:`);
      await watchCampaign(context, campaign.id);
      out('');
      out(formatCampaignReport(await getCampaignReport(context, campaign.id)));
      out('');
      out(`Look again any time: herald campaign report ${campaign.id}`);
    } finally {
      await workers.close();
    }
  } finally {
    await app.close();
    await closeContext(context);
    await sandbox.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}
