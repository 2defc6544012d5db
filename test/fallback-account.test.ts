import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scheduleCampaign } from '../src/campaigns/campaign-lifecycle.js';
import {
  createCampaign,
  startCampaign,
  updateCampaign,
} from '../src/campaigns/campaign-service.js';
import { getCampaignReport, getCampaignStats } from '../src/campaigns/campaign-stats.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
import type { Job } from 'bullmq';
import { rerouteToFallback } from '../src/campaigns/fallback-route.js';
import { planCampaign } from '../src/campaigns/planner.js';
import { UserError } from '../src/errors.js';
import { readAccountPauses } from '../src/sending/account-state.js';
import { claimMessage } from '../src/sending/message-status.js';
import type { SendResult } from '../src/providers/types.js';
import type { SendBatcher } from '../src/sending/send-batcher.js';
import { processSendJob } from '../src/sending/send-message.js';
import { StatusWriter } from '../src/sending/status-writer.js';
import {
  SANDBOX_ACCOUNT,
  countersAndTruth,
  createTestEnv,
  recipientsCsv,
  waitFor,
  type TestEnv,
} from './helpers/harness.js';
import { messagesOf, waitForCompletion } from './helpers/campaigns.js';
import { runHerald } from './helpers/worker-process.js';

const FALLBACK = 'test-fallback';
/** An Optus account (5,000 characters a message) that nothing sends through: for body limits. */
const LONG_BODIES = 'test-optus';

