import type { ProviderRequirements } from '../config/accounts.js';
import { bandwidthProvider } from './bandwidth/bandwidth.provider.js';
import { catapultProvider } from './catapult/catapult.provider.js';
import { messageMediaProvider } from './messagemedia/messagemedia.provider.js';
import { optusProvider } from './optus/optus.provider.js';
import { sandboxProvider } from './sandbox/sandbox.provider.js';
import { telstraProvider } from './telstra/telstra.provider.js';
import type { Account } from '../config/accounts.js';
import type { NativeScheduling, ProviderDefinition } from './types.js';

/** Every provider type Herald knows. Adding a provider is one line here. */
export const providerDefinitions: Record<string, ProviderDefinition> = {
  [sandboxProvider.type]: sandboxProvider,
  [optusProvider.type]: optusProvider,
  [messageMediaProvider.type]: messageMediaProvider,
  [bandwidthProvider.type]: bandwidthProvider,
  [catapultProvider.type]: catapultProvider,
  [telstraProvider.type]: telstraProvider,
};

export const providerRequirements: Record<string, ProviderRequirements> = providerDefinitions;

/** The provider's native scheduling for an account that asked for it (`"scheduling": "native"`). */
export function nativeSchedulingFor(account: Account): NativeScheduling | undefined {
  if (account.scheduling !== 'native') return undefined;
  return providerDefinitions[account.provider]?.nativeScheduling?.(account);
}
