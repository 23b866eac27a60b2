// JS backend throughput: `npx tsx bench/js.ts [--heads 8] [--seq 2048] [--dim 128] [--repeats 3]
// [--passes fwd,bwd] [--masks full,causal (any of bench/problems.ts)] [--async]`. Counts only unmasked work per allowed (q, kv) pair per head: 4·D flops
// forward (q·kᵀ and p·v), 10·D backward (q·kᵀ, dout·vᵀ, pᵀ·dout, dsᵀ·q, ds·k), as FlashAttention counts.
// --async times the promise-returning calls instead of the *Sync ones.

import { fromFloat32, makeSplashMHA, type Tensor } from '../lib/index';
import { randomNormal } from '../lib/random';
import { flag } from './args';
import { pairCounts, problemByName } from './problems';
import { median } from './timing';

export type JsBenchPass = 'fwd' | 'bwd';

export interface JsBenchRow {
  mask: string;
  pass: JsBenchPass;
  heads: number;
  seq: number;
  dim: number;
  ms: number;
  gflops: number;
}

export interface JsBenchOptions {
  heads?: number;
  seq?: number;
  dim?: number;
  repeats?: number;
  /** Default ['fwd']. */
  passes?: readonly JsBenchPass[];
  /** Time forward()/backward() rather than forwardSync()/backwardSync(). */
  async?: boolean;
  /** Masks by bench/problems.ts name; default ['full', 'causal']. */
  masks?: readonly string[];
}

const FLOPS_PER_PAIR_DIM: Record<JsBenchPass, number> = { fwd: 4, bwd: 10 };

/** Median time of `repeats` calls after one warm-up that lets V8 optimise the kernels. */
async function timeCalls(call: () => unknown, repeats: number): Promise<number> {
  await call();
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    await call();
    times.push(performance.now() - t0);
  }
  return median(times);
}

export async function benchJs(opts: JsBenchOptions = {}): Promise<JsBenchRow[]> {
  const heads = opts.heads ?? 8;
  const seq = opts.seq ?? 2048;
  const dim = opts.dim ?? 128;
  const repeats = Math.max(1, opts.repeats ?? 3);
  const passes = opts.passes ?? ['fwd'];
  const shape = [heads, seq, dim];
  const q = fromFloat32(randomNormal(heads * seq * dim, 1, 1 / Math.sqrt(dim)), shape, 'float32');
  const k = fromFloat32(randomNormal(heads * seq * dim, 2), shape, 'float32');
  const v = fromFloat32(randomNormal(heads * seq * dim, 3), shape, 'float32');
  const dout = fromFloat32(randomNormal(heads * seq * dim, 4), shape, 'float32');
  const rows: JsBenchRow[] = [];
  for (const name of opts.masks ?? ['full', 'causal']) {
    const problem = problemByName(name, seq);
    const { mask, segmentIds } = problem;
    const kernel = makeSplashMHA(mask, { backend: 'js', saveResiduals: true });
    const pairs = pairCounts(problem, 128).allowed;
    for (const pass of passes) {
      let call: () => unknown;
      if (pass === 'fwd') {
        call = opts.async ? () => kernel.forward(q, k, v, segmentIds) : () => kernel.forwardSync(q, k, v, segmentIds);
      } else {
        const { out, logsumexp } = kernel.forwardSync(q, k, v, segmentIds) as { out: Tensor; logsumexp: Tensor };
        const args = { q, k, v, segmentIds, out, logsumexp, dout };
        call = opts.async ? () => kernel.backward(args) : () => kernel.backwardSync(args);
      }
      const ms = await timeCalls(call, repeats);
      const flops = FLOPS_PER_PAIR_DIM[pass] * dim * heads * pairs;
      rows.push({ mask: name, pass, heads, seq, dim, ms, gflops: flops / ms / 1e6 });
    }
  }
  return rows;
}

function numArg(name: string): number | undefined {
  const a = flag(name);
  return a === undefined ? undefined : Number(a);
}

async function main(): Promise<void> {
  const passes = (flag('passes') ?? 'fwd').split(',') as JsBenchPass[];
  for (const p of passes) if (!(p in FLOPS_PER_PAIR_DIM)) throw new Error(`--passes: unknown pass '${p}'`);
  const isAsync = process.argv.includes('--async');
  const rows = await benchJs({
    heads: numArg('heads'), seq: numArg('seq'), dim: numArg('dim'), repeats: numArg('repeats'), passes, async: isAsync,
    masks: flag('masks')?.split(','),
  });
  console.log(`JS backend, float32, ${isAsync ? 'async' : 'sync'} calls, median of runs after one warm-up`);
  console.log('mask     | H | S    | D   | pass | ms       | GFLOP/s');
  for (const r of rows) {
    console.log(
      `${r.mask.padEnd(8)} | ${r.heads} | ${String(r.seq).padEnd(4)} | ${String(r.dim).padEnd(3)} | ${r.pass.padEnd(4)} | ` +
        `${r.ms.toFixed(1).padStart(8)} | ${r.gflops.toFixed(2)}`,
    );
  }
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
