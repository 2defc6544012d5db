// Recipient import at scale: a 1,000,000-row CSV through Herald's importer (parse, validate,
// E.164, render + segment count, suppression and duplicate lookups, COPY into `message` with its
// indexes, foreign key and counter triggers), beside baselines measured in the same run:
//   1. raw COPY of the same CSV into a plain three-column table;
//   2. COPY of the same rows as Herald stores them (ids, E.164, fields as JSON, segments) into a
//      table `LIKE message INCLUDING ALL` (its indexes and defaults; no foreign key or triggers);
//   3. (for reference) that COPY into `message` itself, foreign key and counter triggers included:
//      what storing the rows costs at all, with nothing checked.
// Each is run BENCH_IMPORT_RUNS times (default 3), interleaved, after a CHECKPOINT, and ratios are
// taken within a round, so that a noisy moment on a shared machine does not decide them.
// Targets (issue 4): ≥ 50% of raw COPY throughput, peak RSS < 300 MB.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { migrate } from '../src/db/migrate.js';
import { MessageIdGenerator } from '../src/messages/message-id.js';
import type { BenchResult } from './run.js';

const ROWS = Number(process.env.BENCH_IMPORT_ROWS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_IMPORT_RUNS ?? 3);
/** Numbers on the suppression list during the import (none of them in the file). */
const SUPPRESSED = 10_000;
const SERVER = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const CITIES = ['Sydney', 'Melbourne', 'Brisbane', 'Perth', 'Adelaide'];
const BASELINE_CAMPAIGN = '00000000-0000-4000-8000-000000000001';

/** The list's i-th number: 04xx xxx xxx mobiles over several ranges, as a real list would have. */
const national = (i: number) => `04${String(10_000_000 + i * 7).slice(-8)}`;

async function writeCsv(file: string): Promise<void> {
  async function* lines() {
    yield 'phone,first_name,city\n';
    for (let start = 0; start < ROWS; start += 10_000) {
      let chunk = '';
      for (let i = start; i < Math.min(ROWS, start + 10_000); i++) {
        chunk += `${national(i)},Person${i},${CITIES[i % 5]}\n`;
      }
      yield chunk;
    }
  }
  await pipeline(lines, createWriteStream(file));
}

/** The same rows as Herald stores them: its id, E.164, the fields as JSON, one segment. */
async function writeNormalised(file: string): Promise<void> {
  const ids = new MessageIdGenerator();
  async function* lines() {
    for (let start = 0; start < ROWS; start += 10_000) {
      let chunk = '';
      for (let i = start; i < Math.min(ROWS, start + 10_000); i++) {
        const fields = JSON.stringify({ first_name: `Person${i}`, city: CITIES[i % 5] });
        chunk += `${ids.next()}\t${BASELINE_CAMPAIGN}\t+61${national(i).slice(1)}\t${fields}\t1\n`;
      }
      yield chunk;
    }
  }
  await pipeline(lines, createWriteStream(file));
}

