import type { FastifyInstance } from 'fastify';
import { Readable } from 'node:stream';
import { recipientsCsv } from '../../campaigns/recipients-csv.js';
import type { AppContext } from '../../runtime/context.js';
import { apiKeyAuth } from '../api-auth.js';

/**
 * Report routes under /v1 (Bearer API keys): the per-recipient CSV export and the delivery-report
 * pipeline's own numbers. Campaign stats and the JSON report are in campaigns.ts.
 */
export async function reportRoutes(app: FastifyInstance, { context }: { context: AppContext }) {
  app.addHook('onRequest', apiKeyAuth(context.config.apiKeys));

  /** One row per recipient, streamed page by page (see recipients-csv.ts); any size. */
  app.get<{ Params: { id: string } }>('/campaigns/:id/recipients.csv', async (request, reply) => {
    const chunks = await recipientsCsv(context, request.params.id);
    return reply
      .header('content-type', 'text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="campaign-${request.params.id}.csv"`)
      .send(Readable.from(chunks));
  });

  /**
   * Delivery reports per account: waiting to be folded or matched, folded, and expired unmatched
   * (reports for messages Herald never matched within HERALD_UNMATCHED_REPORT_TTL_MS). For
   * dashboards and alerts: a growing `waiting` means the folder is behind or the reports match
   * nothing; `expiredUnmatched` should stay near zero.
   */
  app.get('/delivery-reports/stats', async () => {
    const { rows } = await context.db.pool.query<{
      account: string;
      waiting: string;
      applied: string;
      stale: string;
      expired: string;
      oldest_waiting: Date | null;
    }>(
      `SELECT account_name AS account,
              count(*) FILTER (WHERE processed_at IS NULL) AS waiting,
              count(*) FILTER (WHERE outcome = 'APPLIED') AS applied,
              count(*) FILTER (WHERE outcome = 'STALE') AS stale,
              count(*) FILTER (WHERE outcome = 'EXPIRED_UNMATCHED') AS expired,
              min(received_at) FILTER (WHERE processed_at IS NULL) AS oldest_waiting
       FROM delivery_event GROUP BY account_name ORDER BY account_name`,
    );
    return {
      accounts: rows.map((r) => ({
        account: r.account,
        waiting: Number(r.waiting),
        applied: Number(r.applied),
        stale: Number(r.stale),
        expiredUnmatched: Number(r.expired),
        oldestWaitingSince: r.oldest_waiting,
      })),
    };
  });
}
