import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { UserError } from '../../errors.js';
import { webhookUrl } from '../../providers/webhook-url.js';
import { createRedis } from '../../queues/queues.js';
import { readAccountPauses } from '../../sending/account-state.js';
import { readRateOverrides, setRateOverride } from '../../sending/rate-gate.js';

function positiveRate(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError('must be a positive number of messages per second');
  return n;
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
          const override = overrides[a.name];
          const rate =
            override === undefined
              ? `${a.rate} msg/s`
              : `${override} msg/s, set at run time; file says ${a.rate}`;
          console.log(`${a.name}  (${a.provider}, ${rate}, ${a.deliveryPolicy})`);
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
      "change an account's messages per second now, on every worker, without a restart " +
        '(--clear returns to the accounts file)',
    )
    .argument('<name>', 'account name')
    .argument('[rate]', 'messages per second', positiveRate)
    .option('--clear', "remove the override: the accounts file's rate applies again")
    .action(async (name: string, rate: number | undefined, opts: { clear?: boolean }) => {
      const config = loadConfig();
      const account = config.accounts.get(name); // unknown name → one line listing the accounts
      if ((rate === undefined) === !opts.clear)
        throw new UserError('VALIDATION_FAILED', 'set-rate: give either a rate or --clear');
      const redis = createRedis(config.redisUrl, config.redisClusterNodes);
      try {
        await setRateOverride(redis, config.queuePrefix, account.name, rate);
      } finally {
        redis.disconnect();
      }
      console.log(
        rate === undefined
          ? `${account.name}: back to ${account.rate} msg/s from the accounts file`
          : `${account.name}: ${rate} msg/s (accounts file: ${account.rate}); in force now`,
      );
    });
}
