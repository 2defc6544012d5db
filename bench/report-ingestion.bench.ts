// Delivery-report ingestion: how fast reports are stored (the webhook's insert) and folded into
// messages (the folder), beside a raw batched `UPDATE … FROM unnest` of the same messages, which
// is the floor of what any folder must do (one status write per message, counters by trigger).
//
// Own database (created, migrated, dropped); Postgres from BENCH_DATABASE_URL or
// postgresql://postgres@127.0.0.1:5432. BENCH_REPORTS sets the number of messages (default
// 200,000); every message gets a final report, 10% of them twice and 20% a late "sent" report
// posted after the final one, so the folder also sees duplicates and out-of-order reports.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { BenchResult } from './run.js';
import { loadConfig } from '../src/config/config.js';
import { migrate } from '../src/db/migrate.js';
import { ReportFolder } from '../src/events/fold-reports.js';
import { recordReports } from '../src/events/record-reports.js';
import type { StatusReport } from '../src/providers/types.js';
import { closeContext, createContext, type AppContext } from '../src/runtime/context.js';

const SERVER = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432';
const MESSAGES = Number(process.env.BENCH_REPORTS ?? 200_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 1000);
const FOLDERS = [1, 4];
const ACCOUNT = 'sandbox';

/** The server's URL with another database name. */
function withDatabase(name: string): string {
  const url = new URL(SERVER);
  url.pathname = `/${name}`;
  return url.toString();
}

const rate = (count: number, ms: number) => Math.round((count * 1000) / ms);

export async function run(): Promise<BenchResult> {
  const name = `herald_bench_${randomBytes(4).toString('hex')}`;
  const url = withDatabase(name);
  await migrate(url);
  const config = loadConfig({ ...process.env, DATABASE_URL: url, LOG_LEVEL: 'silent' });
  config.eventsBatchSize = BATCH;
  const context = createContext(config, { dbPoolSize: 12 });
  const rows: BenchResult['rows'] = [];
  try {
    // Baselines: the raw batched UPDATE, sequential batches of 1,000 (what one folder does), as
    // written plainly and with the `id = ANY(…)` hint the folder uses (see fold-reports.ts).
    for (const hinted of [false, true]) {
      const baseCampaign = await seedCampaign(context, MESSAGES, `base-${hinted}`);
      const baseIds = await sentIds(context, baseCampaign);
      const started = performance.now();
      for (let i = 0; i < baseIds.length; i += BATCH) {
        const ids = baseIds.slice(i, i + BATCH);
        await context.db.pool.query(
          `UPDATE message m SET status = u.status, final_at = now(), updated_at = now()
           FROM unnest($1::uuid[], $2::message_status[]) AS u(id, status)
           WHERE m.id = u.id ${hinted ? 'AND m.id = ANY($1::uuid[])' : ''}
             AND message_status_rank(u.status) > message_status_rank(m.status)`,
          [ids, ids.map((_, j) => (j % 10 === 0 ? 'FAILED' : 'DELIVERED'))],
        );
      }
      const baseMs = performance.now() - started;
      rows.push({
        step: `baseline: raw UPDATE … FROM unnest${hinted ? ' + id = ANY' : ''}, 1 writer`,
        messages: MESSAGES,
        reports: MESSAGES,
        ms: Math.round(baseMs),
        'reports/s': rate(MESSAGES, baseMs),
      });
    }

    for (const folders of FOLDERS) {
      const campaign = await seedCampaign(context, MESSAGES, `fold-${folders}`);
      const ids = await sentIds(context, campaign);
      const reports = stormOf(ids);

      // Storing, as the webhook does (one insert per callback batch; 1,000 at a time here).
      let started = performance.now();
      for (let i = 0; i < reports.length; i += BATCH) {
        await recordReports(context, ACCOUNT, reports.slice(i, i + BATCH));
      }
      const storeMs = performance.now() - started;

      started = performance.now();
      const folded = await foldAll(context, folders);
      const foldMs = performance.now() - started;
      const check = await context.db.pool.query<{ wrong: string }>(
        `SELECT count(*) AS wrong FROM message WHERE campaign_id = $1 AND status = 'SENT'`,
        [campaign],
      );
      if (Number(check.rows[0]!.wrong) !== 0) throw new Error('folder left SENT messages behind');
      rows.push({
        step: `store reports (recordReports), ${BATCH} per insert`,
        messages: MESSAGES,
        reports: reports.length,
        ms: Math.round(storeMs),
        'reports/s': rate(reports.length, storeMs),
      });
      rows.push({
        step:
          folders > 1
            ? `fold (foldReports), ${folders} folders in parallel`
            : 'fold (foldReports), 1 folder',
        messages: MESSAGES,
        reports: folded,
        ms: Math.round(foldMs),
        'reports/s': rate(folded, foldMs),
      });
      await context.db.pool.query('DELETE FROM delivery_event');
    }
  } finally {
    await closeContext(context);
    const admin = new pg.Client({ connectionString: withDatabase('postgres') });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    await admin.end();
  }
  return {
    name: 'report-ingestion',
    rows,
    notes: [
      `${MESSAGES.toLocaleString('en')} SENT messages per run; reports = one final report each + 10% duplicates + 20% late "sent" reports, shuffled`,
      'fold reports/s counts every report read and settled (applied, duplicate or stale); the baseline writes one status per message',
    ],
  };
}