async function expectUserError(promise: Promise<unknown>, code: string): Promise<UserError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected ${code}`).toBeInstanceOf(UserError);
  expect((error as UserError).code).toBe(code);
  return error as UserError;
}

async function campaignWith(
  env: TestEnv,
  options: { account?: string; fallbackAccount?: string | null; template?: string },
  recipients: number,
  offset: number,
) {
  const campaign = await createCampaign(env.context, {
    name: 'fallback',
    account: options.account ?? SANDBOX_ACCOUNT,
    template: options.template ?? 'Hi {{first_name}}',
    fallbackAccount: options.fallbackAccount,
  });
  if (recipients > 0)
    await importRecipients(
      env.context,
      campaign.id,
      Readable.from([recipientsCsv(recipients, offset)]),
    );
  return campaign;
}

describe('a campaign fallback account: the checks', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({
      extraAccounts: [
        { name: FALLBACK },
        {
          name: LONG_BODIES,
          provider: 'optus',
          baseUrl: 'http://127.0.0.1:9',
          credentials: { applicationName: 'herald', password: 'not-used' },
        },
      ],
    });
  });
  afterAll(() => env.close());

  it('must be a configured account other than the campaign’s (create and edit)', async () => {
    await expectUserError(campaignWith(env, { fallbackAccount: 'nope' }, 0, 0), 'ACCOUNT_UNKNOWN');
    await expectUserError(
      campaignWith(env, { fallbackAccount: SANDBOX_ACCOUNT }, 0, 0),
      'FALLBACK_ACCOUNT_INVALID',
    );
    const campaign = await campaignWith(env, { fallbackAccount: FALLBACK }, 0, 0);
    expect(campaign.fallbackAccount).toBe(FALLBACK);
    await expectUserError(
      updateCampaign(env.context, campaign.id, { fallbackAccount: SANDBOX_ACCOUNT }),
      'FALLBACK_ACCOUNT_INVALID',
    );
    await expectUserError(
      updateCampaign(env.context, campaign.id, { fallbackAccount: 'nope' }),
      'ACCOUNT_UNKNOWN',
    );
    const cleared = await updateCampaign(env.context, campaign.id, { fallbackAccount: null });
    expect(cleared.fallbackAccount).toBeNull();
  });

  it('the API takes it on create and PATCH, answers the stable codes, and shows it', async () => {
    const headers = { authorization: `Bearer ${env.env.HERALD_API_KEYS}` };
    const created = await env.app.inject({
      method: 'POST',
      url: '/v1/campaigns',
      headers,
      payload: { name: 'api', account: SANDBOX_ACCOUNT, template: 'Hi', fallbackAccount: FALLBACK },
    });
    expect(created.statusCode, created.body).toBe(201);
    const campaign = created.json<{ id: string; fallbackAccount: string }>();
    expect(campaign.fallbackAccount).toBe(FALLBACK);
    const same = await env.app.inject({
      method: 'PATCH',
      url: `/v1/campaigns/${campaign.id}`,
      headers,
      payload: { fallbackAccount: SANDBOX_ACCOUNT },
    });
    expect(same.statusCode).toBe(400);
    expect(same.json<{ error: { code: string } }>().error.code).toBe('FALLBACK_ACCOUNT_INVALID');
    const cleared = await env.app.inject({
      method: 'PATCH',
      url: `/v1/campaigns/${campaign.id}`,
      headers,
      payload: { fallbackAccount: null },
    });
    expect(cleared.statusCode, cleared.body).toBe(200);
    expect(cleared.json<{ fallbackAccount: string | null }>().fallbackAccount).toBeNull();
  });

  it("every message must fit the fallback provider's body limit: edit, schedule and start refuse otherwise", async () => {
    const long = `Hi {{first_name}} ${'x'.repeat(1700)}`; // Optus takes 5,000; the sandbox 1,600
    // Named as fallback after the import.
    const first = await campaignWith(env, { account: LONG_BODIES, template: long }, 3, 0);
    const tooLong = await expectUserError(
      updateCampaign(env.context, first.id, { fallbackAccount: FALLBACK }),
      'FALLBACK_BODY_TOO_LONG',
    );
    expect(tooLong.message).toContain('at most 1600');
    // A new template is checked against the fallback too.
    const second = await campaignWith(
      env,
      { account: LONG_BODIES, fallbackAccount: FALLBACK, template: 'Hi {{first_name}}' },
      3,
      10,
    );
    await expectUserError(
      updateCampaign(env.context, second.id, { template: long }),
      'FALLBACK_BODY_TOO_LONG',
    );
    // Named first, recipients imported afterwards (the import checks the campaign's own account).
    const third = await campaignWith(
      env,
      { account: LONG_BODIES, fallbackAccount: FALLBACK, template: long },
      3,
      20,
    );
    await expectUserError(startCampaign(env.context, third.id), 'FALLBACK_BODY_TOO_LONG');
    await expectUserError(
      scheduleCampaign(env.context, third.id, new Date(Date.now() + 3_600_000).toISOString()),
      'FALLBACK_BODY_TOO_LONG',
    );
    // Nothing changed, and it can start once the fallback is gone.
    expect((await getCampaignStats(env.context, third.id)).campaign.status).toBe('DRAFT');
    await updateCampaign(env.context, third.id, { fallbackAccount: null });
    const started = await startCampaign(env.context, third.id);
    expect(started.status).toBe('RUNNING');
  });

  it('`herald campaign create --fallback-account` and `campaign edit --fallback-account none`', async () => {
    const file = join(tmpdir(), `herald-accounts-${randomBytes(6).toString('hex')}.json`);
    const accounts = [SANDBOX_ACCOUNT, FALLBACK].map((name) => ({
      name,
      provider: 'sandbox',
      baseUrl: env.config.accounts.get(name).baseUrl,
      credentials: { apiKey: 'env:TEST_SANDBOX_KEY' },
      rate: 10,
    }));
    await writeFile(file, JSON.stringify({ accounts }));
    const cli = { ...env.env, HERALD_ACCOUNTS_FILE: file };
    try {
      const created = await runHerald(
        [
          'campaign',
          'create',
          '--name',
          'cli fallback',
          '--account',
          SANDBOX_ACCOUNT,
          '--message',
          'Hi',
          '--fallback-account',
          FALLBACK,
        ],
        cli,
      );
      expect(created.code, created.stderr).toBe(0);
      expect(created.stdout).toContain(`falls back to ${FALLBACK}`);
      const id = /Created campaign ([0-9a-f-]{36})/.exec(created.stdout)![1]!;
      const edited = await runHerald(['campaign', 'edit', id, '--fallback-account', 'none'], cli);
      expect(edited.code, edited.stderr).toBe(0);
      const [row] = await env.query<{ fallback_account: string | null }>(
        'SELECT fallback_account FROM campaign WHERE id = $1',
        [id],
      );
      expect(row!.fallback_account).toBeNull();
    } finally {
      await rm(file, { force: true });
    }
    // Two CLI processes under tsx: slow on a busy machine.
  }, 120_000);
});

describe('a campaign fallback account: routing, decided in Postgres', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({ extraAccounts: [{ name: FALLBACK }] });
  });
  afterAll(() => env.close());

  /** Opens (or, with probeAt in the past, half-opens) an account's circuit as the breaker would. */
  const openCircuit = (account: string, probeInMs: number) =>
    env.context.redis.set(
      `${env.config.queuePrefix}:circuit:${account}`,
      JSON.stringify({ openedAt: Date.now(), probeAt: Date.now() + probeInMs, probeMs: 1000 }),
    );
  const closeCircuit = (account: string) =>
    env.context.redis.del(`${env.config.queuePrefix}:circuit:${account}`);
  const jobIds = async (account: string) =>
    (await env.context.queues.send(account).getJobs(['wait', 'delayed'])).map((j) => j.id);
  const rows = (campaignId: string) =>
    env.query<{ id: string; status: string; route_account: string | null }>(
      'SELECT id, status, route_account FROM message WHERE campaign_id = $1 ORDER BY id',
      [campaignId],
    );
  /** A send job as BullMQ would hand it to a worker of `account`. */
  const runJob = (
    account: string,
    messageId: string,
    campaignId: string,
    send: () => Promise<SendResult> = notCalled,
  ) =>
    processSendJob(
      env.context,
      { data: { messageId, campaignId }, attemptsMade: 0, opts: { attempts: 8 } } as Job,
      env.config.accounts.get(account),
      { send } as unknown as SendBatcher,
      { writer: new StatusWriter(env.context.db.pool, () => new Date(), account) },
    );
  const notCalled = (): Promise<SendResult> =>
    Promise.reject(new Error('the provider must not be called'));

  it('plans into the fallback while the circuit is open and its probe not due; the reroute pass moves QUEUED messages only', async () => {
    const campaign = await campaignWith(env, { fallbackAccount: FALLBACK }, 6, 0);
    const without = await campaignWith(env, {}, 2, 50);
    // Running, with its messages planned into its own account's queue (no workers here).
    await env.query(`UPDATE campaign SET status = 'RUNNING' WHERE id = ANY($1::uuid[])`, [
      [campaign.id, without.id],
    ]);
    await planCampaign(env.context, campaign.id);
    await planCampaign(env.context, without.id);
    const [sending, ...queued] = await rows(campaign.id);
    expect(await jobIds(FALLBACK)).toEqual([]);
    // One is being sent (claimed by the campaign's account): it never moves.
    expect(
      await claimMessage(env.context.db.pool, sending!.id, new Date(), SANDBOX_ACCOUNT),
    ).toBeDefined();

    // Circuit open, probe due later: the pass moves the QUEUED ones, with jobs in the fallback's queue.
    await openCircuit(SANDBOX_ACCOUNT, 60_000);
    expect(await rerouteToFallback(env.context)).toBe(5);
    const after = await rows(campaign.id);
    expect(after[0]).toMatchObject({ status: 'SENDING', route_account: null });
    for (const row of after.slice(1))
      expect(row).toMatchObject({ status: 'QUEUED', route_account: FALLBACK });
    expect((await jobIds(FALLBACK)).sort()).toEqual(queued.map((q) => q.id).sort());
    // The campaign without a fallback stays where it is; a second pass finds nothing more.
    for (const row of await rows(without.id)) expect(row.route_account).toBeNull();
    expect(await rerouteToFallback(env.context)).toBe(0);

    // Its account cannot claim them any more; the fallback can, and records itself.
    const moved = queued[0]!.id;
    expect(
      await claimMessage(env.context.db.pool, moved, new Date(), SANDBOX_ACCOUNT),
    ).toBeUndefined();
    expect(await claimMessage(env.context.db.pool, moved, new Date(), FALLBACK)).toBeDefined();
    const [handed] = await env.query<{ account_name: string }>(
      'SELECT account_name FROM message WHERE id = $1',
      [moved],
    );
    expect(handed!.account_name).toBe(FALLBACK);

    // New messages are planned straight into the fallback while it lasts...
    const late = await campaignWith(env, { fallbackAccount: FALLBACK }, 2, 60);
    await env.query(`UPDATE campaign SET status = 'RUNNING' WHERE id = $1`, [late.id]);
    await planCampaign(env.context, late.id);
    for (const row of await rows(late.id))
      expect(row).toMatchObject({ status: 'QUEUED', route_account: FALLBACK });
    // ...and into the campaign's own account once its probe is due (it needs traffic to probe)
    // or the circuit closed; nothing queued moves then.
    const again = await campaignWith(env, { fallbackAccount: FALLBACK }, 2, 70);
    await env.query(`UPDATE campaign SET status = 'RUNNING' WHERE id = $1`, [again.id]);
    await openCircuit(SANDBOX_ACCOUNT, -1);
    await planCampaign(env.context, again.id);
    for (const row of await rows(again.id))
      expect(row).toMatchObject({ status: 'QUEUED', route_account: null });
    expect(await rerouteToFallback(env.context)).toBe(0);
    // Both accounts down: nothing moves.
    await openCircuit(SANDBOX_ACCOUNT, 60_000);
    await openCircuit(FALLBACK, 60_000);
    expect(await rerouteToFallback(env.context)).toBe(0);
    await closeCircuit(FALLBACK);
    await closeCircuit(SANDBOX_ACCOUNT);
  });

  it('a job left in the other account’s queue finds nothing to do, whatever the message’s status', async () => {
    const campaign = await campaignWith(env, { fallbackAccount: FALLBACK }, 3, 100);
    await env.query(`UPDATE campaign SET status = 'RUNNING' WHERE id = $1`, [campaign.id]);
    const [queued, sending, pending] = await rows(campaign.id);
    // Moved to the fallback: one still queued there, one being sent by it.
    await env.query(
      `UPDATE message SET status = 'QUEUED', route_account = $2 WHERE id = ANY($1::uuid[])`,
      [[queued!.id, sending!.id], FALLBACK],
    );
    expect(
      await claimMessage(env.context.db.pool, sending!.id, new Date(), FALLBACK),
    ).toBeDefined();

    expect(await runJob(SANDBOX_ACCOUNT, queued!.id, campaign.id)).toBe('rerouted');
    // A SENDING message is never taken for an interrupted send of the campaign's account: it is
    // not marked UNKNOWN (at-most-once) nor sent again (at-least-once).
    expect(await runJob(SANDBOX_ACCOUNT, sending!.id, campaign.id)).toBe('rerouted');
    const atLeastOnce = env.config.accounts.get(SANDBOX_ACCOUNT);
    atLeastOnce.deliveryPolicy = 'at-least-once';
    try {
      expect(await runJob(SANDBOX_ACCOUNT, sending!.id, campaign.id)).toBe('rerouted');
    } finally {
      atLeastOnce.deliveryPolicy = 'at-most-once';
    }
    // And the fallback's worker has nothing to do for a message still routed to the campaign's.
    expect(await runJob(FALLBACK, pending!.id, campaign.id)).toBe('rerouted');
    expect(await rows(campaign.id)).toEqual([
      { id: queued!.id, status: 'QUEUED', route_account: FALLBACK },
      { id: sending!.id, status: 'SENDING', route_account: FALLBACK },
      { id: pending!.id, status: 'PENDING', route_account: null },
    ]);

    // The fallback's own job sends it, through the fallback.
    const sent = await runJob(FALLBACK, queued!.id, campaign.id, () =>
      Promise.resolve({ ok: true, providerMessageId: 'fallback-1' }),
    );
    expect(sent).toBe('sent');
    const [row] = await env.query<{ status: string; account_name: string }>(
      'SELECT status, account_name FROM message WHERE id = $1',
      [queued!.id],
    );
    expect(row).toEqual({ status: 'SENT', account_name: FALLBACK });
  });
});

describe('a campaign fallback account: the campaign’s provider down', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv({
      account: { rate: 50 },
      extraAccounts: [{ name: FALLBACK, rate: 50 }],
      env: {
        HERALD_CIRCUIT_FAILURES: '3',
        HERALD_CIRCUIT_PROBE_MS: '500',
        HERALD_CIRCUIT_PROBE_MAX_MS: '1000',
      },
    });
    // Two worker sets, as two processes (or machines) would run them.
    await env.startWorkerSet();
    await env.startWorkerSet();
  });
  afterAll(() => env.close());

  it('sends through the fallback while the circuit is open, each message once; a campaign without one waits and resumes; planning returns after recovery', async () => {
    const primary = env.sandbox;
    const fallback = env.sandboxes[FALLBACK]!;
    primary.failNext(1_000_000, 503); // down: every send answered 503 (documented "not sent")

    const withFallback = await campaignWith(env, { fallbackAccount: FALLBACK }, 60, 0);
    const waiting = await campaignWith(env, {}, 40, 100);
    await startCampaign(env.context, withFallback.id);
    await startCampaign(env.context, waiting.id);

    const pause = await waitFor(async () => {
      const pauses = await readAccountPauses(env.context.redis, env.config.queuePrefix, new Date());
      return pauses[SANDBOX_ACCOUNT];
    }, 'the circuit to open');
    expect(pause.code).toBe('CIRCUIT_OPEN');

    // The campaign with a fallback completes through it while its own provider is still down.
    const done = await waitForCompletion(env, withFallback.id, 60_000);
    expect(done.total).toBe(60);
    expect(done.counts.UNKNOWN).toBe(0);
    const rerouted = await messagesOf(env, withFallback.id);
    for (const m of rerouted) {
      // Failures, if any, are the sandbox's delivery outcomes, never the outage's.
      expect(m.error_code ?? '').not.toMatch(/INJECTED|gave up|CIRCUIT/);
      expect(fallback.receivedByReference.get(m.id), `message ${m.id}`).toBe(1);
      expect(primary.receivedByReference.get(m.id), `message ${m.id}`).toBeUndefined();
    }
    const accounts = await env.query<{ account_name: string; route_account: string; n: string }>(
      `SELECT account_name, route_account, count(*) AS n FROM message WHERE campaign_id = $1
       GROUP BY 1, 2`,
      [withFallback.id],
    );
    expect(accounts).toEqual([{ account_name: FALLBACK, route_account: FALLBACK, n: '60' }]);
    const report = await getCampaignReport(env.context, withFallback.id);
    expect(report.campaign.fallbackAccount).toBe(FALLBACK);
    expect(report.viaFallback).toBe(60);
    expect(report.handedOverByAccount).toEqual([{ account: FALLBACK, messages: 60 }]);
    {
      const { counters, truth } = await countersAndTruth(env, withFallback.id);
      expect(counters).toEqual(truth);
    }

    // The campaign without a fallback on the same account waits: nothing failed, nothing sent.
    const meanwhile = await getCampaignStats(env.context, waiting.id);
    expect(meanwhile.campaign.status).toBe('RUNNING');
    expect(meanwhile.remaining).toBe(40);
    for (const m of await messagesOf(env, waiting.id)) {
      expect(primary.receivedByReference.get(m.id)).toBeUndefined();
      expect(fallback.receivedByReference.get(m.id)).toBeUndefined();
    }

    primary.failNext(0, 503); // back up: the probe closes the circuit, sending resumes by itself
    const resumed = await waitForCompletion(env, waiting.id, 60_000);
    expect(resumed.counts.UNKNOWN).toBe(0);
    for (const m of await messagesOf(env, waiting.id)) {
      expect(primary.receivedByReference.get(m.id), `message ${m.id}`).toBe(1);
      expect(fallback.receivedByReference.get(m.id)).toBeUndefined();
      expect(m.error_code ?? '').not.toMatch(/INJECTED|gave up/);
    }
    {
      const { counters, truth } = await countersAndTruth(env, waiting.id);
      expect(counters).toEqual(truth);
    }

    // Recovered: a new campaign naming the fallback is planned into its own account again.
    const after = await campaignWith(env, { fallbackAccount: FALLBACK }, 20, 200);
    await startCampaign(env.context, after.id);
    await waitForCompletion(env, after.id, 60_000);
    for (const m of await messagesOf(env, after.id)) {
      expect(primary.receivedByReference.get(m.id), `message ${m.id}`).toBe(1);
      expect(fallback.receivedByReference.get(m.id)).toBeUndefined();
    }
    expect((await getCampaignReport(env.context, after.id)).viaFallback).toBe(0);

    // The jobs the reroute left behind in the recovered account's queue found nothing to do.
    await waitFor(async () => {
      const counts = await env.context.queues
        .send(SANDBOX_ACCOUNT)
        .getJobCounts('wait', 'delayed', 'active', 'prioritized');
      return Object.values(counts).every((n) => n === 0) ? true : undefined;
    }, "the campaign account's queue to drain");
    for (const m of rerouted) expect(primary.receivedByReference.get(m.id)).toBeUndefined();
  }, 180_000);
});
