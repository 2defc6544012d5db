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

/**
 * What the account's provider can hold until a send time, whatever the account asked for: a
 * campaign cancel needs it for messages handed over before the account's setting changed.
 */
export function providerSchedulingOf(account: Account): NativeScheduling | undefined {
  return providerDefinitions[account.provider]?.nativeScheduling?.(account);
}

/** The provider's native scheduling for an account that asked for it (`"scheduling": "native"`). */
export function nativeSchedulingFor(account: Account): NativeScheduling | undefined {
  return account.scheduling === 'native' ? providerSchedulingOf(account) : undefined;
}

/** The longest body, in characters, the account's provider accepts; undefined where it says none. */
export function maxBodyCharsFor(account: Account): number | undefined {
  return providerDefinitions[account.provider]?.maxBodyChars?.(account);
}
