import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { createCampaign, startCampaign } from '../src/campaigns/campaign-service.js';
import {
  getCampaignStats,
  getCampaignReport,
  type CampaignReport,
} from '../src/campaigns/campaign-stats.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
import { foldReports } from '../src/events/fold-reports.js';
import { csvField } from '../src/campaigns/recipients-csv.js';
import { sandboxOutcome } from '../src/providers/sandbox/outcomes.js';
import { webhookUrl } from '../src/providers/webhook-url.js';
import {
  SANDBOX_ACCOUNT,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from './helpers/harness.js';
import { runHerald, writeAccountsFile } from './helpers/worker-process.js';

const RECIPIENTS = 300;

/** Splits one CSV line written by csvField (quoted fields may hold commas and doubled quotes). */
function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(field);
      field = '';
    } else field += ch;
  }
  out.push(field);
  return out;
}

describe('campaign reports: stats, throughput, cost and the per-recipient CSV', () => {
  let env: TestEnv;
  let campaignId: string;
  let apiKey: string;
  const auth = () => ({ authorization: `Bearer ${apiKey}` });

  beforeAll(async () => {
    env = await createTestEnv({ account: { pricePerSegment: 0.05, currency: 'AUD' } });
    apiKey = env.config.apiKeys[0]!;
    const campaign = await createCampaign(env.context, {
      name: 'reports',
      account: SANDBOX_ACCOUNT,
      template: 'Hello {{first_name}}',
    });
    campaignId = campaign.id;
    await importRecipients(env.context, campaignId, Readable.from([recipientsCsv(RECIPIENTS)]));
    await env.startWorkerSet();
    await startCampaign(env.context, campaignId);
    await waitFor(async () => {
      const s = await getCampaignStats(env.context, campaignId);
      return s.campaign.status === 'COMPLETED' && s.awaitingReport === 0 ? s : undefined;
    }, 'the campaign to complete');
  });
  afterAll(() => env.close());

  it('reports counts, failures by reason, throughput over time and cost in the API', async () => {
    const response = await env.app.inject({
      method: 'GET',
      url: `/v1/campaigns/${campaignId}/report`,
      headers: auth(),
    });
    expect(response.statusCode).toBe(200);
    const report = response.json<CampaignReport>();

    const phones = Array.from(
      { length: RECIPIENTS },
      (_, i) => `+61412${String(i).padStart(6, '0')}`,
    );
    const expected = { delivered: 0, failed: 0, expired: 0, undeliverable: 0 };
    for (const phone of phones) expected[sandboxOutcome(phone)] += 1;
    expect(report.counts).toMatchObject({
      DELIVERED: expected.delivered,
      FAILED: expected.failed,
      EXPIRED: expected.expired,
      UNDELIVERABLE: expected.undeliverable,
    });
    expect(report.deliveryRate).toBeCloseTo(expected.delivered / RECIPIENTS, 6);
    const reasons = Object.fromEntries(report.failuresByReason.map((f) => [f.code, f.count]));
    expect(reasons).toEqual({
      ...(expected.failed ? { 'SBX-ABSENT-SUBSCRIBER': expected.failed } : {}),
      ...(expected.expired ? { 'SBX-VALIDITY-EXPIRED': expected.expired } : {}),
      ...(expected.undeliverable ? { 'SBX-UNKNOWN-SUBSCRIBER': expected.undeliverable } : {}),
    });

    // Every send and every final report falls in exactly one bucket.
    const sum = (key: 'sent' | 'delivered' | 'failed') =>
      report.throughput.reduce((total, b) => total + b[key], 0);
    expect(report.throughputBucketSeconds).toBe(60);
    expect(sum('sent')).toBe(RECIPIENTS);
    expect(sum('delivered')).toBe(expected.delivered);
    expect(sum('failed')).toBe(RECIPIENTS - expected.delivered);

    // One segment each (a short GSM-7 text) at 0.05.
    expect(report.segments).toBe(RECIPIENTS);
    expect(report.cost).toEqual({
      currency: 'AUD',
      pricePerSegment: 0.05,
      spent: RECIPIENTS * 0.05,
      estimatedTotal: RECIPIENTS * 0.05,
    });
    expect(report.eta).toBeNull(); // finished
    expect(report.unmatchedReports).toEqual({ account: SANDBOX_ACCOUNT, waiting: 0, expired: 0 });
  });

  it('streams one CSV row per recipient, paging through a campaign bigger than a page', async () => {
    // 12,345 recipients (more than two 5,000-row pages), written straight into Postgres.
    const big = await createCampaign(env.context, {
      name: 'big',
      account: SANDBOX_ACCOUNT,
      template: 'Hi {{name}}',
    });
    await env.query(
      `INSERT INTO message (campaign_id, phone, fields, status)
       SELECT $1, '+614' || lpad(g::text, 8, '0'), jsonb_build_object('name', 'P' || g), 'PENDING'
       FROM generate_series(1, 12345) g`,
      [big.id],
    );
    // Fields from outside: commas, quotes, a line break and a would-be spreadsheet formula.
    await env.query(
      `UPDATE message SET fields = '{"name":"=HYPERLINK(\\"x\\"), \\"Bob\\"\\nJr"}', status = 'FAILED',
         error_code = 'X,1', error_message = 'said "no"'
       WHERE campaign_id = $1 AND phone = '+61400000007'`,
      [big.id],
    );

    const response = await fetch(`${env.config.publicUrl}/v1/campaigns/${big.id}/recipients.csv`, {
      headers: auth(),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const text = await response.text();
    // Rows end with \n; a quoted field may hold a \n, so count records by the message-id prefix.
    const records = text.split(/\n(?=[0-9a-f]{8}-|$)/).filter(Boolean);
    expect(records[0]).toBe(
      'message_id,phone,status,error_code,error_message,provider_message_id,segments,attempts,queued_at,sent_at,final_at,fields',
    );
    const rows = records.slice(1).map(parseCsvLine);
    expect(rows).toHaveLength(12345);
    const phones = rows.map((r) => r[1]);
    expect(new Set(phones).size).toBe(12345);
    expect(phones).toEqual([...phones].sort());
    const odd = rows.find((r) => r[1] === '+61400000007')!;
    expect(odd.slice(2, 5)).toEqual(['FAILED', 'X,1', 'said "no"']);
    expect(JSON.parse(odd[11]!)).toEqual({ name: '=HYPERLINK("x"), "Bob"\nJr' });
    expect(csvField('=SUM(A1)')).toBe("'=SUM(A1)");
    expect(csvField('+61412000000')).toBe('+61412000000');
  });

  it('answers 404 for an unknown campaign and 401 without a key, before any CSV', async () => {
    const missing = await env.app.inject({
      method: 'GET',
      url: '/v1/campaigns/00000000-0000-4000-8000-000000000000/recipients.csv',
      headers: auth(),
    });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ error: { code: 'CAMPAIGN_NOT_FOUND' } });
    const anonymous = await env.app.inject({
      method: 'GET',
      url: `/v1/campaigns/${campaignId}/recipients.csv`,
    });
    expect(anonymous.statusCode).toBe(401);
  });

  it('writes the CSV from the command line with `campaign report ID --csv FILE`', async () => {
    const accountsFile = await writeAccountsFile(env);
    const file = join(tmpdir(), `herald-report-${Date.now()}.csv`);
    try {
      const result = await runHerald(['campaign', 'report', campaignId, '--csv', file], {
        ...env.env,
        HERALD_ACCOUNTS_FILE: accountsFile,
      });
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`Wrote ${RECIPIENTS} recipients to ${file}`);
      expect(result.stdout).toContain('throughput per minute, UTC');
      const lines = (await readFile(file, 'utf8')).trim().split('\n');
      expect(lines).toHaveLength(RECIPIENTS + 1);
    } finally {
      await rm(file, { force: true });
      await rm(accountsFile, { force: true });
    }
  });
});

