// Decoding-shaped forwards on the cpu backend: a few queries per head against a long key/value cache,
// with grouped-query heads, where the time goes into reading K and V.
//   npm run bench -- decode [--heads 32] [--kv-heads 8,32] [--dim 128] [--queries 1,16] [--keys 1024,4096]
//                           [--dtypes float32,bfloat16] [--rounds 9] [--calls 10] [--async] [--json]
// Each case runs two ways in alternating rounds of --calls calls, in one process: as the addon runs it,
// and with SPLASH_PACK_HEADS=0 (one query head per task, every query head reading its kv head's cache
// again), which is the baseline of the same run. Figures are medians over rounds: ms per call, the
// cache's bytes (K and V once) per second, and GFLOP/s (4·D per query-key pair per head).
// --async times awaited async calls instead, alternating inputs on ordinary arrays (which each call
// copies) with the same inputs on a SharedArrayBuffer (read in place), beside the sync call.

import { FullMask, fromFloat32, makeSplashMHA, tensor, type DType, type SplashAttentionKernel, type Tensor } from '../lib/index';
import { lastCpuCallReport } from '../lib/backends/cpu';
import { randomNormal } from '../lib/random';
import { flag } from './args';
import { median } from './timing';

const list = (name: string, fallback: string): number[] => (flag(name) ?? fallback).split(',').map(Number);
const heads = Number(flag('heads') ?? '32');
const kvHeadCounts = list('kv-heads', '8,32');
const dim = Number(flag('dim') ?? '128');
const queryCounts = list('queries', '1,16');
const keyCounts = list('keys', '1024,4096');
const dtypes = (flag('dtypes') ?? 'float32,bfloat16').split(',') as DType[];
const rounds = Number(flag('rounds') ?? '9');
const calls = Number(flag('calls') ?? '10');
const json = process.argv.includes('--json');
const asyncCalls = process.argv.includes('--async');

/** ms per call of `calls` calls, with SPLASH_PACK_HEADS set as given for them. */
function timeCalls(run: () => unknown, packHeads: boolean): number {
  if (packHeads) delete process.env.SPLASH_PACK_HEADS;
  else process.env.SPLASH_PACK_HEADS = '0';
  try {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) run();
    return (performance.now() - t0) / calls;
  } finally {
    delete process.env.SPLASH_PACK_HEADS;
  }
}

/** ms per awaited async call of `calls` calls. */
async function timeAsync(run: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) await run();
  return (performance.now() - t0) / calls;
}

/** The same tensor with its data on a SharedArrayBuffer. */
function onShared(t: Tensor): Tensor {
  const data = t.data instanceof Float32Array
    ? new Float32Array(new SharedArrayBuffer(t.data.byteLength))
    : new Uint16Array(new SharedArrayBuffer(t.data.byteLength));
  data.set(t.data);
  return tensor(data, t.shape.slice(), t.dtype);
}

/** Sync calls, async calls on ordinary arrays and async calls on shared memory, in alternating rounds. */
async function asyncRow(kernel: SplashAttentionKernel, q: Tensor, k: Tensor, v: Tensor, label: string): Promise<void> {
  const [sq, sk, sv] = [q, k, v].map(onShared);
  await kernel.forward(q, k, v); // warm-up
  await kernel.forward(sq, sk, sv);
  const sync: number[] = [];
  const copied: number[] = [];
  const inPlace: number[] = [];
  for (let r = 0; r < rounds; r++) {
    sync.push(timeCalls(() => kernel.forwardSync(q, k, v), true));
    copied.push(await timeAsync(() => kernel.forward(q, k, v)));
    inPlace.push(await timeAsync(() => kernel.forward(sq, sk, sv)));
  }
  const row = { label, syncMs: median(sync), asyncMs: median(copied), asyncSharedMs: median(inPlace) };
  if (json) {
    console.log(JSON.stringify(row));
    return;
  }
  console.log(`${label}  sync ${row.syncMs.toFixed(3)} ms, async ${row.asyncMs.toFixed(3)} ms, ` +
    `async on a SharedArrayBuffer ${row.asyncSharedMs.toFixed(3)} ms (${(row.asyncMs / row.asyncSharedMs).toFixed(2)}x)`);
}

async function main(): Promise<void> {
  for (const dtype of dtypes) {
    for (const kvHeads of kvHeadCounts) {
      for (const sq of queryCounts) {
        for (const skv of keyCounts) {
          const kernel = makeSplashMHA(new FullMask([sq, skv]), { backend: 'cpu' });
          const q = fromFloat32(randomNormal(heads * sq * dim, 1, 1 / Math.sqrt(dim)), [heads, sq, dim], dtype);
          const k = fromFloat32(randomNormal(kvHeads * skv * dim, 2), [kvHeads, skv, dim], dtype);
          const v = fromFloat32(randomNormal(kvHeads * skv * dim, 3), [kvHeads, skv, dim], dtype);
          if (asyncCalls) {
            await asyncRow(kernel, q, k, v, `${dtype.padEnd(8)} H=${heads} Hkv=${String(kvHeads).padEnd(2)} Sq=${String(sq).padEnd(3)} Skv=${String(skv).padEnd(5)}`);
            continue;
          }
          const run = () => kernel.forwardSync(q, k, v);
          timeCalls(run, true); // warm-up: threads, scratch, result memory
          const headsPerTask = lastCpuCallReport()?.headsPerTask ?? 1;
          timeCalls(run, false);
          const packed: number[] = [];
          const single: number[] = [];
          for (let r = 0; r < rounds; r++) {
            packed.push(timeCalls(run, true));
            single.push(timeCalls(run, false));
          }
          const ms = median(packed);
          const baseMs = median(single);
          const cacheBytes = k.data.byteLength + v.data.byteLength;
          const row = {
            dtype, heads, kvHeads, queries: sq, keys: skv, dim, headsPerTask, ms, onePerTaskMs: baseMs,
            speedup: baseMs / ms, cacheGBs: cacheBytes / ms / 1e6, gflops: (4 * dim * heads * sq * skv) / ms / 1e6,
          };
          if (json) {
            console.log(JSON.stringify(row));
            continue;
          }
          console.log(`${dtype.padEnd(8)} H=${heads} Hkv=${String(kvHeads).padEnd(2)} Sq=${String(sq).padEnd(3)} Skv=${String(skv).padEnd(5)} ` +
            `heads/task ${String(headsPerTask).padEnd(2)} ${ms.toFixed(3).padStart(8)} ms (one head per task ${baseMs.toFixed(3).padStart(8)} ms, ` +
            `${row.speedup.toFixed(2)}x)  cache ${row.cacheGBs.toFixed(1).padStart(5)} GB/s  ${row.gflops.toFixed(1).padStart(6)} GFLOP/s`);
        }
      }
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
