import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countersAndTruth, createTestEnv, waitFor, type TestEnv } from './helpers/harness.js';
import { messagesOf, seedCampaign, start, waitForCompletion } from './helpers/campaigns.js';
import { spawnHerald, writeAccountsFile } from './helpers/worker-process.js';

describe('guarantee: SIGTERM stops a worker gracefully', () => {
  let env: TestEnv;
  let accountsFile: string;
  const children: Array<ReturnType<typeof spawnHerald>> = [];

  beforeAll(async () => {
    // Sends take 1 s each, so many are in flight when the signal arrives.
    env = await createTestEnv({
      sandbox: { latencyMs: 1000, reportDelayMs: 100 },
      account: { rate: 1000 },
    });
    accountsFile = await writeAccountsFile(env);
  });
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await env.close();
    await rm(accountsFile, { force: true });
  });

  const startWorker = () => {
    const child = spawnHerald(['worker'], {
      ...env.env,
      HERALD_ACCOUNTS_FILE: accountsFile,
      HERALD_SHUTDOWN_TIMEOUT_MS: '15000',
      LOG_LEVEL: 'info',
    });
    children.push(child);
    return child;
  };

  it('stops taking jobs, records every in-flight send, exits 0; another worker finishes the rest', async () => {
    const campaign = await seedCampaign(env, 1000);
    const worker = startWorker();
    await start(env, campaign.id);
    const inFlight = await waitFor(async () => {
      const [row] = await env.query<{ n: string }>(
        `SELECT count(*) AS n FROM message WHERE campaign_id = $1 AND status = 'SENDING'`,
        [campaign.id],
      );
      return Number(row!.n) >= 50 ? Number(row!.n) : undefined;
    }, 'sends in flight');
    expect(inFlight).toBeGreaterThanOrEqual(50);

    worker.kill('SIGTERM');
    const [code] = (await once(worker, 'exit')) as [number | null];
    expect(code, worker.output().slice(-2000)).toBe(0);

    // Every send that was in flight was finished and recorded: none is left SENDING or UNKNOWN.
    const afterStop = await messagesOf(env, campaign.id);
    const byStatus = (s: string) => afterStop.filter((m) => m.status === s).length;
    expect(byStatus('SENDING')).toBe(0);
    expect(byStatus('UNKNOWN')).toBe(0);
    for (const m of afterStop) {
      const requests = env.sandbox.receivedByReference.get(m.id) ?? 0;
      if (requests > 0) expect(['PENDING', 'QUEUED']).not.toContain(m.status);
      else expect(['PENDING', 'QUEUED'], `message ${m.id}`).toContain(m.status);
    }
    // It stopped taking jobs: the campaign was not finished by the stopping worker.
    expect(byStatus('PENDING') + byStatus('QUEUED')).toBeGreaterThan(0);

    startWorker();
    const stats = await waitForCompletion(env, campaign.id, 40_000);
    expect(stats.remaining).toBe(0);
    expect(stats.counts.UNKNOWN).toBe(0);
    for (const m of await messagesOf(env, campaign.id))
      expect(env.sandbox.receivedByReference.get(m.id), `message ${m.id}`).toBe(1);
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
    // Two worker processes start under tsx: slow on a busy 2-core machine.
  }, 120_000);
});
