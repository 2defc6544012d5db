import { AmbiguousSendError, ProviderError, RateLimitedError } from '../providers/errors.js';
import type { OutboundSms, ProviderAdapter, SendResult } from '../providers/types.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import { acquireTogether, type RateGate } from './rate-gate.js';

interface Waiting {
  sms: OutboundSms;
  resolve(result: SendResult): void;
}

export interface SendBatcherOptions {
  /** The account's cluster-wide rate: every request waits for its slot here. */
  gate?: RateGate;
  /**
   * The account's cluster-wide segments per second, where its provider's limits count segments:
   * every request also waits here for the sum of its messages' segments.
   */
  segmentGate?: RateGate;
  /** The account's circuit breaker: requests are held back while it is open. */
  circuit?: CircuitBreaker;
  /** @defaultValue 5 */
  lingerMs?: number;
}

/**
 * A batch may hold at most this share of a second of the account's rate (and of its segment
 * rate): the rate gates space requests by their size, so a batch of a whole second's messages
 * would arrive as one burst. A fiftieth keeps arrivals within 20 ms of even spacing (4 messages a
 * request at 200 msg/s; the provider's full batch from 5,000 msg/s up).
 */
const BATCH_SHARE_OF_RATE = 1 / 50;

/**
 * Coalesces the messages that concurrent jobs send at nearly the same moment into the provider's
 * real batch requests (MessageMedia 100, Catapult 50, Telstra 10…), so one BullMQ job per
 * recipient still costs a fraction of a request each. A batch goes when it is full or after
 * `lingerMs`. Each job gets its own message's result; a failure of the whole request (rate limit,
 * outage) becomes every member's result.
 */
export class SendBatcher {
  private waiting: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly lingerMs: number;

  constructor(
    private readonly adapter: ProviderAdapter,
    private readonly options: SendBatcherOptions = {},
  ) {
    this.lingerMs = options.lingerMs ?? 5;
  }

  /** Largest batch for the rate in force now (it can change at run time). */
  get maxBatch(): number {
    const rate = this.options.gate?.currentRate ?? Infinity;
    return Math.max(1, Math.min(this.adapter.maxBatchSize, Math.floor(rate * BATCH_SHARE_OF_RATE)));
  }

  /** Most segments in one batch for the segment rate in force now (a longer message goes alone). */
  get maxBatchSegments(): number {
    const rate = this.options.segmentGate?.currentRate ?? Infinity;
    return Math.max(1, Math.floor(rate * BATCH_SHARE_OF_RATE));
  }

  send(sms: OutboundSms): Promise<SendResult> {
    if (this.maxBatch <= 1 || this.maxBatchSegments <= segmentsOf(sms))
      return this.dispatch([sms]).then((results) => results[0]!);
    return new Promise((resolve) => {
      this.waiting.push({ sms, resolve });
      if (this.waiting.length >= this.maxBatch || this.waitingSegments() >= this.maxBatchSegments)
        this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.lingerMs);
    });
  }

  private waitingSegments(): number {
    return this.waiting.reduce((sum, w) => sum + segmentsOf(w.sms), 0);
  }

  /** The next batch: as many waiting messages as both the message and segment limits allow (≥ 1). */
  private takeBatch(): Waiting[] {
    const maxMessages = this.maxBatch;
    const maxSegments = this.maxBatchSegments;
    let count = 0;
    let segments = 0;
    while (count < this.waiting.length && count < maxMessages) {
      const next = segmentsOf(this.waiting[count]!.sms);
      if (count > 0 && segments + next > maxSegments) break;
      segments += next;
      count += 1;
    }
    return this.waiting.splice(0, count);
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.takeBatch();
    if (this.waiting.length > 0) this.timer = setTimeout(() => this.flush(), this.lingerMs);
    void this.dispatch(batch.map((w) => w.sms)).then((results) =>
      batch.forEach((w, i) => w.resolve(results[i]!)),
    );
  }

  /** Always resolves: one result per message, whatever happened to the request. */
  private async dispatch(messages: OutboundSms[]): Promise<SendResult[]> {
    const { circuit, gate, segmentGate } = this.options;
    let trial = false;
    try {
      if (circuit) {
        const verdict = await circuit.check();
        if (verdict.open) {
          const error = new RateLimitedError(
            'CIRCUIT_OPEN',
            'the provider is unavailable; the account waits for its health probe',
            verdict.waitMs,
          );
          return messages.map(() => ({ ok: false, error }));
        }
        trial = verdict.trial ?? false;
      }
      const demands = [
        ...(gate ? [{ gate, count: messages.length }] : []),
        ...(segmentGate
          ? [{ gate: segmentGate, count: messages.reduce((n, m) => n + segmentsOf(m), 0) }]
          : []),
      ];
      if (demands.length > 0) await acquireTogether(demands);
    } catch (error) {
      // Redis unreachable: nothing was sent, so the job may simply be tried again.
      const failure = new RateLimitedError(
        'RATE_GATE_UNAVAILABLE',
        `could not reserve a send slot: ${(error as Error).message}`,
        1000,
        { cause: error },
      );
      return messages.map(() => ({ ok: false, error: failure }));
    }
    try {
      const results = await this.adapter.sendBatch(messages);
      await circuit?.recordSuccess(trial).catch(() => {});
      return messages.map(
        (_, i) =>
          results[i] ?? {
            ok: false,
            error: new AmbiguousSendError(
              'PROVIDER_SHORT_RESPONSE',
              'the provider answered for fewer messages than were sent',
            ),
          },
      );
    } catch (error) {
      const failure =
        error instanceof ProviderError
          ? error
          : new AmbiguousSendError(
              'ADAPTER_ERROR',
              `unexpected adapter failure: ${(error as Error).message}`,
              { cause: error },
            );
      // Only failures that say "the provider is not working" count towards opening the circuit;
      // a rate limit or a refused account has its own handling.
      if (failure.kind === 'retryable' || failure.kind === 'ambiguous')
        await circuit?.recordFailure(trial, failure.code).catch(() => {});
      else if (trial) await circuit?.recordSuccess(true).catch(() => {});
      return messages.map(() => ({ ok: false, error: failure }));
    }
  }
}

/** What a message costs a segment rate gate: its segments as counted at import, at least one. */
function segmentsOf(sms: OutboundSms): number {
  return Math.max(1, sms.segments ?? 1);
}
