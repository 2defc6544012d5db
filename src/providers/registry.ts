import type { ProviderRequirements } from '../config/accounts.js';
import { sandboxProvider } from './sandbox/sandbox.provider.js';
import type { ProviderDefinition } from './types.js';

/** Every provider type Herald knows. Adding a provider is one line here. */
export const providerDefinitions: Record<string, ProviderDefinition> = {
  [sandboxProvider.type]: sandboxProvider,
};

export const providerRequirements: Record<string, ProviderRequirements> = providerDefinitions;
