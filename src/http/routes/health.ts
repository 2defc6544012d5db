import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../runtime/context.js';

export async function healthRoutes(app: FastifyInstance, { context }: { context: AppContext }) {
  /** The process is up. */
  app.get('/healthz', async () => ({ status: 'ok' }));

  /** Postgres and Redis answer: ready for traffic. */
  app.get('/readyz', async (_request, reply) => {
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
  });
}
