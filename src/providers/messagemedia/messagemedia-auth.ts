import { createHash, createHmac, createPublicKey, verify, type KeyObject } from 'node:crypto';

// MessageMedia request authentication (Basic or HMAC) and callback signature checks.

export interface HmacCredentials {
  key: string;
  secret: string;
}

/**
 * Headers for an HMAC-signed request, as the MessageMedia spec (info + "HMAC Authentication" tag)
 * describes it: HMAC-SHA256 over `Date: …\n[Content-MD5: …\n]<METHOD> <path?query> HTTP/1.1`,
 * base64, with Content-MD5 the hex MD5 of the body. (The deprecated Node SDK signs differently,
 * with hmac-sha1 and x-Content-MD5; the spec is followed here. See FACTS §3.1.)
 */
export function hmacHeaders(
  credentials: HmacCredentials,
  method: string,
  requestPath: string,
  body: string | undefined,
  now: Date = new Date(),
): Record<string, string> {
  const date = now.toUTCString(); // RFC 7231 IMF-fixdate, e.g. "Sat, 30 Jul 2016 05:13:23 GMT"
  const lines = [`Date: ${date}`];
  const headers: Record<string, string> = { date };
  if (body !== undefined && body.length > 0) {
    const md5 = createHash('md5').update(body, 'utf8').digest('hex');
    lines.push(`Content-MD5: ${md5}`);
    headers['content-md5'] = md5;
  }
  lines.push(`${method.toUpperCase()} ${requestPath} HTTP/1.1`);
  const signature = createHmac('sha256', credentials.secret)
    .update(lines.join('\n'), 'utf8')
    .digest('base64');
  const signed = headers['content-md5'] ? 'Date Content-MD5 request-line' : 'Date request-line';
  headers.authorization =
    `hmac username="${credentials.key}", algorithm="hmac-sha256", headers="${signed}", ` +
    `signature="${signature}"`;
  return headers;
}

/**
 * The public key of an enabled MessageMedia signature key: PEM, or the bare base64 DER (SPKI)
 * that `POST /v1/iam/signature_keys` returns as `public_key`.
 */
export function parsePublicKey(text: string): KeyObject {
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN')) return createPublicKey(trimmed);
  return createPublicKey({ key: Buffer.from(trimmed, 'base64'), format: 'der', type: 'spki' });
}

const DIGESTS: Record<string, string> = { SHA224: 'sha224', SHA256: 'sha256', SHA512: 'sha512' };

/**
 * Whether an Enterprise Webhooks callback carries a valid `X-Messagemedia-Signature`.
 *
 * What is signed is not in the spec; MessageMedia's own demo (messagemedia/webhooks-demo,
 * signed-webhook-handler.php) verifies RSA over `"<METHOD> <REQUEST_URI> <PROTOCOL>" + <Date
 * header> + <raw body>` with no separators, hashed with the key's digest
 * (`X-Messagemedia-Digest-Type`: SHA224, SHA256 or SHA512). The protocol is taken as HTTP/1.1, as
 * the request we receive does not say which it was.
 */
export function hasValidSignature(
  publicKey: KeyObject,
  request: {
    method: string;
    url: string;
    headers: Record<string, string | string[] | undefined>;
    rawBody: string;
  },
): boolean {
  const header = (name: string) => {
    const value = request.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const signature = header('x-messagemedia-signature');
  const date = header('date');
  const digest = DIGESTS[(header('x-messagemedia-digest-type') ?? 'SHA224').toUpperCase()];
  if (!signature || !date || !digest) return false;
  const cipher = header('x-messagemedia-cipher-type');
  if (cipher && cipher.toUpperCase() !== 'RSA') return false;
  const signed = `${request.method.toUpperCase()} ${request.url} HTTP/1.1${date}${request.rawBody}`;
  try {
    return verify(digest, Buffer.from(signed, 'utf8'), publicKey, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}