interface Run {
  seconds: number;
  maxRssMb?: number;
  idleRssMb?: number;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const rate = (run: Run) => ROWS / run.seconds;

export async function run(): Promise<BenchResult> {
  const name = `herald_bench_${randomBytes(4).toString('hex')}`;
  const url = new URL(SERVER);
  url.pathname = `/${name}`;
  const file = join(tmpdir(), `${name}.csv`);
  const normalised = `${file}.tsv`;
  const loadBefore = loadavg();
  await writeCsv(file);
  await writeNormalised(normalised);
  await migrate(url.toString());
  // The importer runs from the compiled build in a plain node process, as in production.
  await promisify(execFile)('npm', ['run', '-s', 'build'], {
    cwd: join(import.meta.dirname, '..'),
  });
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  const timed = async (work: () => Promise<unknown>): Promise<Run> => {
    await client.query('CHECKPOINT');
    const started = performance.now();
    await work();
    return { seconds: (performance.now() - started) / 1000 };
  };
  const runs: Record<'raw' | 'like' | 'message' | 'herald', Run[]> = {
    raw: [],
    like: [],
    message: [],
    herald: [],
  };
  try {
    await client.query(
      `INSERT INTO suppression (phone, reason)
       SELECT '+6149' || lpad(g::text, 7, '0'), 'bench' FROM generate_series(1, $1) g`,
      [SUPPRESSED],
    );
    const fresh = async () => {
      await client.query('TRUNCATE campaign CASCADE');
      await client.query(
        `INSERT INTO campaign (id, name, account_name, template) VALUES ($1, 'baseline', 'sandbox', 'x')`,
        [BASELINE_CAMPAIGN],
      );
    };
    for (let round = 0; round < RUNS; round++) {
      // Baseline 1: the CSV into a plain table by COPY, nothing checked, no index.
      await client.query('DROP TABLE IF EXISTS raw_copy');
      await client.query('CREATE TABLE raw_copy (phone text, first_name text, city text)');
      runs.raw.push(
        await timed(() =>
          pipeline(
            createReadStream(file),
            client.query(copyFrom('COPY raw_copy FROM STDIN WITH (FORMAT csv, HEADER true)')),
          ),
        ),
      );
      await client.query('DROP TABLE raw_copy');

      // Baseline 2: the rows as stored, into a table shaped like `message` (same indexes).
      await fresh();
      await client.query('DROP TABLE IF EXISTS message_copy');
      await client.query('CREATE TABLE message_copy (LIKE message INCLUDING ALL)');
      runs.like.push(
        await timed(() =>
          pipeline(
            createReadStream(normalised),
            client.query(
              copyFrom('COPY message_copy (id, campaign_id, phone, fields, segments) FROM STDIN'),
            ),
          ),
        ),
      );
      await client.query('DROP TABLE message_copy');

      // Reference 3: the same COPY into `message` itself (foreign key, counter triggers), one
      // transaction as an import is.
      await fresh();
      runs.message.push(
        await timed(async () => {
          await client.query('BEGIN');
          await pipeline(
            createReadStream(normalised),
            client.query(
              copyFrom('COPY message (id, campaign_id, phone, fields, segments) FROM STDIN'),
            ),
          );
          await client.query('COMMIT');
        }),
      );

      // Herald: a new campaign, the CSV through the importer in its own process.
      await fresh();
      await client.query('CHECKPOINT');
      const child = await promisify(execFile)(
        process.execPath,
        [join(import.meta.dirname, 'import-child.mjs'), file],
        {
          env: { ...process.env, DATABASE_URL: url.toString(), LOG_LEVEL: 'warn' },
          maxBuffer: 1024 * 1024,
        },
      );
      const herald = JSON.parse(child.stdout) as Run & { accepted: number };
      if (herald.accepted !== ROWS)
        throw new Error(`herald accepted ${herald.accepted} of ${ROWS}`);
      runs.herald.push(herald);
    }
  } finally {
    await client.end();
    await rm(file, { force: true });
    await rm(normalised, { force: true });
    const admin = new pg.Client({ connectionString: SERVER });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }

  const row = (what: string, list: Run[], rss?: number) => ({
    what,
    'rows/s (each run)': list.map((r) => Math.round(rate(r))).join(' / '),
    'median rows/s': Math.round(median(list.map(rate))),
    'median s': median(list.map((r) => r.seconds)).toFixed(2),
    'peak RSS MB': rss === undefined ? '—' : Math.round(rss),
  });
  /** Herald's throughput over a baseline's, per round, as a median percentage. */
  const ratio = (base: Run[]) =>
    `${(median(runs.herald.map((h, i) => rate(h) / rate(base[i]!))) * 100).toFixed(0)}%`;
  const peak = Math.max(...runs.herald.map((r) => r.maxRssMb!));
  const idle = Math.max(...runs.herald.map((r) => r.idleRssMb!));
  return {
    name: 'import',
    rows: [
      row('1. raw COPY of the CSV into a plain table', runs.raw),
      row('2. COPY of the stored rows into a table LIKE message', runs.like),
      row('3. COPY of the stored rows into message itself (FK, triggers)', runs.message),
      row('herald import (CSV in, every check, dedupe, suppression)', runs.herald, peak),
    ],
    notes: [
      `${ROWS} rows, ${RUNS} interleaved rounds; ratios are medians of the same round's ratio`,
      `herald / raw COPY into a plain table (1): ${ratio(runs.raw)} (target ≥ 50%)`,
      `herald / COPY into a table like message (2): ${ratio(runs.like)}`,
      `herald / COPY into message itself (3): ${ratio(runs.message)}`,
      `peak RSS of the importing process: ${Math.round(peak)} MB (target < 300 MB), ${Math.round(idle)} MB before the import began`,
      `suppression list: ${SUPPRESSED} numbers (none in the file); load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    ],
  };
}
