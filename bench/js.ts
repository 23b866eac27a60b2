// JS backend forward throughput: `npx tsx bench/js.ts [--heads 8] [--seq 2048] [--dim 128] [--repeats 3]`.
// Counts only unmasked work: 4·D flops per allowed (q, kv) pair per head (q·kᵀ and p·v).

import { CausalMask, FullMask, fromFloat32, makeSplashMHA, type Mask } from '../lib/index';
import { randomNormal } from '../lib/random';

export interface JsBenchRow {
  mask: string;
  heads: number;
  seq: number;
  dim: number;
  ms: number;
  gflops: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Exact number of allowed (q, kv) pairs, counted in row strips so no S×S array is built. */
function allowedPairs(mask: Mask): number {
  const [sq, skv] = mask.shape;
  let n = 0;
  for (let q0 = 0; q0 < sq; q0 += 128) {
    const strip = mask.slice(q0, Math.min(sq, q0 + 128), 0, skv);
    for (let i = 0; i < strip.length; i++) n += strip[i];
  }
  return n;
}

export function benchJs(opts: { heads?: number; seq?: number; dim?: number; repeats?: number } = {}): JsBenchRow[] {
  const heads = opts.heads ?? 8;
  const seq = opts.seq ?? 2048;
  const dim = opts.dim ?? 128;
  const repeats = Math.max(1, opts.repeats ?? 3);
  const shape = [heads, seq, dim];
  const q = fromFloat32(randomNormal(heads * seq * dim, 1, 1 / Math.sqrt(dim)), shape, 'float32');
  const k = fromFloat32(randomNormal(heads * seq * dim, 2), shape, 'float32');
  const v = fromFloat32(randomNormal(heads * seq * dim, 3), shape, 'float32');
  const masks: [string, Mask][] = [
    ['full', new FullMask([seq, seq])],
    ['causal', new CausalMask([seq, seq])],
  ];
  const rows: JsBenchRow[] = [];
  for (const [name, mask] of masks) {
    const kernel = makeSplashMHA(mask, { backend: 'js' });
    const flops = 4 * dim * heads * allowedPairs(mask);
    kernel.forwardSync(q, k, v); // warm-up: lets V8 optimise the kernels before timing
    const times: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      kernel.forwardSync(q, k, v);
      times.push(performance.now() - t0);
    }
    const ms = median(times);
    rows.push({ mask: name, heads, seq, dim, ms, gflops: flops / ms / 1e6 });
  }
  return rows;
}

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : undefined;
}

if (require.main === module) {
  const rows = benchJs({ heads: arg('heads'), seq: arg('seq'), dim: arg('dim'), repeats: arg('repeats') });
  console.log('JS backend forward, float32, median of runs after one warm-up');
  console.log('mask    | H | S    | D   | ms       | GFLOP/s');
  for (const r of rows) {
    console.log(
      `${r.mask.padEnd(7)} | ${r.heads} | ${String(r.seq).padEnd(4)} | ${String(r.dim).padEnd(3)} | ` +
        `${r.ms.toFixed(1).padStart(8)} | ${r.gflops.toFixed(2)}`,
    );
  }
}
