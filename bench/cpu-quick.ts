// Quick timing of the 'cpu' backend (not the full bench; that is bench/cpu.ts):
//   npx tsx bench/cpu-quick.ts [--heads 8] [--seq 4096] [--dim 128] [--repeats 5] [--dtypes float32,bfloat16]
//                              [--masks full,causal,local512,chunked1024,packed8,random50] [--passes fwd,bwd,fused]
//                              [--block 128] [--block-q 128 (default: --block)] [--warmup 10] [--json]
// Prints the median time and GFLOP/s counting only unmasked work: the forward is 4·D flops per
// allowed (q, kv) pair per head, the backward 2.5× that (the usual convention). Sparse masks also
// print "active blocks": the same rate counting every pair of every non-empty block, which is the work
// a block-sparse kernel cannot skip (all of a partial block is computed, then masked). --json prints
// one JSON object per row instead (bench/cpu-ab.ts reads them). --warmup calls come before the timed
// ones: a process's first calls write their results into fresh memory, whose page faults (12 us each
// on our machines) can double a small call until the allocator reuses freed results.

import { fromFloat32, makeSplashMHA, type DType } from '../lib/index';
import { randomNormal } from '../lib/random';
import { flag } from './args';
import { pairCounts, problemByName } from './problems';
import { median } from './timing';

const arg = (name: string, fallback: string): string => flag(name) ?? fallback;

/** Median wall time and median process CPU time (all threads) per call, in ms. On a shared, busy
 *  machine the CPU time still tells how efficient the kernels are per core. */
function time(fn: () => void, repeats: number): { wall: number; cpu: number } {
  for (let i = 0; i < warmup; i++) fn(); // thread pool, scratch buffers, the allocator's reuse of results
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    fn();
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1e3);
  }
  return { wall: median(wall), cpu: median(cpu) };
}

const heads = Number(arg('heads', '8'));
const seq = Number(arg('seq', '4096'));
const dim = Number(arg('dim', '128'));
const repeats = Number(arg('repeats', '5'));
const block = Number(arg('block', '128'));
const blockQ = Number(arg('block-q', String(block)));
const json = process.argv.includes('--json');
const warmup = Math.max(1, Number(arg('warmup', '10')));
const dtypes = arg('dtypes', 'float32,bfloat16').split(',') as DType[];
const masks = arg('masks', 'full,causal').split(',');
const passes = arg('passes', 'fwd,bwd,fused').split(',');

const shape = [heads, seq, dim];
for (const dtype of dtypes) {
  const q = fromFloat32(randomNormal(heads * seq * dim, 1, 1 / Math.sqrt(dim)), shape, dtype);
  const k = fromFloat32(randomNormal(heads * seq * dim, 2), shape, dtype);
  const v = fromFloat32(randomNormal(heads * seq * dim, 3), shape, dtype);
  const dout = fromFloat32(randomNormal(heads * seq * dim, 4), shape, dtype);
  for (const name of masks) {
    const problem = problemByName(name, seq);
    const { mask, segmentIds } = problem;
    const pairs = pairCounts(problem, block);
    const fwdFlops = 4 * dim * pairs.allowed * heads;
    for (const pass of passes) {
      const kernel = makeSplashMHA(mask, {
        backend: 'cpu',
        saveResiduals: true,
        blockSizes: { blockQ, blockKv: block, useFusedBwdKernel: pass === 'fused' },
      });
      const res = kernel.forwardSync(q, k, v, segmentIds);
      const t = pass === 'fwd'
        ? time(() => kernel.forwardSync(q, k, v, segmentIds), repeats)
        : time(() => kernel.backwardSync({ q, k, v, segmentIds, ...res, dout }), repeats);
      const perPass = pass === 'fwd' ? 1 : 2.5;
      const flops = perPass * fwdFlops;
      if (json) {
        console.log(JSON.stringify({ dtype, mask: name, pass, heads, seq, dim, blockQ, blockKv: block, ms: t.wall,
          cpuMs: t.cpu, gflops: flops / t.wall / 1e6, activeGflops: (perPass * 4 * dim * pairs.active * heads) / t.wall / 1e6 }));
        continue;
      }
      const activeRate = pairs.active === pairs.allowed ? ''
        : `  active blocks: ${((perPass * 4 * dim * pairs.active * heads) / t.wall / 1e6).toFixed(1)} GFLOP/s`;
      console.log(`${dtype.padEnd(8)} ${name.padEnd(8)} ${pass.padEnd(5)} H=${heads} S=${seq} D=${dim} block=${blockQ}x${block}: ` +
        `${t.wall.toFixed(1).padStart(8)} ms  ${(flops / t.wall / 1e6).toFixed(1).padStart(6)} GFLOP/s` +
        `  (per CPU-second: ${(flops / t.cpu / 1e6).toFixed(1)} GFLOP/s)${activeRate}`);
    }
  }
}
