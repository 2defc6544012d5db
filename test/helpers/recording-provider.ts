import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A zero-latency provider speaking the sandbox's wire format (`POST /v1/messages`, Bearer key,
 * batches ≤ 100, 202 with a result per message) that records when each message arrived and posts
 * no delivery reports. For rate and throughput measurements: the arrival times are the provider's
 * view of how smooth the sending was.
 */
export class RecordingProvider {
  /** Arrival time (ms, performance.timeOrigin-based, sub-millisecond) of each message, in order. */
  readonly arrivals: number[] = [];
  readonly received = new Map<string, number>();
  /**
   * Wall-clock time (`Date.now()`, ms since the epoch) at which each reference first arrived: the
   * clock the rest of Herald schedules by, for comparing arrivals with due times.
   */
  readonly firstArrivedAt = new Map<string, number>();
  requests = 0;
  private server: Server | undefined;

  constructor(private readonly apiKey: string) {}

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      void this.handle(req).then(
        ({ status, body }) => {
          const text = JSON.stringify(body);
          res.writeHead(status, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(text),
          });
          res.end(text);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
    });
    this.server.keepAliveTimeout = 10_000;
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; body: unknown }> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const at = performance.timeOrigin + performance.now();
    const wallAt = Date.now();
    if (req.headers.authorization !== `Bearer ${this.apiKey}`)
      return { status: 401, body: { error: { code: 'UNAUTHORIZED', message: 'bad key' } } };
    const { messages } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      messages: Array<{ reference?: string }>;
    };
    this.requests += 1;
    return {
      status: 202,
      body: {
        messages: messages.map((m) => {
          this.arrivals.push(at);
          if (m.reference) {
            this.received.set(m.reference, (this.received.get(m.reference) ?? 0) + 1);
            if (!this.firstArrivedAt.has(m.reference)) this.firstArrivedAt.set(m.reference, wallAt);
          }
          return { id: `rec-${randomUUID()}`, status: 'accepted', segments: 1 };
        }),
      },
    };
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    await new Promise<void>((resolve) => {
      this.server!.close(() => resolve());
      this.server!.closeAllConnections();
    });
  }
}

/** The most arrivals in any window of `windowMs` (sliding, half-open), and where it starts. */
export function busiestWindow(times: number[], windowMs = 1000): { count: number; start: number } {
  const sorted = [...times].sort((a, b) => a - b);
  let best = { count: 0, start: sorted[0] ?? 0 };
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi]! - sorted[lo]! >= windowMs) lo++;
    if (hi - lo + 1 > best.count) best = { count: hi - lo + 1, start: sorted[lo]! };
  }
  return best;
}
