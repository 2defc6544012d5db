import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { readSendErrorCounts } from '../../sending/send-error-counts.js';
import { ALL_STATUSES } from '../../messages/status.js';
import type { AppContext } from '../../runtime/context.js';
import { readAccountPauses } from '../../sending/account-state.js';

/** Statuses a message reaches once a send attempt has an outcome: what "sends" counts. */
const PROCESSED = [
  'SCHEDULED',
  'SENT',
  'DELIVERED',
  'FAILED',
  'EXPIRED',
  'REJECTED',
  'UNDELIVERABLE',
  'UNKNOWN',
];
const JOB_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed'] as const;

/** Runs `collect` once for all the metrics it feeds in one scrape: callers share a run in flight. */
function oncePerScrape(collect: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => {
    running ??= collect().finally(() => {
      running = undefined;
    });
    return running;
  };
}

/**
 * Prometheus metrics. The numbers come from Postgres and Redis at scrape time rather than from
 * counters in this process, because sending happens in worker processes (any number, anywhere):
 * every API process then reports the same cluster-wide truth. README.md "Metrics" lists them.
 */
export class HeraldMetrics {
  readonly registry = new Registry();
  /** Error answers of this API process by code; fed by the error handler. */
  readonly apiErrors: Counter<'code' | 'status'>;
  private lastProcessed: { value: number; at: number } | undefined;

  constructor(private readonly context: AppContext) {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry, prefix: 'herald_process_' });
    this.apiErrors = new Counter({
      name: 'herald_api_errors_total',
      help: 'Error answers of the HTTP API by stable error code and HTTP status',
      labelNames: ['code', 'status'],
      registers: [registry],
    });

    const queueJobs = new Gauge({
      name: 'herald_queue_jobs',
      help: "Jobs in each account's send queue by state (waiting = queue depth)",
      labelNames: ['account', 'state'],
      registers: [registry],
      collect: async () => {
        queueJobs.reset();
        for (const account of context.config.accounts.all()) {
          const counts = await context.queues.send(account.name).getJobCounts(...JOB_STATES);
          for (const state of JOB_STATES)
            queueJobs.set({ account: account.name, state }, counts[state] ?? 0);
        }
      },
    });

    // prom-client collects every metric at once: metrics fed by one query each await the same run.
    const collectMessages = oncePerScrape(async () => {
      const { rows } = await context.db.pool.query<{ status: string; count: string }>(
        'SELECT status, sum(count) AS count FROM campaign_counter GROUP BY status',
      );
      const byStatus = new Map(rows.map((r) => [r.status, Number(r.count)]));
      let total = 0;
      for (const status of ALL_STATUSES) {
        const count = byStatus.get(status) ?? 0;
        messages.set({ status }, count);
        if (PROCESSED.includes(status)) total += count;
      }
      processed.reset();
      processed.inc(total);
      const now = Date.now();
      const last = this.lastProcessed;
      sendRate.set(
        last && now > last.at ? Math.max(0, total - last.value) / ((now - last.at) / 1000) : 0,
      );
      this.lastProcessed = { value: total, at: now };
    });
    const messages = new Gauge({
      name: 'herald_messages',
      help: 'Messages of every campaign by status (failure statuses are the errors by class)',
      labelNames: ['status'],
      registers: [registry],
      collect: collectMessages,
    });
    // A counter computed from Postgres: it only grows (messages never leave a processed status),
    // so rate() gives sends per second across every worker.
    const processed = new Counter({
      name: 'herald_messages_processed_total',
      help: 'Messages whose send attempt has an outcome (sent, delivered or failed); rate() it',
      registers: [registry],
      collect: collectMessages,
    });
    const sendRate = new Gauge({
      name: 'herald_send_rate_per_second',
      help: 'Messages processed per second between the two latest scrapes of this process',
      registers: [registry],
      collect: collectMessages,
    });

    const collectReports = oncePerScrape(async () => {
      // delivery_event_unprocessed_idx (partial, processed_at IS NULL) keeps this cheap.
      const { rows } = await context.db.pool.query<{
        account: string;
        waiting: string;
        lag: number | null;
      }>(
        `SELECT account_name AS account, count(*) AS waiting,
                EXTRACT(EPOCH FROM now() - min(received_at))::float8 AS lag
         FROM delivery_event WHERE processed_at IS NULL GROUP BY account_name`,
      );
      reportsWaiting.reset();
      reportLag.reset();
      for (const account of context.config.accounts.all()) {
        reportsWaiting.set({ account: account.name }, 0);
        reportLag.set({ account: account.name }, 0);
      }
      for (const row of rows) {
        reportsWaiting.set({ account: row.account }, Number(row.waiting));
        reportLag.set({ account: row.account }, Math.max(0, row.lag ?? 0));
      }
    });
    const reportsWaiting = new Gauge({
      name: 'herald_delivery_reports_waiting',
      help: 'Delivery reports received but not yet folded into their messages, per account',
      labelNames: ['account'],
      registers: [registry],
      collect: collectReports,
    });
    const reportLag = new Gauge({
      name: 'herald_delivery_report_lag_seconds',
      help: 'Age of the oldest delivery report not yet folded, per account (0 when none waits)',
      labelNames: ['account'],
      registers: [registry],
      collect: collectReports,
    });

    const sendErrors = new Gauge({
      name: 'herald_send_errors_total',
      help: 'Failed provider requests by account and class: permanent, rate-limited, retryable, ambiguous, account (counted by every worker process)',
      labelNames: ['account', 'class'],
      registers: [registry],
      collect: async () => {
        for (const { account, kind, count } of await readSendErrorCounts(
          context.redis,
          context.config.queuePrefix,
        )) {
          sendErrors.set({ account, class: kind }, count);
        }
      },
    });

    const paused = new Gauge({
      name: 'herald_account_paused',
      help: 'Whether sending on the account is paused after the provider refused the account (1) or not (0)',
      labelNames: ['account'],
      registers: [registry],
      collect: async () => {
        const pauses = await readAccountPauses(
          context.redis,
          context.config.queuePrefix,
          context.clock.now(),
        );
        for (const account of context.config.accounts.all())
          paused.set({ account: account.name }, pauses[account.name] ? 1 : 0);
      },
    });
  }
}

/**
 * GET /metrics in the Prometheus text format. Unauthenticated like /healthz, so a scraper needs
 * no API key: it shows counts and account names only, never phone numbers, texts or secrets.
 * Expose it on the internal network only (README.md "Metrics").
 */
export async function metricsRoutes(app: FastifyInstance, { metrics }: { metrics: HeraldMetrics }) {
  app.get(
    '/metrics',
    {
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics (text format, no API key)',
        security: [],
        response: {
          200: {
            description: 'Prometheus text format',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
        },
      },
    },
    async (_request, reply) => {
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );
}
