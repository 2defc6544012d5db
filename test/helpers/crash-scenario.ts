import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { createTestEnv, waitFor, type TestEnv } from './harness.js';
import { seedCampaign, start, waitForCompletion, waitForProcessed } from './campaigns.js';
import { spawnHerald, writeAccountsFile } from './worker-process.js';

/** Scenarios not yet cleaned up: a test that times out still gets its processes killed. */
const pending = new Set<() => Promise<void>>();

/** For afterAll: kills the worker processes and drops the database of every unfinished scenario. */
export async function cleanupCrashScenarios(): Promise<void> {
  for (const cleanup of [...pending]) await cleanup();
}

/**
 * Runs a campaign through `herald worker` processes and kills one with SIGKILL three times while
 * it is sending (each time a fresh one takes its place), then waits for the campaign to complete.
 * The env stays open for assertions; afterAll(cleanupCrashScenarios) closes it.
 */
export async function runCampaignThroughKills(options: {
  deliveryPolicy: 'at-most-once' | 'at-least-once';
  count: number;
  thresholds: number[];
}) {
  // Slow enough that sends are in flight when a worker is killed, and reports late enough that a
  // re-run job meets its interrupted send before the report resolves it.
  const env: TestEnv = await createTestEnv({
    sandbox: { latencyMs: 40, reportDelayMs: 3000 },
    account: { rate: 100, deliveryPolicy: options.deliveryPolicy },
  });
  const accountsFile = await writeAccountsFile(env);
  const children: Array<ReturnType<typeof spawnHerald>> = [];
  const cleanup = async () => {
    pending.delete(cleanup);
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await env.close();
    await rm(accountsFile, { force: true });
  };
  pending.add(cleanup);
  try {
    const startWorker = () => {
      const child = spawnHerald(['worker'], {
        ...env.env,
        HERALD_ACCOUNTS_FILE: accountsFile,
        HERALD_JOB_LOCK_MS: '2000',
        LOG_LEVEL: 'info',
      });
      children.push(child);
      return child;
    };
    const campaign = await seedCampaign(env, options.count);
    // One survivor plus one victim per kill, all started (and up) before the campaign, so the
    // kills do not wait for a slow start-up; each killed one is replaced by a fresh process.
    const victims = options.thresholds.map(() => startWorker());
    const all = [...victims, startWorker()];
    await waitFor(
      async () => (all.every((c) => c.output().includes('send worker started')) ? true : undefined),
      'the workers to start',
    );
    await start(env, campaign.id);
    let kills = 0;
    for (const [i, threshold] of options.thresholds.entries()) {
      await waitForProcessed(env, campaign.id, threshold);
      const victim = victims[i]!;
      victim.kill('SIGKILL');
      await once(victim, 'exit');
      kills += 1;
      startWorker();
    }
    const stats = await waitForCompletion(env, campaign.id, 60_000);
    return { env, campaign, stats, kills, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
