import { createHash, timingSafeEqual } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { UserError } from '../errors.js';
import type { RedisClient } from '../queues/queues.js';
import { errorBody } from './error-handler.js';

/** The key a request presents: `Authorization: Bearer <key>`, or Basic with the key as password. */
function presentedKey(request: FastifyRequest, allowBasic: boolean): string | undefined {
  const header = request.headers.authorization ?? '';
  const bearer = /^Bearer\s+(.+)$/i.exec(header);
  if (bearer) return bearer[1]!.trim();
  const basic = allowBasic ? /^Basic\s+(.+)$/i.exec(header) : null;
  if (basic) {
    const decoded = Buffer.from(basic[1]!.trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? decoded.slice(colon + 1) : undefined;
  }
  return undefined;
}

function keyMatcher(keys: string[]) {
  const accepted = keys.map((k) => Buffer.from(k));
  return (key: string | undefined) => {
    if (key === undefined) return false;
    const given = Buffer.from(key);
    return accepted.some((k) => k.length === given.length && timingSafeEqual(k, given));
  };
}

/**
 * Bearer API keys from HERALD_API_KEYS. Webhooks are authenticated separately (signed URL token).
 * `allowBasic` also takes HTTP Basic with the key as the password (any user name), for pages a
 * browser navigates to (Bull Board), where a script cannot add a Bearer header.
 */
export function apiKeyAuth(keys: string[], options: { allowBasic?: boolean } = {}) {
  const matches = keyMatcher(keys);
  const allowBasic = options.allowBasic ?? false;
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (matches(presentedKey(request, allowBasic))) return;
    return reply
      .status(401)
      .header('www-authenticate', allowBasic ? 'Basic realm="herald", charset="UTF-8"' : 'Bearer')
      .send(
        errorBody('UNAUTHORIZED', 'missing or unknown API key: send Authorization: Bearer <key>'),
      );
  };
}

/**
 * Rate limit per API key (HERALD_API_RATE_LIMIT requests a minute) on the API routes, counted in
 * Redis so that every API process shares one budget per key. Requests without a known key count
 * against their IP, so guessing keys cannot mint fresh budgets. Webhooks, health, metrics, the
 * docs and the dashboard's static files are not limited: providers post reports in bursts.
 */
export async function registerRateLimit(
  app: FastifyInstance,
  options: { keys: string[]; perMinute: number; redis: RedisClient; prefix: string },
): Promise<void> {
  const matches = keyMatcher(options.keys);
  await app.register(rateLimit, {
    global: true,
    max: options.perMinute,
    timeWindow: 60_000,
    redis: options.redis,
    nameSpace: `${options.prefix}:api-rate:`,
    // A Redis outage must not take the API down with it; readiness reports Redis anyway.
    skipOnError: true,
    allowList: (request) => !/^\/(v1|admin)\//.test(request.url),
    keyGenerator: (request) => {
      const key = presentedKey(request, true);
      // Hashed: the key itself never reaches Redis.
      return matches(key)
        ? `key:${createHash('sha256').update(key!).digest('hex').slice(0, 32)}`
        : `ip:${request.ip}`;
    },
    errorResponseBuilder: (_request, context) =>
      new UserError(
        'RATE_LIMITED',
        `rate limit of ${context.max} requests a minute reached; retry in ${context.after}`,
        429,
        { limit: context.max, retryAfterSeconds: Math.ceil(context.ttl / 1000) },
      ),
  });
}
