// `npm run bench`: runs every benchmark in bench/ one after another (they measure the machine, so
// never in parallel) and prints each one's table. Pass names to run some: `npm run bench -- import`.
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BenchResult {
  name: string;
  /** Rows of label → value, printed as a table and copied into BENCHMARKS.md by hand. */
  rows: Array<Record<string, string | number>>;
  notes?: string[];
}

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const files = (await readdir(here)).filter((f) => f.endsWith('.bench.ts')).sort();
for (const file of files) {
  const name = file.replace(/\.bench\.ts$/, '');
  if (wanted.length > 0 && !wanted.includes(name)) continue;
  const module = (await import(join(here, file))) as { run(): Promise<BenchResult> };
  console.log(`\n## ${name}`);
  const result = await module.run();
  console.table(result.rows);
  for (const note of result.notes ?? []) console.log(`- ${note}`);
}
console.log(`\nmachine: ${(await import('node:os')).cpus().length} cores, node ${process.version}`);
