import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../runtime/context.js';
import { apiKeyAuth } from '../api-auth.js';

export const BULL_BOARD_PATH = '/admin/queues';

/**
 * Bull Board for operators at /admin/queues: the control queue and every account's send queue.
 * It can retry and remove jobs, so it sits behind the API keys; a browser navigating to it cannot
 * add a Bearer header, so it also takes HTTP Basic with the key as the password.
 */
export async function bullBoardRoutes(app: FastifyInstance, { context }: { context: AppContext }) {
  app.addHook('onRequest', apiKeyAuth(context.config.apiKeys, { allowBasic: true }));
  // Bull Board's page links Google Fonts; Herald's machines may be offline and the page must not
  // call out, so the link is dropped (the page falls back to the system font).
  app.addHook('onSend', async (_request, reply, payload) => {
    const type = String(reply.getHeader('content-type') ?? '');
    if (typeof payload !== 'string' || !type.startsWith('text/html')) return payload;
    return payload.replace(/<link[^>]+fonts\.(googleapis|gstatic)\.com[^>]*>/g, '');
  });
  const serverAdapter = new FastifyAdapter();
  createBullBoard({
    queues: [
      new BullMQAdapter(context.queues.control),
      ...context.config.accounts.all().map((a) => new BullMQAdapter(context.queues.send(a.name))),
    ],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Herald queues' } },
  });
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  await app.register(serverAdapter.registerPlugin(), { prefix: BULL_BOARD_PATH });
}
