import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../runtime/context.js';

const tags = ['operations'];

export async function healthRoutes(app: FastifyInstance, { context }: { context: AppContext }) {
  /** The process is up. */
  app.get(
    '/healthz',
    {
      schema: {
        tags,
        summary: 'The process is up (no API key)',
        security: [],
        response: {
          200: { type: 'object', properties: { status: { type: 'string', enum: ['ok'] } } },
        },
      },
    },
    async () => ({ status: 'ok' }),
  );

  const readiness = {
    type: 'object',
    properties: {
      status: { type: 'string', enum: ['ready', 'not ready'] },
      postgres: { type: 'string', description: '"ok" or the error' },
      redis: { type: 'string', description: '"ok" or the error' },
    },
  } as const;

  /** Postgres and Redis answer: ready for traffic. */
  app.get(
    '/readyz',
    {
      schema: {
        tags,
        summary: 'Postgres and Redis answer (no API key); 503 when either does not',
        security: [],
        response: { 200: readiness, 503: readiness },
      },
    },
    async (_request, reply) => {
      const [postgres, redis] = await Promise.all([
        context.db.pool.query('SELECT 1').then(
          () => 'ok',
          (e: Error) => e.message,
        ),
        context.redis.ping().then(
          () => 'ok',
          (e: Error) => e.message,
        ),
      ]);
      const ready = postgres === 'ok' && redis === 'ok';
      return reply
        .status(ready ? 200 : 503)
        .send({ status: ready ? 'ready' : 'not ready', postgres, redis });
    },
  );
}
