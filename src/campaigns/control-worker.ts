import { Worker } from 'bullmq';
import { CONTROL_QUEUE } from '../queues/queues.js';
import { jobs } from '../queues/jobs.js';
import type { AppContext } from '../runtime/context.js';
import { processPlanJob } from './planner.js';
import { sweep } from './sweeper.js';

/**
 * Works the control queue: planning campaigns and the periodic sweep. The sweep is a BullMQ job
 * scheduler, so it runs once per interval however many processes run this worker.
 */
export async function startControlWorker(context: AppContext): Promise<Worker> {
  await context.queues.control.upsertJobScheduler(
    'sweep',
    { every: context.config.sweepIntervalMs },
    { name: jobs.sweep.name, data: {}, opts: jobs.sweep.options },
  );
  const worker = new Worker(
    CONTROL_QUEUE,
    async (job) => {
      if (job.name === jobs.planCampaign.name) return processPlanJob(context, job);
      if (job.name === jobs.sweep.name) return sweep(context);
      throw new Error(`unknown control job ${job.name}`);
    },
    { connection: context.redis, prefix: context.config.queuePrefix, concurrency: 4 },
  );
  worker.on('failed', (job, error) =>
    context.logger.warn({ job: job?.name, err: error }, 'control job failed'),
  );
  worker.on('error', (error) => context.logger.error({ err: error }, 'control worker error'));
  return worker;
}
