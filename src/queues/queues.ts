import { Queue, type ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';

/** Names of Herald's BullMQ queues. One send queue per provider account: its limiter is that account's rate. */
export const CONTROL_QUEUE = 'control';
export const sendQueueName = (accountName: string): string => `send-${accountName}`;

/**
 * A Redis connection for BullMQ. `maxRetriesPerRequest: null` lets blocking worker commands wait
 * out a Redis restart instead of failing jobs; BullMQ duplicates it for each worker's blocking client.
 */
export function createRedis(url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
  // Connection errors are retried by ioredis; without a listener each one would crash the process.
  redis.on('error', () => {});
  return redis;
}

/** The queues a process adds jobs to, created once and shared. */
export class Queues {
  readonly control: Queue;
  private readonly sendQueues = new Map<string, Queue>();

  constructor(
    private readonly connection: ConnectionOptions,
    readonly prefix: string,
  ) {
    this.control = new Queue(CONTROL_QUEUE, { connection, prefix });
  }

  send(accountName: string): Queue {
    let queue = this.sendQueues.get(accountName);
    if (!queue) {
      queue = new Queue(sendQueueName(accountName), {
        connection: this.connection,
        prefix: this.prefix,
      });
      this.sendQueues.set(accountName, queue);
    }
    return queue;
  }

  async close(): Promise<void> {
    await Promise.all([
      this.control.close(),
      ...[...this.sendQueues.values()].map((q) => q.close()),
    ]);
  }
}
