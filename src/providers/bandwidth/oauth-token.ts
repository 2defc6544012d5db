import { z } from 'zod';
import {
  AccountError,
  AmbiguousSendError,
  ProviderError,
  RateLimitedError,
  RetryableSendError,
} from '../errors.js';
import { ProviderHttpClient, retryAfterMs } from '../http-client.js';
import { basicAuthorization } from '../basic-auth.js';

/** Renew this long before the token's stated expiry (as Bandwidth's SDKs do). */
export const RENEW_BEFORE_MS = 60_000;

const tokenResponseSchema = z.object({
  access_token: z.string().min(1),
  // A number of seconds; accepted as a numeric string too.
  expires_in: z.coerce.number().positive(),
});

/**
 * OAuth2 client-credentials tokens for Bandwidth (`POST {tokenUrl}` with Basic
 * `clientId:clientSecret`, form `grant_type=client_credentials`). One token is cached and shared
 * by every request; concurrent callers wait on the same renewal.
 */
export class OAuthTokenSource {
  private readonly http: ProviderHttpClient;
  private readonly path: string;
  private token: { value: string; renewAt: number } | undefined;
  private pending: Promise<string> | undefined;

  constructor(
    tokenUrl: string,
    private readonly clientId: string,
    private readonly clientSecret: string,
    private readonly now: () => number = Date.now,
  ) {
    const url = new URL(tokenUrl);
    this.http = new ProviderHttpClient({ baseUrl: url.origin, concurrency: 2 });
    this.path = url.pathname + url.search;
  }

  /** A valid token: the cached one, or a new one when it is within a minute of expiring. */
  get(): Promise<string> {
    if (this.token && this.now() < this.token.renewAt) return Promise.resolve(this.token.value);
    this.pending ??= this.fetch().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  /** Drops `used` (the provider refused it) so the next get() fetches a new one. */
  invalidate(used: string): void {
    if (this.token?.value === used) this.token = undefined;
  }

  close(): Promise<void> {
    return this.http.close();
  }

  private async fetch(): Promise<string> {
    let response;
    try {
      response = await this.http.request({
        method: 'POST',
        path: this.path,
        headers: {
          authorization: basicAuthorization(this.clientId, this.clientSecret),
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: 'grant_type=client_credentials',
      });
    } catch (error) {
      // No message was sent whatever happened to the token request: always safe to retry.
      if (error instanceof AmbiguousSendError) {
        throw new RetryableSendError(error.code, `OAuth token request failed: ${error.message}`, {
          cause: error,
        });
      }
      throw error;
    }
    if (response.status === 200) {
      const parsed = tokenResponseSchema.safeParse(response.json());
      if (!parsed.success) {
        throw new RetryableSendError(
          'OAUTH_BAD_RESPONSE',
          'unreadable OAuth token response from Bandwidth',
        );
      }
      const lifetimeMs = parsed.data.expires_in * 1000;
      this.token = {
        value: parsed.data.access_token,
        renewAt: this.now() + lifetimeMs - RENEW_BEFORE_MS,
      };
      return parsed.data.access_token;
    }
    throw tokenFailure(response.status, response.json(), response.headers);
  }
}

function tokenFailure(
  status: number,
  body: unknown,
  headers: Record<string, string | string[] | undefined>,
): ProviderError {
  const error = (body as { error?: unknown } | undefined)?.error;
  const code = typeof error === 'string' ? error : `OAUTH_HTTP_${status}`;
  const message = `Bandwidth refused the OAuth token request (${status} ${code})`;
  if (status === 429) return new RateLimitedError(code, message, retryAfterMs(headers) ?? 5_000);
  if (status >= 500) return new RetryableSendError(code, message);
  // 400 invalid_client / 401 / 403: the client id or secret is wrong or disabled.
  return new AccountError(code, message);
}
