import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorBody } from './error-handler.js';

/** Bearer API keys from HERALD_API_KEYS. Webhooks are authenticated separately (signed URL token). */
export function apiKeyAuth(keys: string[]) {
  const accepted = keys.map((k) => Buffer.from(k));
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    const given = match ? Buffer.from(match[1]!.trim()) : undefined;
    const ok =
      given !== undefined &&
      accepted.some((k) => k.length === given.length && timingSafeEqual(k, given));
    if (!ok) {
      return reply
        .status(401)
        .header('www-authenticate', 'Bearer')
        .send(
          errorBody('UNAUTHORIZED', 'missing or unknown API key: send Authorization: Bearer <key>'),
        );
    }
  };
}
