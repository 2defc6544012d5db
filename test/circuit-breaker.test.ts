import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAccountPauses } from '../src/sending/account-state.js';
import { SANDBOX_ACCOUNT, countersAndTruth, createTestEnv, waitFor } from './helpers/harness.js';
import type { TestEnv } from './helpers/harness.js';
import { messagesOf, seedCampaign, start, waitForCompletion } from './helpers/campaigns.js';

/** Requests the sandbox has answered with an injected failure so far. */
function failedRequests(env: TestEnv, injected: number): number {
  // The sandbox counts down its injected failures; what was used is what it refused.
  const failures = env.sandbox['failures'];
  return injected - (failures?.remaining ?? 0);
}

describe('circuit breaker: a provider down for a while', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({
      account: { rate: 20 },
      env: {
        HERALD_CIRCUIT_FAILURES: '3',
        HERALD_CIRCUIT_PROBE_MS: '300',
        HERALD_CIRCUIT_PROBE_MAX_MS: '600',
      },
    });
    await env.startWorkerSet();
  });
  afterAll(() => env.close());

  it('stops sending, probes, and resumes by itself; no message fails or is sent twice', async () => {
    const campaign = await seedCampaign(env, 100);
    const injected = 1_000_000;
    env.sandbox.failNext(injected, 503); // down: every send answered 503 (documented "not sent")
    await start(env, campaign.id);

    const pause = await waitFor(async () => {
      const pauses = await readAccountPauses(env.context.redis, env.config.queuePrefix, new Date());
      return pauses[SANDBOX_ACCOUNT];
    }, 'the circuit to open');
    expect(pause.code).toBe('CIRCUIT_OPEN');

    await new Promise((resolve) => setTimeout(resolve, 4000));
    // While open, only probes reach the provider: at 20/s, retrying every message as it failed
    // would have made ~80 requests in these 4 s.
    expect(failedRequests(env, injected)).toBeLessThan(40);

    env.sandbox.failNext(0, 503); // back up
    const stats = await waitForCompletion(env, campaign.id, 30_000);
    expect(stats.remaining).toBe(0);
    expect(stats.counts.UNKNOWN).toBe(0);
    for (const m of await messagesOf(env, campaign.id)) {
      expect(env.sandbox.receivedByReference.get(m.id), `message ${m.id}`).toBe(1);
      expect(m.error_code ?? '').not.toMatch(/INJECTED|gave up/);
    }
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
  });
});
