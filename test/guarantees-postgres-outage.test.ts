import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countersAndTruth, createTestEnv, type TestEnv } from './helpers/harness.js';
import {
  messagesOf,
  seedCampaign,
  start,
  waitForCompletion,
  waitForProcessed,
} from './helpers/campaigns.js';
import { getCampaignStats } from '../src/campaigns/campaign-stats.js';
import { TcpProxy } from './helpers/services.js';

describe('guarantee: Postgres unavailable for a while', () => {
  let env: TestEnv;
  let proxy: TcpProxy;

  beforeAll(async () => {
    env = await createTestEnv({
      sandbox: { latencyMs: 20, reportDelayMs: 200 },
      account: { rate: 200 },
    });
    // The workers reach Postgres through a proxy this test can cut (the shared Postgres itself
    // must keep running); the test's own connections and the API go direct.
    const direct = new URL(env.env.DATABASE_URL!);
    proxy = await TcpProxy.start({ host: direct.hostname, port: Number(direct.port || 5432) });
    const viaProxy = new URL(direct);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    env.env.DATABASE_URL = viaProxy.toString();
    await env.startWorkerSet();
  });
  afterAll(async () => {
    await proxy?.restore(); // so the workers can close their connections cleanly
    await env?.close();
    await proxy?.stop();
  });

  it('workers wait it out and lose nothing: every sent message is recorded as sent', async () => {
    const campaign = await seedCampaign(env, 1000);
    await start(env, campaign.id);
    await waitForProcessed(env, campaign.id, 200);

    await proxy.cut();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    // The outage hit the campaign in the middle (otherwise this test would prove nothing).
    expect((await getCampaignStats(env.context, campaign.id)).remaining).toBeGreaterThan(0);
    await proxy.restore();

    const stats = await waitForCompletion(env, campaign.id, 40_000);
    expect(stats.total).toBe(1000);
    expect(stats.remaining).toBe(0);
    for (const m of await messagesOf(env, campaign.id)) {
      const requests = env.sandbox.receivedByReference.get(m.id) ?? 0;
      expect(requests, `message ${m.id}`).toBeLessThanOrEqual(1);
      if (requests === 1) {
        // The provider took it: its answer was kept and written once the database was back.
        // (FAILED, EXPIRED… here are the sandbox's delivery reports, not errors of ours.)
        expect(['UNKNOWN', 'SENDING', 'QUEUED']).not.toContain(m.status);
        expect(m.error_code ?? '', `message ${m.id}`).not.toMatch(/SEND_INTERRUPTED|ECONN/);
      } else {
        // Only a claim whose commit was cut off before its answer may end UNKNOWN.
        expect(m.status, `message ${m.id} was never sent`).toBe('UNKNOWN');
      }
    }
    const { counters, truth } = await countersAndTruth(env, campaign.id);
    expect(counters).toEqual(truth);
  }, 120_000);
});
