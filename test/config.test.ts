import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { ConfigError, UserError } from '../src/errors.js';

describe('configuration', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'herald-config-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const accountsFile = async (content: unknown) => {
    const file = join(dir, `${Math.random().toString(36).slice(2)}.json`);
    await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
    return file;
  };
  const errorOf = (fn: () => unknown): Error => {
    try {
      fn();
    } catch (error) {
      return error as Error;
    }
    throw new Error('expected an error');
  };

  it('has working defaults for a local machine', () => {
    const config = loadConfig({});
    expect(config.databaseUrl).toBe('postgresql://postgres@127.0.0.1:5432/herald');
    expect(config.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(config.publicUrl).toBe('http://127.0.0.1:3000');
    expect(config.accounts.names).toEqual(['sandbox']);
  });

  it.each([
    [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL: must be a redis:// or rediss:// URL'],
    [{ DATABASE_URL: 'mysql://x/y' }, 'DATABASE_URL: must be a postgresql:// URL'],
    [{ PORT: 'eighty' }, 'PORT:'],
    [{ HERALD_WEBHOOK_SECRET: 'short' }, 'HERALD_WEBHOOK_SECRET: must be at least 32 characters'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL:'],
    [{ HERALD_API_KEYS: 'abc' }, 'HERALD_API_KEYS: each key must be at least 16 characters'],
  ])('names the variable and what is wrong: %j', (env, message) => {
    const error = errorOf(() => loadConfig(env as NodeJS.ProcessEnv));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message.startsWith(message)).toBe(true);
    expect(error.message).not.toContain('\n');
  });

  it('reads accounts from the file with secrets from the environment', async () => {
    const file = await accountsFile({
      accounts: [
        {
          name: 'promo',
          provider: 'sandbox',
          credentials: { apiKey: 'env:PROMO_KEY' },
          rate: 20,
          sender: 'Shop',
        },
      ],
    });
    const config = loadConfig({ HERALD_ACCOUNTS_FILE: file, PROMO_KEY: 'k-123' });
    const account = config.accounts.get('promo');
    expect(account).toMatchObject({
      provider: 'sandbox',
      rate: 20,
      concurrency: 10,
      baseUrl: 'http://127.0.0.1:4010',
      deliveryPolicy: 'at-most-once',
    });
    expect(account.credentials).toEqual({ apiKey: 'k-123' });
    expect(JSON.stringify(config.accounts.describe())).not.toContain('k-123');
  });

  it('refuses a missing secret, a literal secret, an unknown provider and a missing file', async () => {
    const base = { name: 'promo', provider: 'sandbox', rate: 20 };
    const missing = await accountsFile({
      accounts: [{ ...base, credentials: { apiKey: 'env:PROMO_KEY' } }],
    });
    expect(errorOf(() => loadConfig({ HERALD_ACCOUNTS_FILE: missing })).message).toBe(
      'PROMO_KEY: not set (credentials.apiKey of account promo)',
    );
    const literal = await accountsFile({
      accounts: [{ ...base, credentials: { apiKey: 'hunter2' } }],
    });
    expect(errorOf(() => loadConfig({ HERALD_ACCOUNTS_FILE: literal })).message).toContain(
      'accounts.0.credentials.apiKey: must be "env:VARIABLE_NAME"',
    );
    const unknown = await accountsFile({ accounts: [{ ...base, provider: 'carrier-pigeon' }] });
    expect(errorOf(() => loadConfig({ HERALD_ACCOUNTS_FILE: unknown })).message).toContain(
      'unknown provider "carrier-pigeon"; known: sandbox',
    );
    expect(
      errorOf(() => loadConfig({ HERALD_ACCOUNTS_FILE: join(dir, 'nope.json') })).message,
    ).toContain('file not found');
    const broken = await accountsFile('{ not json');
    expect(errorOf(() => loadConfig({ HERALD_ACCOUNTS_FILE: broken })).message).toMatch(
      /^HERALD_ACCOUNTS_FILE: cannot read/,
    );
  });

  it('refuses native scheduling on a provider that cannot schedule, naming the account', async () => {
    const file = await accountsFile({
      accounts: [
        {
          name: 'us-reminders',
          provider: 'bandwidth',
          credentials: { username: 'env:BW_USER', password: 'env:BW_PASS' },
          sender: '+15551234567',
          rate: 10,
          scheduling: 'native',
          options: { accountId: '9900000', applicationId: 'app-1' },
        },
      ],
    });
    const error = errorOf(() =>
      loadConfig({ HERALD_ACCOUNTS_FILE: file, BW_USER: 'u', BW_PASS: 'p' }),
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain('accounts.0 (us-reminders): scheduling "native"');
    expect(error.message).toContain('bandwidth cannot schedule messages; use "local"');
    const typo = await accountsFile({
      accounts: [{ name: 'x', provider: 'sandbox', rate: 1, scheduling: 'later' }],
    });
    expect(errorOf(() => loadConfig({ HERALD_ACCOUNTS_FILE: typo })).message).toContain(
      'accounts.0.scheduling',
    );
  });

  it('an unknown account lists the configured ones', () => {
    const error = errorOf(() => loadConfig({}).accounts.get('marketing'));
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toBe('unknown account "marketing"; configured accounts: sandbox');
  });
});