/** A RUNNING campaign of `count` messages already handed to the provider (SENT, with ids). */
async function seedCampaign(context: AppContext, count: number, label: string): Promise<string> {
  const { rows } = await context.db.pool.query<{ id: string }>(
    `INSERT INTO campaign (name, account_name, template, status, started_at)
     VALUES ($1, $2, 'Hi', 'RUNNING', now()) RETURNING id`,
    [`bench ${label}`, ACCOUNT],
  );
  const id = rows[0]!.id;
  await context.db.pool.query(
    `INSERT INTO message (campaign_id, phone, status, account_name, provider_message_id, segments, sent_at)
     SELECT $1, '+614' || lpad(g::text, 8, '0'), 'SENT', $2, $3 || g, 1, now()
     FROM generate_series(1, $4) g`,
    [id, ACCOUNT, `p-${label}-`, count],
  );
  await context.db.pool.query('ANALYZE message');
  return id;
}

async function sentIds(context: AppContext, campaignId: string): Promise<string[]> {
  const { rows } = await context.db.pool.query<{ id: string }>(
    'SELECT id FROM message WHERE campaign_id = $1',
    [campaignId],
  );
  return rows.map((r) => r.id);
}

/** One final report per message, 10% sent twice, 20% followed by a late "sent"; shuffled. */
function stormOf(ids: string[]): StatusReport[] {
  const at = new Date();
  const reports: StatusReport[] = [];
  ids.forEach((id, i) => {
    const failed = i % 10 === 0;
    const final: StatusReport = {
      messageId: id,
      providerStatus: failed ? 'failed' : 'delivered',
      status: failed ? 'FAILED' : 'DELIVERED',
      errorCode: failed ? 'SBX-ABSENT-SUBSCRIBER' : undefined,
      occurredAt: at,
    };
    reports.push(final);
    // A duplicate with a different description still has the same dedupe key: kept once. Give
    // it another error code so it is stored and the folder has to settle it.
    if (i % 10 === 1) reports.push({ ...final, errorCode: 'DUP' });
    if (i % 5 === 2)
      reports.push({ messageId: id, providerStatus: 'sent', status: 'SENT', occurredAt: at });
  });
  for (let i = reports.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [reports[i], reports[j]] = [reports[j]!, reports[i]!];
  }
  return reports;
}

/** Folds until no report is left, with `folders` loops in parallel as separate workers would. */
async function foldAll(context: AppContext, folders: number): Promise<number> {
  let total = 0;
  await Promise.all(
    Array.from({ length: folders }, async () => {
      // The events worker's loop, without its idle sleep.
      const folder = new ReportFolder(context);
      for (;;) {
        const result = await folder.fold();
        total += result.read;
        if (result.read === 0) return;
      }
    }),
  );
  return total;
}
