// The `splash-attention bench` command: quick forward/backward timings of one or more backends on a
// few masks and sequence lengths, with a progress bar on a terminal and an optional SVG plot. The
// deeper benchmarks (peers, sweeps) live in the repository's bench/ folder.

import { loadPlotting, writePlot, type PlotPoint } from './bench-plot';
import { makeSplashMHA } from './kernel';
import { CausalMask, FullMask, LocalMask, type Mask } from './mask';
import { ProgressBar, shouldShowProgress } from './progress';
import { randomNormal } from './random';
import { fromFloat32, type DType } from './tensor';
import type { BackendName } from './validate';

/** One mask and size of `splash-attention bench`: median times and throughputs (H = 4, D = 64). */
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

/** Times forward and backward of one mask `repeats` times on one backend; medians. */
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

/** Options of the `bench` command. */
export interface RunBenchOptions {
  /** Print the rows as JSON (and never a progress bar) instead of a table. */
  json: boolean;
  /** Backend, or backends to time one after the other. */
  backend: BackendName | BackendName[];
  /** One sequence length (default 1024), or `sizes` for several. */
  seq?: number;
  sizes?: number[];
  /** Timed runs per case (default 3). */
  repeats?: number;
  /** Write a throughput plot (SVG) here; needs the optional vega and vega-lite packages. */
  plot?: string;
}

const HEADS = 4;
const DIM = 64;

/** Runs the `bench` command: every backend × size × mask, printed as a table or JSON, optionally plotted. */
export async function runBench(opts: RunBenchOptions): Promise<BenchRow[]> {
  const sizes = opts.sizes ?? [opts.seq ?? 1024];
  const backendList = Array.isArray(opts.backend) ? opts.backend : [opts.backend];
  const repeats = opts.repeats ?? 3;
  if (opts.plot !== undefined) await loadPlotting(); // fail before the measurements, not after
  const cases = backendList.flatMap((backend) => sizes.flatMap((seq) => maskSet(seq).map(([name, mask]) => ({ backend, seq, name, mask }))));
  // The bar's work unit: allowed pairs × repeats, forward and backward alike, which tracks the time taken.
  const work = cases.map((c) => allowedPairs(c.mask) * repeats);
  const progress = new ProgressBar(work.reduce((a, b) => a + b, 0), { enabled: shouldShowProgress(process.stderr, process.env, opts.json) });
  const header = 'backend    mask       H    S     D   fwd ms   fwd GFLOP/s   bwd ms   bwd GFLOP/s';
  if (!opts.json) progress.log(header);
  const rows: BenchRow[] = [];
  for (const [i, c] of cases.entries()) {
    progress.update(`${c.backend} ${c.name} S=${c.seq}`);
    const row = await benchOne(c.mask, c.name, c.backend, HEADS, DIM, 'float32', repeats);
    rows.push(row);
    progress.advance(work[i]);
    if (!opts.json) progress.log(formatRow(row));
  }
  progress.finish();
  if (opts.json) console.log(JSON.stringify(rows, null, 2));
  if (opts.plot !== undefined) {
    await writePlot(opts.plot, plotPoints(rows), {
      title: 'splash-attention throughput by sequence length',
      subtitle: [
        `H = ${HEADS}, D = ${DIM}, float32; median of ${repeats} runs per point; GFLOP/s count only allowed (q, kv) pairs ` +
          '(forward 4·D per pair, backward 2.5× that)',
      ],
    });
    if (!opts.json) console.log(`wrote ${opts.plot}`);
  }
  return rows;
}

function maskSet(seq: number): [string, Mask][] {
  return [
    ['full', new FullMask([seq, seq])],
    ['causal', new CausalMask([seq, seq])],
    ['local256', new LocalMask([seq, seq], [256, 0])],
  ];
}

/** Two lines per backend in each mask's panel: forward and backward throughput. */
export function plotPoints(rows: readonly BenchRow[]): PlotPoint[] {
  return rows.flatMap((r) => [
    { series: `${r.backend} forward`, mask: r.mask, seq: r.seq, gflops: r.forwardGflops },
    { series: `${r.backend} backward`, mask: r.mask, seq: r.seq, gflops: r.backwardGflops },
  ]);
}

function formatRow(r: BenchRow): string {
  return (
    `${r.backend.padEnd(10)} ${r.mask.padEnd(9)} ${String(r.heads).padStart(2)} ${String(r.seq).padStart(5)} ` +
    `${String(r.dim).padStart(4)} ${r.forwardMs.toFixed(1).padStart(8)} ${r.forwardGflops.toFixed(2).padStart(13)} ` +
    `${r.backwardMs.toFixed(1).padStart(8)} ${r.backwardGflops.toFixed(2).padStart(13)}`
  );
}
