import { AmbiguousSendError, ProviderError } from '../providers/errors.js';
import type { OutboundSms, ProviderAdapter, SendResult } from '../providers/types.js';

interface Waiting {
  sms: OutboundSms;
  resolve(result: SendResult): void;
}

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

  constructor(
    private readonly adapter: ProviderAdapter,
    /** @defaultValue 5 */
    private readonly lingerMs = 5,
  ) {}

  send(sms: OutboundSms): Promise<SendResult> {
    if (this.adapter.maxBatchSize <= 1) return this.dispatch([sms]).then((results) => results[0]!);
    return new Promise((resolve) => {
      this.waiting.push({ sms, resolve });
      if (this.waiting.length >= this.adapter.maxBatchSize) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.lingerMs);
    });
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.waiting.splice(0, this.adapter.maxBatchSize);
    if (this.waiting.length > 0) this.timer = setTimeout(() => this.flush(), this.lingerMs);
    void this.dispatch(batch.map((w) => w.sms)).then((results) =>
      batch.forEach((w, i) => w.resolve(results[i]!)),
    );
  }

  /** Always resolves: one result per message, whatever happened to the request. */
  private async dispatch(messages: OutboundSms[]): Promise<SendResult[]> {
    try {
      const results = await this.adapter.sendBatch(messages);
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
      return messages.map(() => ({ ok: false, error: failure }));
    }
  }
}
