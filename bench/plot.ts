// Redraws the plot of a saved CPU benchmark report, so a figure can be restyled or embedded again
// without measuring again:
//
//   npm run bench -- plot [bench/out/cpu.json] [--out bench/out/cpu.svg]

import { readFileSync } from 'node:fs';
import path from 'node:path';

import type { Report } from './cpu';
import { writeCpuPlot } from './cpu-plot';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const at = args.indexOf('--out');
  const out = at >= 0 ? args[at + 1] : path.join(__dirname, 'out', 'cpu.svg');
  const input = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--out') ?? path.join(__dirname, 'out', 'cpu.json');
  if (out === undefined) throw new Error('--out: expected a file name');
  const report = JSON.parse(readFileSync(input, 'utf8')) as Report;
  if (!Array.isArray(report.rows) || !report.grid) throw new Error(`${input}: expected a report written by 'npm run bench -- cpu --json'`);
  await writeCpuPlot(out, report);
  console.log(`wrote ${out} from ${input}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
