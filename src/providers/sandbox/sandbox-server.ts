import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pLimit from 'p-limit';
import { request } from 'undici';
import type { Logger } from '../../logger.js';
import { countSegments } from '../../messages/segments.js';
import { sandboxErrorCodes, sandboxOutcome } from './outcomes.js';

/**
 * The sandbox SMS provider: a local HTTP server that behaves like a real SMS API, so the whole
 * path (adapter, HTTP client, rate limits, webhooks) runs without one. Its wire format is
 * documented in README.md "Sandbox provider".
 *
 *   POST /v1/messages   Authorization: Bearer <key>
 *     {"messages":[{"to":"+61412345678","body":"…","reference":"<ours>","callback_url":"…",
 *                   "send_at":"2026-12-04T10:00:00.000Z" (optional, RFC 3339)}]}  (≤100)
 *   → 202 {"messages":[{"id":"sbx-…","status":"accepted"|"scheduled","segments":1}
 *                      | {"status":"rejected","error":{"code":"…","message":"…"}}]}
 *   GET /v1/messages/{id} → {"id","reference","to","status","error_code","updated_at","send_at"}
 *   DELETE /v1/messages/{id} → 204 (was scheduled, now cancelled) | 409 NOT_SCHEDULED | 404
 *
 * A message with `send_at` (in the future, at most 365 days ahead) is held, status `scheduled`,
 * until then; from then on it is like any other. After `reportDelayMs` it POSTs one delivery
 * report per sent message to its callback_url:
 *   {"id","reference","to","status":"delivered|failed|expired|undeliverable","error_code","timestamp"}
 * retrying a report that is not answered 2xx up to 5 times, as real providers do. A cancelled
 * message gets no report (real providers differ; polling shows `cancelled`).
 */
export interface SandboxServerOptions {
  apiKey: string;
  host?: string;
  /** @defaultValue 0 (any free port) */
  port?: number;
  /** Delay before each delivery report is posted. @defaultValue 250 */
  reportDelayMs?: number;
  /** Delay before a send is answered, to look like a real network. @defaultValue 0 */
  latencyMs?: number;
  /**
   * Messages (by number) whose delivery report is never posted, as when a provider or a network
   * loses callbacks: their status still changes and `GET /v1/messages/{id}` shows it, so the
   * polling fallback can find it. @defaultValue none
   */
  dropReports?: (to: string) => boolean;
  logger?: Logger;
}

interface StoredMessage {
  id: string;
  reference: string | undefined;
  to: string;
  status: string;
  error_code: string | null;
  updated_at: string;
  /** When a scheduled message is (or was) due; null when it was sent on arrival. */
  send_at: string | null;
}

interface InjectedFailure {
  status: number;
  retryAfterSeconds?: number;
  remaining: number;
}

