// The `splash-attention bench` command: quick forward/backward timings of one backend on a few
// masks. The deeper benchmarks (peers, sweeps) live in the repository's bench/ folder.

import { makeSplashMHA } from './kernel';
import { CausalMask, FullMask, LocalMask, type Mask } from './mask';
import { randomNormal } from './random';
import { fromFloat32, type DType } from './tensor';
import type { BackendName } from './validate';

export interface BenchRow {
  backend: string;
  mask: string;
  dtype: DType;
  heads: number;
  seq: number;
  dim: number;
  forwardMs: number;
  backwardMs: number;
  forwardGflops: number;
  backwardGflops: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Number of (q, kv) pairs the mask allows: the work a block-sparse kernel must do. */
export function allowedPairs(mask: Mask): number {
  const [sq, skv] = mask.shape;
  let n = 0;
  const rows = 256;
  for (let q0 = 0; q0 < sq; q0 += rows) {
    const part = mask.slice(q0, Math.min(sq, q0 + rows), 0, skv);
    for (let i = 0; i < part.length; i++) n += part[i];
  }
  return n;
}

export async function benchOne(mask: Mask, name: string, backend: BackendName, heads: number, dim: number,
  dtype: DType, repeats: number): Promise<BenchRow> {
  const [seq] = mask.shape;
  const kernel = makeSplashMHA(mask, { backend, saveResiduals: true });
  const make = (seed: number, scale = 1) =>
    fromFloat32(randomNormal(heads * seq * dim, seed, scale), [heads, seq, dim], dtype);
  const q = make(11, 1 / Math.sqrt(dim));
  const k = make(12);
  const v = make(13);
  const dout = make(14);
  const fwd: number[] = [];
  const bwd: number[] = [];
  for (let r = 0; r < repeats; r++) {
    let t = performance.now();
    const { out, logsumexp } = await kernel.forward(q, k, v);
    fwd.push(performance.now() - t);
    t = performance.now();
    await kernel.backward({ q, k, v, out, logsumexp, dout });
    bwd.push(performance.now() - t);
  }
  const flops = 4 * dim * heads * allowedPairs(mask);
  const forwardMs = median(fwd);
  const backwardMs = median(bwd);
  return {
    backend: kernel.backend, mask: name, dtype, heads, seq, dim, forwardMs, backwardMs,
    forwardGflops: flops / forwardMs / 1e6,
    backwardGflops: (2.5 * flops) / backwardMs / 1e6, // dq, dk, dv, dp and the recomputed qkᵀ: 10·D per pair
  };
}

export async function runBench(opts: { json: boolean; backend: BackendName; seq?: number; repeats?: number }): Promise<BenchRow[]> {
  const seq = opts.seq ?? 1024;
  const masks: [string, Mask][] = [
    ['full', new FullMask([seq, seq])],
    ['causal', new CausalMask([seq, seq])],
    ['local256', new LocalMask([seq, seq], [256, 0])],
  ];
  const rows: BenchRow[] = [];
  for (const [name, mask] of masks) {
    rows.push(await benchOne(mask, name, opts.backend, 4, 64, 'float32', opts.repeats ?? 3));
  }
  if (opts.json) {
    console.log(JSON.stringify(rows, null, 2));
  } else {
    console.log('backend    mask       H    S     D   fwd ms   fwd GFLOP/s   bwd ms   bwd GFLOP/s');
    for (const r of rows) {
      console.log(
        `${r.backend.padEnd(10)} ${r.mask.padEnd(9)} ${String(r.heads).padStart(2)} ${String(r.seq).padStart(5)} ` +
          `${String(r.dim).padStart(4)} ${r.forwardMs.toFixed(1).padStart(8)} ${r.forwardGflops.toFixed(2).padStart(13)} ` +
          `${r.backwardMs.toFixed(1).padStart(8)} ${r.backwardGflops.toFixed(2).padStart(13)}`,
      );
    }
  }
  return rows;
}
