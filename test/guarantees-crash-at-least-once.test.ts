import { afterAll, describe, expect, it } from 'vitest';
import { countersAndTruth } from './helpers/harness.js';
import { messagesOf } from './helpers/campaigns.js';
import { cleanupCrashScenarios, runCampaignThroughKills } from './helpers/crash-scenario.js';

describe('guarantee: a worker killed with SIGKILL three times (an at-least-once account)', () => {
  afterAll(cleanupCrashScenarios);

  it('sends every message, re-sends only interrupted ones, and leaves none UNKNOWN', async () => {
    const run = await runCampaignThroughKills({
      deliveryPolicy: 'at-least-once',
      count: 1000,
      thresholds: [150, 400, 650],
    });
    const { env, campaign, stats, kills } = run;
    expect(kills).toBe(3);
    expect(stats.total).toBe(1000);
    expect(stats.remaining).toBe(0);
    expect(stats.counts.UNKNOWN).toBe(0);

    const messages = await messagesOf(env, campaign.id);
    let resent = 0;
    for (const m of messages) {
      const requests = env.sandbox.receivedByReference.get(m.id) ?? 0;
      // Nothing lost: every message reached the provider at least once.
      expect(requests, `message ${m.id} was never sent`).toBeGreaterThanOrEqual(1);
      // A second request only for a message whose first attempt was interrupted (claimed again).
      if (requests > 1) expect(m.attempts, `message ${m.id}`).toBeGreaterThan(1);
      if (m.attempts > 1) resent += 1;
      expect(['SENDING', 'UNKNOWN']).not.toContain(m.status);
    }
    // The kills did interrupt sends, and those were sent again rather than given up.
    expect(resent).toBeGreaterThan(0);
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
    // Five processes start under tsx: on a busy 2-core machine that alone can take half a minute.
  }, 150_000);
});
