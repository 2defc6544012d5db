import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { UserError } from '../../errors.js';
import { webhookUrl } from '../../providers/webhook-url.js';
import { createRedis } from '../../queues/queues.js';
import { readAccountPauses } from '../../sending/account-state.js';
import { readRateOverrides, segmentGateKey, setRateOverride } from '../../sending/rate-gate.js';

function positiveRate(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError('must be a positive number of messages per second');
  return n;
}

function positiveSegmentRate(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError('must be a positive number of segments per second');
  return n;
}

/** "50 msg/s", or the override with the file's value beside it. */
function describeRate(configured: number, override: number | undefined, unit: string): string {
  return override === undefined
    ? `${configured} ${unit}`
    : `${override} ${unit}, set at run time; file says ${configured}`;
}

/** `herald accounts` (list) and `herald accounts set-rate NAME N|--clear`. */
export function registerAccountsCommands(program: Command): void {
  const accounts = program
    .command('accounts')
    .description('list the configured provider accounts (never their secrets)')
    .action(async () => {
      const config = loadConfig();
      const redis = createRedis(config.redisUrl, config.redisClusterNodes);
      try {
        const pauses = await readAccountPauses(redis, config.queuePrefix, new Date());
        const overrides = await readRateOverrides(redis, config.queuePrefix);
        for (const a of config.accounts.describe()) {
          const rates = [describeRate(a.rate, overrides[a.name], 'msg/s')];
          if (a.segmentRate !== undefined)
            rates.push(
              describeRate(a.segmentRate, overrides[segmentGateKey(a.name)], 'segments/s'),
            );
          console.log(`${a.name}  (${a.provider}, ${rates.join(', ')}, ${a.deliveryPolicy})`);
          console.log(`  provider API  ${a.baseUrl}`);
          // Where to point the provider's callbacks (needed for providers configured per application).
          if (config.webhookSecret)
            console.log(
              `  webhook URL   ${webhookUrl(config.publicUrl, config.webhookSecret, a.name)}`,
            );
          const pause = pauses[a.name];
          if (pause) console.log(`  PAUSED until ${pause.until}: ${pause.code} ${pause.message}`);
        }
      } finally {
        redis.disconnect();
      }
    });

  accounts
    .command('set-rate')
    .description(
      "change an account's messages per second (and, with --segments, its segments per second) " +
        'now, on every worker, without a restart (--clear returns both to the accounts file)',
    )
    .argument('<name>', 'account name')
    .argument('[rate]', 'messages per second', positiveRate)
    .option(
      '--segments <n>',
      'segments per second (accounts with a segmentRate in the file)',
      positiveSegmentRate,
    )
    .option('--clear', "remove the overrides: the accounts file's rates apply again")
    .action(
      async (
        name: string,
        rate: number | undefined,
        opts: { segments?: number; clear?: boolean },
      ) => {
        const config = loadConfig();
        const account = config.accounts.get(name); // unknown name → one line listing the accounts
        const setting = rate !== undefined || opts.segments !== undefined;
        if (setting === Boolean(opts.clear))
          throw new UserError(
            'VALIDATION_FAILED',
            'set-rate: give a rate, --segments N, or both; or --clear alone',
          );
        // Only accounts with a segment rate in the file have a segment gate to override.
        if (opts.segments !== undefined && account.segmentRate === undefined)
          throw new UserError(
            'VALIDATION_FAILED',
            `set-rate: account ${account.name} has no segmentRate in the accounts file, so its sends are not limited by segments; add one there first`,
          );
        const redis = createRedis(config.redisUrl, config.redisClusterNodes);
        try {
          const { queuePrefix } = config;
          if (opts.clear) {
            await setRateOverride(redis, queuePrefix, account.name, undefined);
            await setRateOverride(redis, queuePrefix, segmentGateKey(account.name), undefined);
          }
          if (rate !== undefined) await setRateOverride(redis, queuePrefix, account.name, rate);
          if (opts.segments !== undefined)
            await setRateOverride(redis, queuePrefix, segmentGateKey(account.name), opts.segments);
        } finally {
          redis.disconnect();
        }
        if (opts.clear) {
          const segments =
            account.segmentRate === undefined ? '' : ` and ${account.segmentRate} segments/s`;
          console.log(
            `${account.name}: back to ${account.rate} msg/s${segments} from the accounts file`,
          );
          return;
        }
        if (rate !== undefined)
          console.log(
            `${account.name}: ${rate} msg/s (accounts file: ${account.rate}); in force now`,
          );
        if (opts.segments !== undefined)
          console.log(
            `${account.name}: ${opts.segments} segments/s (accounts file: ${account.segmentRate}); in force now`,
          );
      },
    );
}
