import { requireWebhookSecret, type Config } from '../config/config.js';
import type { Logger } from '../logger.js';
import { providerDefinitions } from './registry.js';
import type { ProviderAdapter } from './types.js';
import { webhookUrl } from './webhook-url.js';

/** One adapter per configured account, created on first use and reused (it holds the connection pool). */
export class ProviderPool {
  private readonly adapters = new Map<string, ProviderAdapter>();

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
  ) {}

  get(accountName: string): ProviderAdapter {
    let adapter = this.adapters.get(accountName);
    if (!adapter) {
      const account = this.config.accounts.get(accountName);
      const definition = providerDefinitions[account.provider]!;
      adapter = definition.create({
        account,
        callbackUrl: webhookUrl(
          this.config.publicUrl,
          requireWebhookSecret(this.config),
          account.name,
        ),
        logger: this.logger.child({ account: account.name, provider: account.provider }),
      });
      this.adapters.set(accountName, adapter);
    }
    return adapter;
  }

  async close(): Promise<void> {
    const adapters = [...this.adapters.values()];
    this.adapters.clear();
    await Promise.all(adapters.map((a) => a.close()));
  }
}
