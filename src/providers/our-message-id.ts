const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a UUID: our message ids, and some providers' own ids (Optus). */
export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/**
 * Our message id from whatever a provider echoed back (reference, tag, metadata, a callback URL's
 * query), when it is one (a UUID); anything else is not ours and is left out.
 */
export function ourMessageId(value: unknown): string | undefined {
  return isUuid(value) ? value.toLowerCase() : undefined;
}
