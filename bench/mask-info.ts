// Times processMask on the masks that matter: huge computable masks (must stay O(blocks), target
// < 100 ms) and a large random dense mask (target < 2 s). Median of 5 runs; heap growth is the
// retained memory of one MaskInfo (JS heap plus typed-array buffers).
//
//   npx tsx bench/mask-info.ts            full sizes
//   npx tsx bench/mask-info.ts --quick    tiny sizes (a smoke run)
// Run node with --expose-gc (e.g. `node --expose-gc --import tsx bench/mask-info.ts`) for steadier heap figures.

import { CausalMask, LocalMask, Mask, makeRandomMask } from '../lib/mask';
import { MaskInfo, processMask } from '../lib/mask-info';

export interface MaskInfoBenchResult {
  name: string;
  medianMs: number;
  heapGrowthMiB: number;
  targetMs: number;
}

const RUNS = 5;

function retainedBytes(): number {
  (globalThis as { gc?: () => void }).gc?.();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function timeProcessMask(name: string, mask: Mask, targetMs: number): MaskInfoBenchResult {
  const times: number[] = [];
  let growth = 0;
  let info: MaskInfo | null = null;
  for (let run = 0; run < RUNS; run++) {
    info = null; // drop the previous run's result before taking the baseline
    const before = retainedBytes();
    const start = performance.now();
    info = processMask(mask, [128, 128]);
    times.push(performance.now() - start);
    growth = retainedBytes() - before;
  }
  if (info?.heads !== 1) throw new Error('processMask: unexpected head count');
  return { name, medianMs: median(times), heapGrowthMiB: growth / 2 ** 20, targetMs };
}

/** Runs the three cases; `quick` shrinks the sequences for a smoke run. */
export function benchMaskInfo(quick = false): MaskInfoBenchResult[] {
  const seq = quick ? 2048 : 131072;
  const denseSeq = quick ? 512 : 8192;
  return [
    timeProcessMask(`CausalMask ${seq}²`, new CausalMask([seq, seq]), 100),
    timeProcessMask(`LocalMask ${seq}² [1024, 0]`, new LocalMask([seq, seq], [1024, 0]), 100),
    timeProcessMask(`makeRandomMask ${denseSeq}² 0.5`, makeRandomMask([denseSeq, denseSeq], 0.5, 0), 2000),
  ];
}

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  const gcNote = 'gc' in globalThis ? '' : '; heap figures are rough without node --expose-gc';
  console.log(`processMask at [128, 128], median of ${RUNS} (node ${process.version}${gcNote})`);
  for (const r of benchMaskInfo(quick)) {
    const verdict = r.medianMs < r.targetMs ? 'ok' : 'OVER TARGET';
    console.log(
      `${r.name.padEnd(34)} ${r.medianMs.toFixed(1).padStart(8)} ms  heap +${r.heapGrowthMiB.toFixed(1).padStart(6)} MiB` +
        `  (target < ${r.targetMs} ms: ${verdict})`,
    );
  }
}
