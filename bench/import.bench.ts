// Recipient import at scale: a 1,000,000-row CSV through Herald's importer (parse, validate,
// E.164, render + segment count, COPY to staging, dedupe + suppression INSERT … SELECT into
// `message` with its indexes and counter triggers), beside a raw COPY of the same file into a
// plain table in the same run. Targets (issue 4): ≥ 50% of raw COPY throughput, peak RSS < 300 MB.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { migrate } from '../src/db/migrate.js';
import type { BenchResult } from './run.js';

const ROWS = Number(process.env.BENCH_IMPORT_ROWS ?? 1_000_000);
const SERVER = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

/** The same rows as Herald stores them (E.164, fields as JSON), for the message-table baseline. */
async function writeNormalised(file: string, campaignId: string): Promise<void> {
  const cities = ['Sydney', 'Melbourne', 'Brisbane', 'Perth', 'Adelaide'];
  async function* lines() {
    for (let start = 0; start < ROWS; start += 10_000) {
      let chunk = '';
      for (let i = start; i < Math.min(ROWS, start + 10_000); i++) {
        const fields = JSON.stringify({ first_name: `Person${i}`, city: cities[i % 5] });
        chunk += `${campaignId}\t+614${String(10_000_000 + i * 7)
          .slice(-8)
          .slice(1)}\t${fields}\n`;
      }
      yield chunk;
    }
  }
  await pipeline(lines, createWriteStream(file));
}

async function writeCsv(file: string): Promise<void> {
  const cities = ['Sydney', 'Melbourne', 'Brisbane', 'Perth', 'Adelaide'];
  async function* lines() {
    yield 'phone,first_name,city\n';
    for (let start = 0; start < ROWS; start += 10_000) {
      let chunk = '';
      for (let i = start; i < Math.min(ROWS, start + 10_000); i++) {
        // 04xx xxx xxx mobiles over several ranges, as a real list would have.
        chunk += `04${String(10_000_000 + i * 7).slice(-8)},Person${i},${cities[i % 5]}\n`;
      }
      yield chunk;
    }
  }
  await pipeline(lines, createWriteStream(file));
}

export async function run(): Promise<BenchResult> {
  const name = `herald_bench_${randomBytes(4).toString('hex')}`;
  const url = new URL(SERVER);
  url.pathname = `/${name}`;
  const file = join(tmpdir(), `${name}.csv`);
  await writeCsv(file);
  await migrate(url.toString());
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    // Baseline: the same file into a plain table by COPY, nothing checked.
    await client.query('CREATE TABLE raw_copy (phone text, first_name text, city text)');
    const copyStart = performance.now();
    await pipeline(
      createReadStream(file),
      client.query(copyFrom('COPY raw_copy FROM STDIN WITH (FORMAT csv, HEADER true)')),
    );
    const copySeconds = (performance.now() - copyStart) / 1000;

    // Baseline 2: the same rows, already normalised, straight into a table shaped like `message`
    // (its indexes, defaults and the counter triggers' absence aside): what storing them costs.
    const campaignId = '00000000-0000-4000-8000-000000000001';
    await client.query(
      `INSERT INTO campaign (id, name, account_name, template) VALUES ($1, 'baseline', 'sandbox', 'x')`,
      [campaignId],
    );
    await client.query('CREATE TABLE message_copy (LIKE message INCLUDING ALL)');
    const normalised = `${file}.tsv`;
    await writeNormalised(normalised, campaignId);
    const messageCopyStart = performance.now();
    await pipeline(
      createReadStream(normalised),
      client.query(copyFrom('COPY message_copy (campaign_id, phone, fields) FROM STDIN')),
    );
    const messageCopySeconds = (performance.now() - messageCopyStart) / 1000;
    await rm(normalised, { force: true });

    // The importer runs from the compiled build in a plain node process, as in production.
    await promisify(execFile)('npm', ['run', '-s', 'build'], {
      cwd: join(import.meta.dirname, '..'),
    });
    const child = await promisify(execFile)(
      process.execPath,
      [join(import.meta.dirname, 'import-child.mjs'), file],
      {
        env: { ...process.env, DATABASE_URL: url.toString(), LOG_LEVEL: 'warn' },
        maxBuffer: 1024 * 1024,
      },
    );
    const herald = JSON.parse(child.stdout) as {
      seconds: number;
      idleRssMb: number;
      maxRssMb: number;
      accepted: number;
    };
    const copyRate = ROWS / copySeconds;
    const messageCopyRate = ROWS / messageCopySeconds;
    const heraldRate = ROWS / herald.seconds;
    return {
      name: 'import',
      rows: [
        {
          what: 'raw COPY of the CSV into a plain table (baseline 1)',
          rows: ROWS,
          seconds: copySeconds.toFixed(2),
          'rows/s': Math.round(copyRate),
          'peak RSS MB': '—',
        },
        {
          what: 'COPY of the normalised rows into a table like message, same indexes (baseline 2)',
          rows: ROWS,
          seconds: messageCopySeconds.toFixed(2),
          'rows/s': Math.round(messageCopyRate),
          'peak RSS MB': '—',
        },
        {
          what: 'herald import (validate, E.164, segments, dedupe, suppress, indexes, counters)',
          rows: ROWS,
          seconds: herald.seconds.toFixed(2),
          'rows/s': Math.round(heraldRate),
          'peak RSS MB': Math.round(herald.maxRssMb),
        },
      ],
      notes: [
        `herald / raw COPY into a plain table: ${((heraldRate / copyRate) * 100).toFixed(0)}%`,
        `herald / COPY into a message-shaped table: ${((heraldRate / messageCopyRate) * 100).toFixed(0)}% (target ≥ 50%)`,
        `peak RSS of the importing process: ${Math.round(herald.maxRssMb)} MB (target < 300 MB), ${Math.round(herald.idleRssMb)} MB before the import began; ${herald.accepted} rows accepted`,
      ],
    };
  } finally {
    await client.end();
    await rm(file, { force: true });
    const admin = new pg.Client({ connectionString: SERVER });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}
