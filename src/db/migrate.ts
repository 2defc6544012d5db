import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { UserError } from '../errors.js';

/** Root of the installed package (holds prisma/ and prisma.config.ts), from src/ or dist/src/. */
export function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes(`${join('dist', 'src')}`)
    ? join(here, '..', '..', '..')
    : join(here, '..', '..');
}

/** Creates the database named in the URL if the server does not have it yet. */
export async function ensureDatabase(url: string): Promise<boolean> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  if (!name) throw new UserError('CONFIG_INVALID', 'DATABASE_URL: must name a database');
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  try {
    await client.connect();
  } catch (error) {
    throw new UserError(
      'DATABASE_UNREACHABLE',
      `DATABASE_URL: cannot connect to Postgres at ${target.host}: ${(error as Error).message}`,
      503,
    );
  }
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount) return false;
    await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    return true;
  } finally {
    await client.end();
  }
}

/**
 * Applies pending migrations with `prisma migrate deploy` (Prisma's engine-free CLI path, see
 * prisma.config.ts), creating the database first if needed. Output goes to the log, not the screen.
 */
export async function migrate(url: string): Promise<{ created: boolean; output: string }> {
  const created = await ensureDatabase(url);
  const require = createRequire(import.meta.url);
  const cli = require.resolve('prisma/build/index.js');
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'migrate', 'deploy'], {
      cwd: packageRoot(),
      env: { ...process.env, DATABASE_URL: url, PRISMA_HIDE_UPDATE_MESSAGE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(text);
      else
        reject(
          new UserError('MIGRATION_FAILED', `database migration failed:\n${text.trim()}`, 500),
        );
    });
  });
  return { created, output };
}
