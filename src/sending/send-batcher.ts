import { AmbiguousSendError, ProviderError, RateLimitedError } from '../providers/errors.js';
import type { OutboundSms, ProviderAdapter, SendResult } from '../providers/types.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import type { RateGate } from './rate-gate.js';

interface Waiting {
  sms: OutboundSms;
  resolve(result: SendResult): void;
}

export interface SendBatcherOptions {
  /** The account's cluster-wide rate: every request waits for its slot here. */
  gate?: RateGate;
  /** The account's circuit breaker: requests are held back while it is open. */
  circuit?: CircuitBreaker;
  /** @defaultValue 5 */
  lingerMs?: number;
}

/**
 * A batch may hold at most this share of a second of the account's rate: the rate gate spaces
 * requests by their size, so a batch of a whole second's messages would arrive as one burst.
 * A fiftieth keeps arrivals within 20 ms of even spacing (4 messages a request at 200 msg/s; the
 * provider's full batch from 5,000 msg/s up).
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

  send(sms: OutboundSms): Promise<SendResult> {
    if (this.maxBatch <= 1) return this.dispatch([sms]).then((results) => results[0]!);
    return new Promise((resolve) => {
      this.waiting.push({ sms, resolve });
      if (this.waiting.length >= this.maxBatch) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.lingerMs);
    });
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.waiting.splice(0, this.maxBatch);
    if (this.waiting.length > 0) this.timer = setTimeout(() => this.flush(), this.lingerMs);
    void this.dispatch(batch.map((w) => w.sms)).then((results) =>
      batch.forEach((w, i) => w.resolve(results[i]!)),
    );
  }

  /** Always resolves: one result per message, whatever happened to the request. */
  private async dispatch(messages: OutboundSms[]): Promise<SendResult[]> {
    const { circuit, gate } = this.options;
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
      await gate?.acquire(messages.length);
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