const MAX_BATCH = 100;
const MAX_BODY_CHARS = 1600;
const E164 = /^\+[1-9]\d{6,14}$/;
const MAX_STORED = 1_000_000;
/** The furthest ahead a `send_at` may be (README "Sandbox"). */
export const SANDBOX_MAX_SEND_AHEAD_MS = 365 * 24 * 60 * 60 * 1000;
/** setTimeout waits at most 2^31−1 ms (about 24.8 days; longer fires at once): longer holds step. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const RFC_3339 = /^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$/;

export class SandboxServer {
  /** Send requests received per message reference (our message id): tests check "exactly one". */
  readonly receivedByReference = new Map<string, number>();
  /** HTTP send requests answered 202. */
  acceptedRequests = 0;
  /** Delivery reports withheld because of `dropReports`. */
  droppedReports = 0;
  /** `GET /v1/messages/{id}` requests answered. */
  statusRequests = 0;
  private readonly messages = new Map<string, StoredMessage>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** The timer holding each scheduled message, by id, so a cancel can clear it. */
  private readonly held = new Map<string, NodeJS.Timeout>();
  private readonly callbackLimit = pLimit(32);
  private failures: InjectedFailure | undefined;
  private server: Server | undefined;
  private stopping = false;

  constructor(private readonly options: SandboxServerOptions) {}

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.route(req, res).catch((error: unknown) => {
        this.options.logger?.error({ err: error }, 'sandbox request failed');
        if (!res.headersSent)
          reply(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
      });
    });
    this.server.keepAliveTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', resolve);
    });
    return this.url;
  }

  get url(): string {
    const address = this.server?.address() as AddressInfo | null;
    if (!address) throw new Error('sandbox server is not listening');
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}`;
  }

  /**
   * Answer the next `count` sends or cancels with this HTTP status (429 carries Retry-After).
   * For tests.
   */
  failNext(count: number, status: number, retryAfterSeconds?: number): void {
    this.failures = { status, remaining: count, retryAfterSeconds };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.held.clear();
    this.callbackLimit.clearQueue();
    if (!this.server) return;
    await new Promise<void>((resolve) => {
      this.server!.close(() => resolve());
      this.server!.closeAllConnections();
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    if (req.headers.authorization !== `Bearer ${this.options.apiKey}`) {
      return reply(res, 401, {
        error: { code: 'UNAUTHORIZED', message: 'missing or wrong API key' },
      });
    }
    if (req.method === 'POST' && url.pathname === '/v1/messages') return this.send(req, res);
    const match = /^\/v1\/messages\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'DELETE' && match) return this.cancel(decodeURIComponent(match[1]!), res);
    if (req.method === 'GET' && match) {
      this.statusRequests += 1;
      const message = this.messages.get(decodeURIComponent(match[1]!));
      if (!message)
        return reply(res, 404, { error: { code: 'NOT_FOUND', message: 'no such message' } });
      return reply(res, 200, message);
    }
    reply(res, 404, {
      error: { code: 'NOT_FOUND', message: `no route ${req.method} ${url.pathname}` },
    });
  }

  private async send(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const payload = await readJson(req);
    if (this.options.latencyMs) await sleep(this.options.latencyMs);
    if (this.answeredWithInjectedFailure(res)) return;
    const messages = (payload as { messages?: unknown } | undefined)?.messages;
    if (!Array.isArray(messages) || messages.length === 0 || messages.length > MAX_BATCH) {
      return reply(res, 400, {
        error: {
          code: 'INVALID_REQUEST',
          message: `"messages" must be an array of 1 to ${MAX_BATCH}`,
        },
      });
    }
    const results = messages.map((item: unknown) => this.accept(item));
    this.acceptedRequests += 1;
    reply(res, 202, { messages: results });
  }

  /** Answers with the failure `failNext` asked for, if one is left. */
  private answeredWithInjectedFailure(res: ServerResponse): boolean {
    if (!this.failures || this.failures.remaining <= 0) return false;
    this.failures.remaining -= 1;
    const headers: Record<string, string> = {};
    if (this.failures.retryAfterSeconds !== undefined)
      headers['retry-after'] = String(this.failures.retryAfterSeconds);
    reply(
      res,
      this.failures.status,
      { error: { code: 'INJECTED', message: 'injected failure' } },
      headers,
    );
    return true;
  }

  private accept(item: unknown): object {
    const {
      to,
      body,
      reference,
      callback_url: callbackUrl,
      send_at: sendAtText,
    } = (item ?? {}) as Record<string, unknown>;
    if (typeof reference === 'string') {
      this.receivedByReference.set(reference, (this.receivedByReference.get(reference) ?? 0) + 1);
    }
    if (typeof to !== 'string' || !E164.test(to)) {
      return {
        status: 'rejected',
        error: { code: 'INVALID_NUMBER', message: '"to" must be E.164' },
      };
    }
    if (typeof body !== 'string' || body.length === 0 || body.length > MAX_BODY_CHARS) {
      return {
        status: 'rejected',
        error: {
          code: 'INVALID_BODY',
          message: `"body" must be 1 to ${MAX_BODY_CHARS} characters`,
        },
      };
    }
    let sendAt: number | undefined;
    if (sendAtText !== undefined && sendAtText !== null) {
      if (typeof sendAtText !== 'string' || !RFC_3339.test(sendAtText)) {
        return {
          status: 'rejected',
          error: { code: 'INVALID_SEND_AT', message: '"send_at" must be an RFC 3339 date-time' },
        };
      }
      sendAt = Date.parse(sendAtText);
      const ahead = sendAt - Date.now();
      if (!(ahead > 0 && ahead <= SANDBOX_MAX_SEND_AHEAD_MS)) {
        return {
          status: 'rejected',
          error: {
            code: 'INVALID_SEND_AT',
            message: '"send_at" must be in the future and at most 365 days ahead',
          },
        };
      }
    }
    const id = `sbx-${randomUUID()}`;
    const message: StoredMessage = {
      id,
      reference: typeof reference === 'string' ? reference : undefined,
      to,
      status: sendAt === undefined ? 'sent' : 'scheduled',
      error_code: null,
      updated_at: new Date().toISOString(),
      send_at: sendAt === undefined ? null : new Date(sendAt).toISOString(),
    };
    if (this.messages.size >= MAX_STORED) this.messages.delete(this.messages.keys().next().value!);
    this.messages.set(id, message);
    const callback = typeof callbackUrl === 'string' ? callbackUrl : undefined;
    if (sendAt !== undefined) this.hold(message, sendAt, callback);
    else if (callback) this.scheduleReport(message, callback);
    return {
      id,
      status: sendAt === undefined ? 'accepted' : 'scheduled',
      segments: countSegments(body).segments,
    };
  }

  /** Keeps a scheduled message until `sendAt`, then sends it (reported like any other). */
  private hold(message: StoredMessage, sendAt: number, callbackUrl: string | undefined): void {
    const wait = Math.min(Math.max(sendAt - Date.now(), 0), MAX_TIMER_MS);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.held.delete(message.id);
      if (this.stopping) return;
      // A hold longer than one timer, or a timer a millisecond early: never send before the time.
      if (Date.now() < sendAt) return this.hold(message, sendAt, callbackUrl);
      message.status = 'sent';
      message.updated_at = new Date().toISOString();
      if (callbackUrl) this.scheduleReport(message, callbackUrl);
    }, wait);
    this.timers.add(timer);
    this.held.set(message.id, timer);
  }

  /** `DELETE /v1/messages/{id}`: only a message still held can be cancelled. */
  private cancel(id: string, res: ServerResponse): void {
    if (this.answeredWithInjectedFailure(res)) return;
    const message = this.messages.get(id);
    if (!message)
      return reply(res, 404, { error: { code: 'NOT_FOUND', message: 'no such message' } });
    const timer = this.held.get(id);
    if (message.status !== 'scheduled' || !timer) {
      return reply(res, 409, {
        error: { code: 'NOT_SCHEDULED', message: `the message is ${message.status}` },
      });
    }
    clearTimeout(timer);
    this.timers.delete(timer);
    this.held.delete(id);
    message.status = 'cancelled';
    message.updated_at = new Date().toISOString();
    res.writeHead(204).end();
  }

  private scheduleReport(message: StoredMessage, callbackUrl: string): void {
    const delay = this.options.reportDelayMs ?? 250;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      const outcome = sandboxOutcome(message.to);
      message.status = outcome;
      message.error_code = outcome === 'delivered' ? null : sandboxErrorCodes[outcome];
      message.updated_at = new Date().toISOString();
      if (this.options.dropReports?.(message.to)) {
        this.droppedReports += 1;
        return;
      }
      const report = {
        id: message.id,
        reference: message.reference,
        to: message.to,
        status: outcome,
        error_code: message.error_code,
        timestamp: message.updated_at,
      };
      void this.callbackLimit(() => this.postReport(callbackUrl, report, 1));
    }, delay);
    this.timers.add(timer);
  }

  private async postReport(url: string, report: object, attempt: number): Promise<void> {
    if (this.stopping) return;
    try {
      const res = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'herald-sandbox/1' },
        body: JSON.stringify(report),
      });
      await res.body.dump();
      if (res.statusCode >= 200 && res.statusCode < 300) return;
      this.options.logger?.warn({ status: res.statusCode, attempt }, 'sandbox report not accepted');
    } catch (error) {
      this.options.logger?.warn({ err: error, attempt }, 'sandbox report could not be posted');
    }
    if (attempt >= 5 || this.stopping) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        void this.callbackLimit(() => this.postReport(url, report, attempt + 1));
      },
      500 * 2 ** attempt,
    );
    this.timers.add(timer);
  }
}

function reply(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 1_000_000) return undefined;
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
