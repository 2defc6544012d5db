import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { TestEnv } from './harness.js';
import { SANDBOX_ACCOUNT } from './harness.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** Writes an accounts file for the test's sandbox account, its key read from the environment. */
export async function writeAccountsFile(
  env: TestEnv,
  overrides: Record<string, unknown> = {},
): Promise<string> {
  const file = join(tmpdir(), `herald-accounts-${randomBytes(6).toString('hex')}.json`);
  const account = env.config.accounts.get(SANDBOX_ACCOUNT);
  await writeFile(
    file,
    JSON.stringify({
      accounts: [
        {
          name: account.name,
          provider: 'sandbox',
          baseUrl: account.baseUrl,
          credentials: { apiKey: 'env:TEST_SANDBOX_KEY' },
          rate: account.rate,
          concurrency: account.concurrency,
          deliveryPolicy: account.deliveryPolicy,
          ...overrides,
        },
      ],
    }),
  );
  return file;
}

/** Runs `herald <args>` from source in a child process, as an operator would run it. */
export function spawnHerald(
  args: string[],
  env: Record<string, string>,
): ChildProcess & { output: () => string } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args],
    {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  return Object.assign(child, { output: () => output });
}

/** Runs a herald command to its end: exit code and everything it printed. */
export async function runHerald(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args],
    {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}
