import { writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_ACCOUNT, createTestEnv, recipientsCsv, type TestEnv } from './helpers/harness.js';
import { runHerald, writeAccountsFile } from './helpers/worker-process.js';

/** A user mistake is one line on stderr, exit code 2, and never a stack trace. */
function expectUserError(result: { code: number | null; stderr: string }, message: string) {
  expect(result.code).toBe(2);
  expect(result.stderr.trim()).toBe(`herald: ${message}`);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

describe('the herald command', () => {
  let env: TestEnv;
  let cliEnv: Record<string, string>;
  const files: string[] = [];
  const tempFile = async (name: string, content: string) => {
    const file = join(tmpdir(), `herald-cli-${Date.now()}-${name}`);
    await writeFile(file, content);
    files.push(file);
    return file;
  };

  beforeAll(async () => {
    env = await createTestEnv();
    const accountsFile = await writeAccountsFile(env);
    files.push(accountsFile);
    cliEnv = { ...env.env, HERALD_ACCOUNTS_FILE: accountsFile };
  });
  afterAll(async () => {
    await env.close();
    await Promise.all(files.map((f) => rm(f, { force: true })));
  });

  it('creates a campaign from a CSV, reports bad rows by line, and shows status and report', async () => {
    const csv = await tempFile('ok.csv', `${recipientsCsv(3).trim()}\nnot-a-number,Zed\n`);
    const created = await runHerald(
      [
        'campaign',
        'create',
        '--name',
        'cli',
        '--account',
        SANDBOX_ACCOUNT,
        '--message',
        'Hi {{first_name}}',
        '--csv',
        csv,
      ],
      cliEnv,
    );
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const id = /Created campaign ([0-9a-f-]{36})/.exec(created.stdout)![1]!;
    expect(created.stdout).toContain(
      '4 rows (phone column "phone"): 3 accepted, 1 rejected, 0 duplicates, 0 suppressed',
    );
    expect(created.stdout).toContain('line 5: "not-a-number" is not a valid phone number');

    const status = await runHerald(['campaign', 'status', id], cliEnv);
    expect(status.stdout).toContain('cli: DRAFT · 0/3 sent');
    const report = await runHerald(['campaign', 'report', id, '--json'], cliEnv);
    expect(JSON.parse(report.stdout)).toMatchObject({ total: 3, counts: { PENDING: 3 } });
  });

  it('names the configured accounts for an unknown one', async () => {
    const result = await runHerald(
      ['campaign', 'create', '--name', 'x', '--account', 'nope', '--message', 'hi'],
      cliEnv,
    );
    expectUserError(result, `unknown account "nope"; configured accounts: ${SANDBOX_ACCOUNT}`);
  });

  it('names the columns it found when the CSV has no phone column', async () => {
    const csv = await tempFile('nophone.csv', 'Name,Email\nAnn,ann@example.com\n');
    const result = await runHerald(
      [
        'campaign',
        'create',
        '--name',
        'x',
        '--account',
        SANDBOX_ACCOUNT,
        '--message',
        'hi',
        '--csv',
        csv,
      ],
      cliEnv,
    );
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe(
      'herald: no phone column; columns found: Name, Email. Name one phone, mobile, msisdn or number, or choose it with the phone column option',
    );
  });

  it('names the setting that is missing or invalid', async () => {
    expectUserError(
      await runHerald(['accounts'], { ...cliEnv, REDIS_URL: 'localhost:6379' }),
      'REDIS_URL: must be a redis:// or rediss:// URL',
    );
    const noSecret = await runHerald(['worker'], { ...cliEnv, HERALD_WEBHOOK_SECRET: '' });
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toMatch(/^herald: HERALD_WEBHOOK_SECRET: not set;/);
  });

  it('manages the suppression list', async () => {
    expect(
      (await runHerald(['suppression', 'add', '0412 003 001', '--reason', 'called in'], cliEnv))
        .stdout,
    ).toBe('Added +61412003001\n');
    const exported = await runHerald(['suppression', 'export'], cliEnv);
    expect(exported.stdout).toContain('+61412003001,called in,');
    expect((await runHerald(['suppression', 'remove', '+61412003001'], cliEnv)).stdout).toBe(
      'Removed +61412003001\n',
    );
    expectUserError(
      await runHerald(['suppression', 'remove', '+61412003001'], cliEnv),
      '+61412003001 is not on the suppression list',
    );
    expectUserError(
      await runHerald(['suppression', 'add', 'call me'], cliEnv),
      '"call me" is not a valid phone number',
    );
  });

  it('refuses to start an unknown campaign', async () => {
    expectUserError(
      await runHerald(['campaign', 'start', '00000000-0000-4000-8000-000000000000'], cliEnv),
      'no campaign with id 00000000-0000-4000-8000-000000000000',
    );
  });
});
