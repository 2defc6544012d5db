// The sandbox adapter against the real sandbox server (our own provider, wire format in README
// "Sandbox"): native scheduling (send_at), holding, cancelling (DELETE) and the reports after.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Account } from '../../config/accounts.js';
import { createLogger } from '../../logger.js';
import { freezeClock } from '../../../test/helpers/frozen-clock.js';
import {
  AccountError,
  PermanentSendError,
  RateLimitedError,
  RetryableSendError,
} from '../errors.js';
import type { OutboundSms, SendResult, WebhookRequest } from '../types.js';
import { SandboxServer } from './sandbox-server.js';
import { SandboxProvider, sandboxProvider } from './sandbox.provider.js';

const API_KEY = 'sandbox-test-key';
const DAY = 86_400_000;

/** Receives the sandbox's delivery reports, noting when each arrived. */
class ReportReceiver {
  readonly reports: Array<{ body: Record<string, unknown>; receivedAt: number }> = [];
  private server: Server | undefined;
  private waiters: Array<() => void> = [];

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.reports.push({
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
          receivedAt: Date.now(),
        });
        res.writeHead(204).end();
        for (const wake of this.waiters.splice(0)) wake();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/webhooks/sbx/token`;
  }

  /** The report for this sandbox id, once it has come. */
  async reportFor(id: string): Promise<{ body: Record<string, unknown>; receivedAt: number }> {
    for (;;) {
      const found = this.reports.find((r) => r.body.id === id);
      if (found) return found;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

function account(baseUrl: string, apiKey = API_KEY): Account {
  return {
    name: 'sbx',
    provider: 'sandbox',
    baseUrl,
    credentials: { apiKey },
    rate: 100,
    concurrency: 4,
    deliveryPolicy: 'at-most-once',
    options: {},
  };
}

let n = 0;
const sms = (sendAt?: Date): OutboundSms => ({
  messageId: randomUUID(),
  to: `+614120${String(10000 + n++).padStart(5, '0')}`,
  body: 'Hello from the sandbox',
  ...(sendAt ? { sendAt } : {}),
});

function idOf(result: SendResult | undefined): string {
  if (!result?.ok) throw new Error(`expected a sent result, got ${JSON.stringify(result)}`);
  return result.providerMessageId;
}

function errorOf(result: SendResult | undefined): Error {
  if (!result || result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result)}`);
  return result.error;
}

