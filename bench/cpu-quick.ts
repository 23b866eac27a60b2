// Quick timing of the 'cpu' backend (not the full bench; that is bench/cpu.ts):
//   npx tsx bench/cpu-quick.ts [--heads 8] [--seq 4096] [--dim 128] [--repeats 5] [--dtypes float32,bfloat16]
//                              [--masks full,causal] [--passes fwd,bwd,fused] [--block 128]
// Prints the median time and GFLOP/s counting only unmasked work: the forward is 4·D flops per
// allowed (q, kv) pair per head, the backward 2.5× that (the usual convention).

import { CausalMask, FullMask, fromFloat32, makeSplashMHA, type DType, type Mask } from '../lib/index';
import { randomNormal } from '../lib/random';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Median wall time and median process CPU time (all threads) per call, in ms. On a shared, busy
 *  machine the CPU time still tells how efficient the kernels are per core. */
function time(fn: () => void, repeats: number): { wall: number; cpu: number } {
  fn(); // warm-up: thread pool, scratch buffers, page faults
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
    const mask: Mask = name === 'causal' ? new CausalMask([seq, seq]) : new FullMask([seq, seq]);
    const pairs = name === 'causal' ? (seq * (seq + 1)) / 2 : seq * seq;
    const fwdFlops = 4 * dim * pairs * heads;
    for (const pass of passes) {
      const kernel = makeSplashMHA(mask, {
        backend: 'cpu',
        saveResiduals: true,
        blockSizes: { blockQ: block, blockKv: block, useFusedBwdKernel: pass === 'fused' },
      });
      const res = kernel.forwardSync(q, k, v);
      const t = pass === 'fwd'
        ? time(() => kernel.forwardSync(q, k, v), repeats)
        : time(() => kernel.backwardSync({ q, k, v, ...res, dout }), repeats);
      const flops = pass === 'fwd' ? fwdFlops : 2.5 * fwdFlops;
      console.log(`${dtype.padEnd(8)} ${name.padEnd(6)} ${pass.padEnd(5)} H=${heads} S=${seq} D=${dim} block=${block}: ` +
        `${t.wall.toFixed(1).padStart(8)} ms  ${(flops / t.wall / 1e6).toFixed(1).padStart(6)} GFLOP/s` +
        `  (per CPU-second: ${(flops / t.cpu / 1e6).toFixed(1)} GFLOP/s)`);
    }
  }
}