describe('live stats while a campaign runs', () => {
  const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({ clock, env: { HERALD_UNMATCHED_REPORT_TTL_MS: '60000' } });
  });
  afterAll(() => env.close());

  it('estimates the time left from the rate since the campaign started', async () => {
    const campaign = await createCampaign(env.context, {
      name: 'eta',
      account: SANDBOX_ACCOUNT,
      template: 'Hi',
    });
    await importRecipients(env.context, campaign.id, Readable.from([recipientsCsv(150)]));
    // Started 100 s ago; 50 of 150 handed over: 0.5/s, so 100 left take 200 s.
    await env.query(`UPDATE campaign SET status = 'RUNNING', started_at = $2 WHERE id = $1`, [
      campaign.id,
      new Date(clock.now().getTime() - 100_000),
    ]);
    await env.query(
      `UPDATE message SET status = 'SENT', sent_at = $2 WHERE id IN (
         SELECT id FROM message WHERE campaign_id = $1 ORDER BY phone LIMIT 50)`,
      [campaign.id, clock.now()],
    );
    const stats = await getCampaignStats(env.context, campaign.id);
    expect(stats.eta).toEqual({
      ratePerSecond: 0.5,
      remainingSeconds: 200,
      finishesAt: new Date(clock.now().getTime() + 200_000),
    });
    const report = await getCampaignReport(env.context, campaign.id);
    expect(report.cost).toBeNull(); // the account has no price
    expect(report.throughput).toEqual([{ at: clock.now(), sent: 50, delivered: 0, failed: 0 }]);
  });

  it('counts reports that matched no message, waiting and then expired, in the stats', async () => {
    const url = webhookUrl(env.config.publicUrl, env.config.webhookSecret!, SANDBOX_ACCOUNT);
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        id: 'sbx-nobody',
        status: 'delivered',
        timestamp: clock.now().toISOString(),
      }),
    });
    expect(response.status).toBe(204);
    const stats = async () =>
      (
        await env.app.inject({
          method: 'GET',
          url: '/v1/delivery-reports/stats',
          headers: { authorization: `Bearer ${env.config.apiKeys[0]!}` },
        })
      ).json<{ accounts: Array<Record<string, unknown>> }>().accounts;

    expect(await foldReports(env.context)).toMatchObject({ waiting: 1 });
    expect(await stats()).toMatchObject([
      { account: SANDBOX_ACCOUNT, waiting: 1, expiredUnmatched: 0 },
    ]);
    clock.advance(61_000);
    expect(await foldReports(env.context)).toMatchObject({ expired: 1 });
    expect(await stats()).toMatchObject([
      { account: SANDBOX_ACCOUNT, waiting: 0, expiredUnmatched: 1 },
    ]);
    const [campaign] = await env.query<{ id: string }>('SELECT id FROM campaign LIMIT 1');
    const report = await getCampaignReport(env.context, campaign!.id);
    expect(report.unmatchedReports).toEqual({ account: SANDBOX_ACCOUNT, waiting: 0, expired: 1 });
  });
});