describe('sandbox native scheduling', () => {
  const receiver = new ReportReceiver();
  const server = new SandboxServer({ apiKey: API_KEY, reportDelayMs: 50 });
  let adapter: SandboxProvider;
  const adapters: SandboxProvider[] = [];
  const make = (baseUrl: string, apiKey = API_KEY) => {
    const created = sandboxProvider.create({
      account: account(baseUrl, apiKey),
      callbackUrl: callbackUrl,
      logger: createLogger({ level: 'silent' }),
    }) as SandboxProvider;
    adapters.push(created);
    return created;
  };
  let callbackUrl = '';

  beforeAll(async () => {
    callbackUrl = await receiver.start();
    adapter = make(await server.start());
  });
  afterAll(async () => {
    await Promise.all(adapters.map((a) => a.close()));
    await server.stop();
    await receiver.close();
  });
  afterEach(() => vi.useRealTimers());

  const webhook = (body: unknown): WebhookRequest => ({
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    rawBody: JSON.stringify(body),
    url: '/webhooks/sbx/token',
  });

  it('offers 365 days ahead, cancellable', () => {
    expect(sandboxProvider.nativeScheduling?.(account(server.url))).toEqual({
      maxAheadMs: 365 * DAY,
      cancellable: true,
    });
    expect(typeof adapter.cancelScheduled).toBe('function');
  });

  it('hands over send_at (RFC 3339 UTC); the message is scheduled until then, and sent and reported after', async () => {
    const sendAt = new Date(Date.now() + 300);
    const [scheduled, immediate] = await adapter.sendBatch([sms(sendAt), sms()]);
    const id = idOf(scheduled);
    const held = await request(`${server.url}/v1/messages/${id}`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    }).then((r) => r.body.json() as Promise<Record<string, unknown>>);
    // Only a held message answers `scheduled`; the send_at it holds is ours, to the millisecond.
    expect(held.send_at).toBe(sendAt.toISOString());
    expect(held.status === 'scheduled' || Date.now() >= sendAt.getTime()).toBe(true);
    const immediately = await request(`${server.url}/v1/messages/${idOf(immediate)}`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    }).then((r) => r.body.json() as Promise<Record<string, unknown>>);
    expect(immediately.send_at).toBeNull();

    const report = await receiver.reportFor(id);
    // Never before its time: neither the send (the report's timestamp) nor its report.
    expect(Date.parse(report.body.timestamp as string)).toBeGreaterThanOrEqual(sendAt.getTime());
    expect(report.receivedAt).toBeGreaterThanOrEqual(sendAt.getTime());
    const [parsed] = adapter.parseWebhook(webhook(report.body)).reports;
    expect(['DELIVERED', 'FAILED', 'EXPIRED', 'UNDELIVERABLE']).toContain(parsed!.status);
  });

  it('polls a held message as SCHEDULED, and holds beyond one timer (over 24.8 days) without sending early', async () => {
    const [month, year, now] = await adapter.sendBatch([
      sms(new Date(Date.now() + 30 * DAY)),
      sms(new Date(Date.now() + 364 * DAY)),
      sms(),
    ]);
    // By the time the immediate message is reported, a timer that overflowed would have fired.
    await receiver.reportFor(idOf(now));
    const reports = await adapter.pollStatus([idOf(month), idOf(year)]);
    expect(reports.map((r) => [r.providerStatus, r.status])).toEqual([
      ['scheduled', 'SCHEDULED'],
      ['scheduled', 'SCHEDULED'],
    ]);
  });

  it('cancels a held message (204 → cancelled, polled CANCELLED, never reported); 409 and 404 are not-cancellable', async () => {
    // Due soon enough to wait for, late enough for the cancel to come first on a slow machine.
    const sendAt = Date.now() + 1500;
    const [cancelled, control] = await adapter.sendBatch([
      sms(new Date(sendAt)),
      sms(new Date(sendAt + 300)),
    ]);
    expect(await adapter.cancelScheduled(idOf(cancelled))).toBe('cancelled');
    expect(await adapter.pollStatus([idOf(cancelled)])).toMatchObject([
      { providerStatus: 'cancelled', status: 'CANCELLED' },
    ]);
    // Cancelled already, or never scheduled: 409 NOT_SCHEDULED. Unknown: 404.
    expect(await adapter.cancelScheduled(idOf(cancelled))).toBe('not-cancellable');
    const [sent] = await adapter.sendBatch([sms()]);
    expect(await adapter.cancelScheduled(idOf(sent))).toBe('not-cancellable');
    expect(await adapter.cancelScheduled('sbx-unknown')).toBe('not-cancellable');
    // The control message, due after the cancelled one, is reported; the cancelled one never is.
    await receiver.reportFor(idOf(control));
    expect(receiver.reports.filter((r) => r.body.id === idOf(cancelled))).toEqual([]);
    expect(await adapter.cancelScheduled(idOf(control))).toBe('not-cancellable');
  });

  it('accepts exactly 365 days ahead; a millisecond more, now or the past fail without reaching the sandbox', async () => {
    const now = freezeClock();
    const refused = [now + 365 * DAY + 1, now, now - 1].map((t) => sms(new Date(t)));
    const atLimit = sms(new Date(now + 365 * DAY));
    const requestsBefore = server.acceptedRequests;
    const results = await adapter.sendBatch([refused[0]!, atLimit, refused[1]!, refused[2]!]);
    for (const i of [0, 2, 3]) {
      expect(errorOf(results[i])).toBeInstanceOf(PermanentSendError);
      expect(errorOf(results[i])).toMatchObject({ code: 'SCHEDULE_OUT_OF_RANGE' });
    }
    expect(results[1]!.ok).toBe(true);
    expect(server.acceptedRequests).toBe(requestsBefore + 1);
    for (const m of refused) expect(server.receivedByReference.has(m.messageId)).toBe(false);
    expect(server.receivedByReference.get(atLimit.messageId)).toBe(1);
    // Only refused ones: no request at all.
    await adapter.sendBatch(refused);
    expect(server.acceptedRequests).toBe(requestsBefore + 1);
  });

  it('a send refused as a whole is thrown, unless some messages already failed on their own', async () => {
    server.failNext(1, 503);
    await expect(
      adapter.sendBatch([sms(new Date(Date.now() + DAY)), sms()]),
    ).rejects.toBeInstanceOf(RetryableSendError);
    server.failNext(1, 503);
    const [past, valid] = await adapter.sendBatch([sms(new Date(Date.now() - 1)), sms()]);
    expect(errorOf(past)).toMatchObject({ code: 'SCHEDULE_OUT_OF_RANGE' });
    expect(errorOf(valid)).toBeInstanceOf(RetryableSendError);
  });

  it('the sandbox itself rejects a send_at that is past, beyond 365 days or not RFC 3339, per message', async () => {
    const post = (sendAt: unknown) =>
      request(`${server.url}/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          messages: [
            { to: '+61412000001', body: 'x', send_at: sendAt },
            { to: '+61412000002', body: 'y' },
          ],
        }),
      }).then(async (r) => ({
        status: r.statusCode,
        body: (await r.body.json()) as { messages: unknown[] },
      }));
    for (const sendAt of [
      new Date(Date.now() - 1000).toISOString(),
      new Date(Date.now() + 366 * DAY).toISOString(),
      '2030-01-01 10:00:00',
      1_900_000_000_000,
    ]) {
      const answer = await post(sendAt);
      expect(answer.status).toBe(202);
      expect(answer.body.messages[0]).toMatchObject({
        status: 'rejected',
        error: { code: 'INVALID_SEND_AT' },
      });
      expect(answer.body.messages[1]).toMatchObject({ status: 'accepted' });
    }
    const offset = await post(new Date(Date.now() + DAY).toISOString().replace('Z', '+00:00'));
    expect(offset.body.messages[0]).toMatchObject({ status: 'scheduled', segments: 1 });
  });

  it('a cancel that fails as a request throws: 401 account, 429 rate-limited (Retry-After), 5xx retryable, refused connection retryable', async () => {
    const [held] = await adapter.sendBatch([sms(new Date(Date.now() + DAY))]);
    const id = idOf(held);
    const failure = (promise: Promise<unknown>) =>
      promise.then(
        () => undefined,
        (e: unknown) => e,
      );

    expect(await failure(make(server.url, 'wrong-key').cancelScheduled(id))).toBeInstanceOf(
      AccountError,
    );
    server.failNext(1, 429, 3);
    const limited = await failure(adapter.cancelScheduled(id));
    expect(limited).toBeInstanceOf(RateLimitedError);
    expect((limited as RateLimitedError).retryAfterMs).toBe(3_000);
    server.failNext(1, 503);
    expect(await failure(adapter.cancelScheduled(id))).toBeInstanceOf(RetryableSendError);
    // A refusal of the request itself (never expected) needs an operator, not a retry loop.
    server.failNext(1, 400);
    expect(await failure(adapter.cancelScheduled(id))).toBeInstanceOf(AccountError);

    const closed = new SandboxServer({ apiKey: API_KEY });
    const closedUrl = await closed.start();
    await closed.stop();
    expect(await failure(make(closedUrl).cancelScheduled(id))).toBeInstanceOf(RetryableSendError);

    // None of that touched the message: it can still be cancelled.
    expect(await adapter.cancelScheduled(id)).toBe('cancelled');
  });

  it('a stopped sandbox leaves no timer behind: a process holding a message a day ahead exits', async () => {
    const serverModule = fileURLToPath(new URL('./sandbox-server.ts', import.meta.url));
    const script = `
      const { SandboxServer } = await import(${JSON.stringify(serverModule)});
      const server = new SandboxServer({ apiKey: 'k' });
      const url = await server.start();
      const res = await fetch(url + '/v1/messages', {
        method: 'POST',
        headers: { authorization: 'Bearer k', 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ to: '+61412000001', body: 'x',
          callback_url: 'http://127.0.0.1:9/x', send_at: new Date(Date.now() + 86400000).toISOString() }] }),
      });
      const { messages } = await res.json();
      if (messages[0].status !== 'scheduled') process.exit(2);
      await server.stop();
    `;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '--eval', script],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // A leaked timer keeps the child alive for a day; the guard only stops a hung test.
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
    try {
      const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
      expect({ code, signal, stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    } finally {
      clearTimeout(guard);
    }
  });
});
