import { Worker } from 'bullmq';
import { CONTROL_QUEUE } from '../queues/queues.js';
import { jobs } from '../queues/jobs.js';
import type { AppContext } from '../runtime/context.js';
import { pollSentMessages } from '../polling/poll-reports.js';
import { cancelAtProvider } from './cancel-at-provider.js';
import { processPlanJob } from './planner.js';
import { checkRedisMarker, sweep } from './sweeper.js';

/**
 * Works the control queue: planning campaigns and the periodic sweep. The sweep is a BullMQ job
 * scheduler, so it runs once per interval however many processes run this worker.
 */
export async function startControlWorker(context: AppContext): Promise<Worker> {
  // Job schedulers live in Redis: they are created here and again whenever Redis lost its data.
  const upsertSchedulers = async () => {
    await context.queues.control.upsertJobScheduler(
      'sweep',
      { every: context.config.sweepIntervalMs },
      { name: jobs.sweep.name, data: {}, opts: jobs.sweep.options },
    );
    await context.queues.control.upsertJobScheduler(
      'poll-reports',
      { every: context.config.pollIntervalMs },
      { name: jobs.pollReports.name, data: {}, opts: jobs.pollReports.options },
    );
  };
  await upsertSchedulers();
  const worker = new Worker(
    CONTROL_QUEUE,
    async (job) => {
      if (job.name === jobs.planCampaign.name) return processPlanJob(context, job);
      if (job.name === jobs.sweep.name) return sweep(context);
      if (job.name === jobs.pollReports.name) return pollSentMessages(context);
      if (job.name === jobs.cancelScheduled.name)
        return cancelAtProvider(context, jobs.cancelScheduled.schema.parse(job.data).campaignId);
      throw new Error(`unknown control job ${job.name}`);
    },
    { connection: context.redis, prefix: context.config.queuePrefix, concurrency: 4 },
  );
  worker.on('failed', (job, error) =>
    context.logger.warn({ job: job?.name, err: error }, 'control job failed'),
  );
  worker.on('error', (error) => context.logger.error({ err: error }, 'control worker error'));
  // Not a scheduled job: it must notice that the schedulers themselves are gone (see sweeper.ts).
  const watchRedis = async () => {
    try {
      await checkRedisMarker(context, upsertSchedulers);
    } catch (error) {
      context.logger.warn({ err: error }, 'could not check Redis for lost data; will retry');
    }
  };
  await watchRedis();
  const watch = setInterval(() => void watchRedis(), context.config.sweepIntervalMs);
  watch.unref();
  const close = worker.close.bind(worker);
  worker.close = (force?: boolean) => {
    clearInterval(watch);
    return close(force);
  };
  return worker;
}
