/**
 * The sandbox's deterministic fate for a number, so a demo or a test can predict its report:
 * about 90% delivered, 5% failed, 3% expired, 2% undeliverable, chosen by a hash of the number.
 */
export type SandboxOutcome = 'delivered' | 'failed' | 'expired' | 'undeliverable';

export function sandboxOutcome(phone: string): SandboxOutcome {
  // FNV-1a: tiny, stable across platforms and Node versions.
  let hash = 0x811c9dc5;
  for (let i = 0; i < phone.length; i++) {
    hash ^= phone.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  const bucket = hash % 100;
  if (bucket < 90) return 'delivered';
  if (bucket < 95) return 'failed';
  if (bucket < 98) return 'expired';
  return 'undeliverable';
}

/** Error code the sandbox reports beside each failing outcome. */
export const sandboxErrorCodes: Record<Exclude<SandboxOutcome, 'delivered'>, string> = {
  failed: 'SBX-ABSENT-SUBSCRIBER',
  expired: 'SBX-VALIDITY-EXPIRED',
  undeliverable: 'SBX-UNKNOWN-SUBSCRIBER',
};
