import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { exportSuppressions, importSuppressions } from '../../suppressions/suppression-csv.js';
import {
  addSuppressions,
  parseSuppressionPhone,
  removeSuppression,
} from '../../suppressions/suppressions.js';
import { UserError } from '../../errors.js';
import { openFile, withContext } from '../with-context.js';

export function registerSuppressionCommands(program: Command): void {
  const suppression = program
    .command('suppression')
    .description('the opt-out list: numbers Herald never sends to');

  suppression
    .command('add <phone>')
    .description('add a number (national numbers are read in --region)')
    .option('--reason <text>', 'why', 'manual')
    .option('--region <code>', 'region for national-format numbers', 'AU')
    .action(async (raw: string, opts: { reason: string; region: string }) => {
      await withContext(async (context) => {
        const phone = parseSuppressionPhone(raw, opts.region);
        const added = await addSuppressions(context, [{ phone, reason: opts.reason }]);
        console.log(added ? `Added ${phone}` : `${phone} was already on the list`);
      });
    });

  suppression
    .command('remove <phone>')
    .description('remove a number')
    .option('--region <code>', 'region for national-format numbers', 'AU')
    .action(async (raw: string, opts: { region: string }) => {
      await withContext(async (context) => {
        const phone = parseSuppressionPhone(raw, opts.region);
        if (!(await removeSuppression(context, phone))) {
          throw new UserError('SUPPRESSION_NOT_FOUND', `${phone} is not on the suppression list`);
        }
        console.log(`Removed ${phone}`);
      });
    });

  suppression
    .command('import <file>')
    .description('add every number of a CSV (a phone column, and optionally a reason column)')
    .option('--region <code>', 'region for national-format numbers', 'AU')
    .action(async (file: string, opts: { region: string }) => {
      await withContext(async (context) => {
        const report = await importSuppressions(context, await openFile(file), {
          region: opts.region,
        });
        console.log(
          `Read ${report.rows} rows: ${report.added} added, ${report.alreadyListed} already listed, ${report.rejected} rejected`,
        );
        for (const r of report.rejections.slice(0, 5)) console.log(`  line ${r.line}: ${r.reason}`);
      });
    });

  suppression
    .command('export [file]')
    .description('write the list as CSV (phone,reason,created_at) to a file, or to stdout')
    .action(async (file: string | undefined) => {
      await withContext(async (context) => {
        await pipeline(
          exportSuppressions(context),
          file ? createWriteStream(file) : process.stdout,
        );
      });
    });
}
