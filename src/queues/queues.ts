import { Queue, type ConnectionOptions } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { sendJobOf } from './jobs.js';

/** Names of Herald's BullMQ queues. One send queue per provider account: its limiter is that account's rate. */
export const CONTROL_QUEUE = 'control';
export const sendQueueName = (accountName: string): string => `send-${accountName}`;

/** A single Redis or a Redis Cluster: every Herald key works on both (see HERALD_QUEUE_PREFIX). */
export type RedisClient = Redis | Cluster;

/**
 * A Redis connection for BullMQ. `maxRetriesPerRequest: null` lets blocking worker commands wait
 * out a Redis restart instead of failing jobs; BullMQ duplicates it for each worker's blocking client.
 *
 * With `clusterNodes` (REDIS_CLUSTER_NODES: a few `host:port` seeds, as ioredis's `Redis.Cluster`
 * takes them; it discovers the rest) the client is a Cluster client. The URL's user, password and
 * `rediss:` scheme still apply to every node.
 */
export function createRedis(url: string, clusterNodes: readonly string[] = []): RedisClient {
  let redis: RedisClient;
  if (clusterNodes.length > 0) {
    const parsed = new URL(url);
    redis = new Cluster(
      clusterNodes.map((node) => {
        const [host, port] = splitHostPort(node);
        return { host, port };
      }),
      {
        redisOptions: {
          maxRetriesPerRequest: null,
          username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
          password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
          tls: parsed.protocol === 'rediss:' ? {} : undefined,
        },
        // BullMQ's scripts touch several keys of one queue; the hash-tag prefix keeps them in one
        // slot, and a slot that moves is followed by the client.
        enableReadyCheck: true,
      },
    );
  } else {
    redis = new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
  }
  // Connection errors are retried by ioredis; without a listener each one would crash the process.
  redis.on('error', () => {});
  return redis;
}

function splitHostPort(node: string): [string, number] {
  const bare = node.replace(/^rediss?:\/\//, '');
  const at = bare.lastIndexOf(':');
  if (at < 0) return [bare, 6379];
  return [bare.slice(0, at).replace(/^\[|\]$/g, ''), Number(bare.slice(at + 1))];
}

/**
 * A queue's connection errors (Redis restarting) are retried by ioredis, and each command that
 * fails reports itself to its caller; without a listener BullMQ would print every retry.
 */
function quiet(queue: Queue): Queue {
  queue.on('error', () => {});
  return queue;
}

/** The queues a process adds jobs to, created once and shared. */
export class Queues {
  readonly control: Queue;
  private readonly sendQueues = new Map<string, Queue>();

  constructor(
    private readonly connection: ConnectionOptions,
    readonly prefix: string,
  ) {
    this.control = quiet(new Queue(CONTROL_QUEUE, { connection, prefix }));
  }

  send(accountName: string): Queue {
    let queue = this.sendQueues.get(accountName);
    if (!queue) {
      queue = quiet(
        new Queue(sendQueueName(accountName), { connection: this.connection, prefix: this.prefix }),
      );
      this.sendQueues.set(accountName, queue);
    }
    return queue;
  }

  /**
   * Adds send jobs to the queue of the account each message is routed to (its campaign's account,
   * or the fallback's: see message.route_account), one addBulk per account.
   */
  async addSends(
    sends: ReadonlyArray<{
      account: string;
      messageId: string;
      campaignId: string;
      delayMs?: number;
    }>,
  ): Promise<void> {
    const byAccount = new Map<string, ReturnType<typeof sendJobOf>[]>();
    for (const send of sends) {
      const list = byAccount.get(send.account) ?? [];
      list.push(sendJobOf(send.messageId, send.campaignId, send.delayMs));
      byAccount.set(send.account, list);
    }
    for (const [account, list] of byAccount) await this.send(account).addBulk(list);
  }

  async close(): Promise<void> {
    await Promise.all([
      this.control.close(),
      ...[...this.sendQueues.values()].map((q) => q.close()),
    ]);
  }
}
