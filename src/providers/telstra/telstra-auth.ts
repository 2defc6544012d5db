import { z } from 'zod';
import { AccountError, ProviderError, RateLimitedError, RetryableSendError } from '../errors.js';
import { ProviderHttpClient, retryAfterMs } from '../http-client.js';
import type { Logger } from '../../logger.js';

/** Telstra documents `expires_in` as a string of seconds (v2); accept a number too. */
const tokenResponseSchema = z.object({
  access_token: z.string().min(1),
  expires_in: z.union([z.string().regex(/^\d+$/), z.number().int().nonnegative()]).optional(),
});

/** Tokens last an hour (T2210); when the answer does not say, assume that. */
const DEFAULT_LIFETIME_S = 3600;
/** Renew this long before the token expires, so no request goes out with a dying token. */
const RENEW_EARLY_S = 60;

/**
 * OAuth2 client-credentials tokens for one Telstra account: fetched on first use, cached, and
 * renewed `RENEW_EARLY_S` before expiry. Concurrent callers share one token request. The token
 * itself is never logged.
 *
 * Every failure here is thrown as a ProviderError that says "nothing was sent": a token request
 * carries no SMS, so even a transport failure after writing it is retryable, not ambiguous.
 */
export class TelstraTokens {
  private readonly http: ProviderHttpClient;
  private current: { value: string; renewAt: number } | undefined;
  private pending: Promise<string> | undefined;

  constructor(
    private readonly options: {
      tokenUrl: string;
      clientId: string;
      clientSecret: string;
      scope: string;
      logger: Logger;
      now?: () => number;
    },
  ) {
    // The token endpoint is on its own origin/path; the client's base path is the whole URL.
    this.http = new ProviderHttpClient({ baseUrl: options.tokenUrl, concurrency: 2 });
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** A valid token, fetching a new one when there is none or it is about to expire. */
  async get(): Promise<string> {
    if (this.current && this.now() < this.current.renewAt) return this.current.value;
    this.pending ??= this.fetch().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  /** Forgets `token` after the API refused it (401), so the next get() fetches a new one. */
  invalidate(token: string): void {
    if (this.current?.value === token) this.current = undefined;
  }

  private async fetch(): Promise<string> {
    const form = new URLSearchParams({
      client_id: this.options.clientId,
      client_secret: this.options.clientSecret,
      grant_type: 'client_credentials',
      scope: this.options.scope,
    });
    let response;
    try {
      response = await this.http.request({
        method: 'POST',
        path: '',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: form.toString(),
      });
    } catch (error) {
      const code = error instanceof ProviderError ? error.code : 'UNKNOWN';
      throw new RetryableSendError(
        `TOKEN_${code}`,
        `could not get a Telstra access token (${code})`,
        { cause: error },
      );
    }
    if (response.status === 400 || response.status === 401) {
      // 401: bad client id/secret; 400: bad grant (T2210). Both need the operator.
      throw new AccountError(
        response.status === 401 ? 'TOKEN_UNAUTHORIZED' : 'TOKEN_BAD_REQUEST',
        `Telstra refused the client credentials (HTTP ${response.status})`,
      );
    }
    if (response.status === 429) {
      throw new RateLimitedError(
        'TOKEN_TOO_MANY_REQUESTS',
        'Telstra token endpoint asked us to slow down',
        retryAfterMs(response.headers) ?? 5_000,
      );
    }
    if (response.status !== 200) {
      throw new RetryableSendError(
        `TOKEN_HTTP_${response.status}`,
        `Telstra token endpoint answered ${response.status}`,
      );
    }
    const parsed = tokenResponseSchema.safeParse(response.json());
    if (!parsed.success) {
      throw new RetryableSendError('TOKEN_BAD_RESPONSE', 'unreadable Telstra token response');
    }
    const lifetime =
      parsed.data.expires_in === undefined ? DEFAULT_LIFETIME_S : Number(parsed.data.expires_in);
    // Renew a minute early, or half-way through a token that lives less than two minutes.
    const margin = Math.min(RENEW_EARLY_S, lifetime / 2);
    this.current = {
      value: parsed.data.access_token,
      renewAt: this.now() + (lifetime - margin) * 1000,
    };
    this.options.logger.debug({ expiresInS: lifetime }, 'telstra access token obtained');
    return this.current.value;
  }

  close(): Promise<void> {
    return this.http.close();
  }
}
