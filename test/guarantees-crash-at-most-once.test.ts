import { afterAll, describe, expect, it } from 'vitest';
import { countersAndTruth } from './helpers/harness.js';
import { messagesOf } from './helpers/campaigns.js';
import { cleanupCrashScenarios, runCampaignThroughKills } from './helpers/crash-scenario.js';

describe('guarantee: a worker killed with SIGKILL three times (at-most-once, the default)', () => {
  afterAll(cleanupCrashScenarios);

  it('loses nothing and sends nothing twice; only interrupted sends end UNKNOWN, counted', async () => {
    const run = await runCampaignThroughKills({
      deliveryPolicy: 'at-most-once',
      count: 1000,
      thresholds: [150, 400, 650],
    });
    const { env, campaign, stats, kills } = run;
    expect(kills).toBe(3);

    // Nothing lost: every message reached an outcome.
    expect(stats.total).toBe(1000);
    expect(stats.remaining).toBe(0);

    const messages = await messagesOf(env, campaign.id);
    let interrupted = 0;
    for (const m of messages) {
      const requests = env.sandbox.receivedByReference.get(m.id) ?? 0;
      // Nothing sent twice.
      expect(requests, `message ${m.id}`).toBeLessThanOrEqual(1);
      // Never sent → only because a worker died holding it, and then it is counted UNKNOWN.
      if (requests === 0) expect(m.status, `message ${m.id} was never sent`).toBe('UNKNOWN');
      if (m.status === 'UNKNOWN') {
        expect(m.error_code).toBe('SEND_INTERRUPTED');
        interrupted += 1;
      }
    }
    // The kills did hit sends in flight (otherwise this test would prove nothing), and every
    // UNKNOWN is in the campaign's numbers.
    expect(interrupted).toBeGreaterThan(0);
    expect(stats.counts.UNKNOWN).toBe(interrupted);
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
    // Five processes start under tsx: on a busy 2-core machine that alone can take half a minute.
  }, 150_000);
});
