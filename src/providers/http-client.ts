import Bottleneck from 'bottleneck';
import { Pool, type Dispatcher } from 'undici';
import { AmbiguousSendError, RetryableSendError } from './errors.js';

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body as JSON, or undefined when it is not JSON. */
  json(): unknown;
}

export interface HttpRequest {
  method: Dispatcher.HttpMethod;
  /** Path below the base URL, with query. */
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

// Failures that happen before a request is written: the provider cannot have acted on it.
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * Outbound HTTP for one provider account: a keep-alive connection pool, and a Bottleneck that
 * bounds this process's requests in flight to the account's concurrency. (The cluster-wide rate
 * is the BullMQ limiter of the account's send queue, not this.)
 *
 * Transport failures are classified here once for every adapter: not connected → retryable;
 * anything after the request may have been written → ambiguous.
 */
export class ProviderHttpClient {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly limiter: Bottleneck;

  constructor(options: {
    baseUrl: string;
    concurrency: number;
    /** @defaultValue 15000 */
    timeoutMs?: number;
  }) {
    const url = new URL(options.baseUrl);
    const timeout = options.timeoutMs ?? 15_000;
    this.pool = new Pool(url.origin, {
      connections: options.concurrency,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connectTimeout: Math.min(timeout, 10_000),
      // Close idle sockets before a typical server does, so a POST is not written into a socket
      // the server is closing (which would make an ordinary send look ambiguous).
      keepAliveTimeout: 4_000,
    });
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.limiter = new Bottleneck({ maxConcurrent: options.concurrency });
  }

  request(request: HttpRequest): Promise<HttpResponse> {
    return this.limiter.schedule(() => this.send(request));
  }

  private async send(request: HttpRequest): Promise<HttpResponse> {
    let response: Dispatcher.ResponseData;
    try {
      response = await this.pool.request({
        method: request.method,
        path: this.basePath + request.path,
        headers: request.headers,
        body: request.body,
      });
    } catch (error) {
      throw classifyTransportError(error);
    }
    let text: string;
    try {
      text = await response.body.text();
    } catch (error) {
      // The provider answered with a status but the body broke off: it has acted on the request.
      throw new AmbiguousSendError('RESPONSE_INTERRUPTED', 'response body broke off', {
        cause: error,
      });
    }
    return {
      status: response.statusCode,
      headers: response.headers,
      text,
      json() {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          return undefined;
        }
      },
    };
  }

  async close(): Promise<void> {
    await this.limiter.stop({ dropWaitingJobs: false });
    await this.pool.close();
  }
}

function classifyTransportError(error: unknown): Error {
  const code = (error as { code?: string }).code ?? 'UNKNOWN';
  if (NOT_SENT_CODES.has(code)) {
    return new RetryableSendError(code, `could not connect to the provider (${code})`, {
      cause: error,
    });
  }
  return new AmbiguousSendError(code, `no answer from the provider after sending (${code})`, {
    cause: error,
  });
}

/** Milliseconds from a Retry-After header (seconds or an HTTP date), if present. */
export function retryAfterMs(
  headers: HttpResponse['headers'],
  now = Date.now(),
): number | undefined {
  const raw = headers['retry-after'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
