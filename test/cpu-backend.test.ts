// The native 'cpu' backend against the float64 reference: a seeded sample of JAX's splash test grid
// (every value of every axis appears), all three dtypes and layouts, odd sizes, every instruction-set
// path, then the guarantees around it: segment skipping, the skipping of empty sub-blocks, query heads
// sharing a forward task and the thread count never change a bit; async calls (50 at once, in worker
// threads, on inputs in shared memory that they read in place) agree with sync ones; every call hands
// the addon one hidden class; and a wrong call straight to the addon is a RangeError, never a crash.
//
// SPLASH_TEST_SCALE=small (used under AddressSanitizer) runs a smaller sample.

import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';

import { backends } from '../lib/backends/registry';
import { loadNative, type CpuKernelExports } from '../lib/backends/native';
import { lastCpuCallReport, lastCpuKernelIsa } from '../lib/backends/cpu';
import {
  CausalMask,
  ChunkedCausalMask,
  FullMask,
  LocalMask,
  MultiHeadMask,
  QKVLayout,
  fromFloat32,
  makeSplashMHA,
  processMask,
  tensor,
  toFloat32,
  type BlockSizes,
  type DType,
  type Mask,
  type SegmentIds,
  type SplashOptions,
  type Tensor,
} from '../lib/index';
import { randomNormal, seededRandom } from '../lib/random';
import { assertBitwise, assertClose, kernelFor, run, type Grads, type Problem, type Residuals } from './support/compare';
import { assertEmptyRows, clearOfMaskedNan, emptyRowsProblem, maskedNanProblem, oneBlockCausalProblem } from './support/edge-cases';
import { BATCHES, BLOCKS, DIMS, HEADS, SEQS, SOFT_CAPS, cycler, randTensor, randomMask } from './support/grid';

const SMALL = process.env.SPLASH_TEST_SCALE === 'small';
const ROOT = path.resolve(__dirname, '..');

// ---- comparisons --------------------------------------------------------------------------------

function assertSameRun(a: { res: Residuals; grads: Grads }, b: { res: Residuals; grads: Grads }, tag: string): void {
  assertBitwise(a.res.out, b.res.out, `out ${tag}`);
  assertBitwise(a.res.logsumexp, b.res.logsumexp, `logsumexp ${tag}`);
  assertBitwise(a.grads.dq, b.grads.dq, `dq ${tag}`);
  assertBitwise(a.grads.dk, b.grads.dk, `dk ${tag}`);
  assertBitwise(a.grads.dv, b.grads.dv, `dv ${tag}`);
}

/** Runs fn with environment variables set, restoring them afterwards (the kernels read them per call). */
function withEnv<T>(vars: Record<string, string>, fn: () => T): T {
  const saved = Object.keys(vars).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, vars);
  try {
    return fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** The kernel table a call forced to `isa` must run on this CPU, or null when the CPU lacks that ISA. */
function expectedIsa(isa: string, bf16Dots: boolean): string | null {
  const f = loadNative().info?.cpuFeatures;
  if (f === undefined) return null;
  if (isa === 'avx512') {
    if (!(f.avx512f && f.avx512bw && f.avx512vl && f.avx2 && f.fma && f.f16c)) return null;
    return bf16Dots && f.avx512bf16 ? 'avx512_bf16' : 'avx512';
  }
  if (isa === 'avx2') return f.avx2 && f.fma && f.f16c ? 'avx2' : null;
  if (isa === 'neon') {
    if (!f.neon) return null;
    return bf16Dots && f.armBf16 ? 'neon_bf16' : 'neon';
  }
  return 'generic';
}

/** Runs `fn` with SPLASH_CPU_ISA (and SPLASH_CPU_BF16) set and checks that the kernel table it asked for
 *  is the one that ran; skips, saying why, where this CPU lacks the instruction set. */
function onIsa(ctx: Mocha.Context, isa: string, bf16: string, fn: () => void): void {
  const expected = expectedIsa(isa, bf16 !== '0');
  if (expected === null) {
    ctx.skip(); // this CPU lacks the instruction set: the call would silently run a lower one
  }
  withEnv({ SPLASH_CPU_ISA: isa, SPLASH_CPU_BF16: bf16 }, fn);
  assert.equal(lastCpuKernelIsa(), expected, `SPLASH_CPU_ISA=${isa} SPLASH_CPU_BF16=${bf16}: the kernel table that ran`);
}

// ---- data -----------------------------------------------------------------------------------------

/** `docs` contiguous documents per batch row at the same relative positions in q and kv. */
function packedSegments(batch: number, sq: number, skv: number, docs: number, seed: number): SegmentIds {
  const rand = seededRandom(seed);
  const q = new Int32Array(batch * sq);
  const kv = new Int32Array(batch * skv);
  for (let b = 0; b < batch; b++) {
    const cuts = Array.from({ length: docs - 1 }, () => 0.05 + 0.9 * rand()).sort((x, y) => x - y);
    const id = (pos: number): number => 10 * b + cuts.filter((c) => c <= pos).length;
    for (let i = 0; i < sq; i++) q[b * sq + i] = id(i / sq);
    for (let j = 0; j < skv; j++) kv[b * skv + j] = id(j / skv);
  }
  return { q, kv };
}

const MASK_KINDS = ['causal', 'full', 'random', 'local', 'chunked', 'or', 'and', 'multihead'] as const;
type MaskKind = (typeof MASK_KINDS)[number];

function mask2d(kind: Exclude<MaskKind, 'multihead'>, sq: number, skv: number, rand: () => number): Mask {
  const shape: [number, number] = [sq, skv];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  switch (kind) {
    case 'causal':
      return new CausalMask(shape, pick([0, skv - sq]));
    case 'full':
      return new FullMask(shape);
    case 'random':
      return randomMask(sq, skv, pick([0.1, 0.3, 0.5]), Math.floor(rand() * 1e6));
    case 'local':
      return new LocalMask(shape, pick([[64, 0], [32, 32], [null, 16], [128, null]] as [number | null, number | null][]));
    case 'chunked':
      return new ChunkedCausalMask(shape, pick([64, 96, 128]));
    case 'or':
      // A computable Or (mask program) or one with a dense operand (stored partial blocks).
      return rand() < 0.5
        ? new CausalMask(shape).or(new LocalMask(shape, [0, 48]))
        : new CausalMask(shape).or(randomMask(sq, skv, 0.9, Math.floor(rand() * 1e6)));
    case 'and':
      return new CausalMask(shape).and(new LocalMask(shape, [96, null]));
  }
}

function makeMask(kind: MaskKind, heads: number, sq: number, skv: number, rand: () => number): Mask | MultiHeadMask {
  if (kind !== 'multihead') return mask2d(kind, sq, skv, rand);
  const perHead = ['causal', 'local', 'full', 'random', 'chunked', 'and'] as const;
  return new MultiHeadMask(Array.from({ length: heads }, (_, h) => mask2d(perHead[h % perHead.length], sq, skv, rand)));
}

// ---- the sampled grid -------------------------------------------------------------------------------

const DTYPES: DType[] = ['float32', 'bfloat16', 'float16'];
const { HEAD_DIM_MINOR: HM, SEQ_MINOR: SM } = QKVLayout;
/** [q, k, v] physical layouts. */
const LAYOUTS: [QKVLayout, QKVLayout, QKVLayout][] = [[HM, HM, HM], [SM, SM, SM], [HM, SM, HM], [SM, HM, SM]];
/** B·H·Sq·Skv·D above this is scaled down so the float64 reference stays quick. */
const MAX_COST = SMALL ? 256 * 256 * 64 * 2 : 512 * 512 * 64 * 4;
const GRID_SIZE = SMALL ? 27 : 54;

interface GridCase {
  seq: [number, number];
  dim: number;
  heads: [number, number];
  batch: number;
  mask: MaskKind;
  segments: boolean;
  softCap: number | null;
  blocks: BlockSizes;
  dtype: DType;
  seed: number;
}

function sampleGrid(n: number, seed: number): GridCase[] {
  const rand = seededRandom(seed);
  const seq = cycler(SEQS, rand);
  const dim = cycler(DIMS, rand);
  const heads = cycler(HEADS, rand);
  const batch = cycler(BATCHES, rand);
  const mask = cycler(MASK_KINDS, rand);
  const seg = cycler([false, true], rand);
  const cap = cycler(SOFT_CAPS, rand);
  const fused = cycler([false, true], rand);
  const dtype = cycler(DTYPES, rand);
  const block = cycler(BLOCKS, rand);
  const layout = cycler(LAYOUTS, rand);
  const divisorOf = (b: number): number => {
    const options = BLOCKS.filter((x) => b % x === 0);
    return options[Math.floor(rand() * options.length)];
  };
  return Array.from({ length: n }, (_, i) => {
    const isFused = fused();
    const blockKv = block();
    const blockKvDkv = block();
    const [qLayout, kLayout, vLayout] = layout();
    const c: GridCase = {
      seq: seq(), dim: dim(), heads: heads(), batch: batch(), mask: mask(), segments: seg(), softCap: cap(),
      dtype: dtype(), seed: 5000 + i,
      blocks: {
        blockQ: block(), blockKv, blockKvCompute: divisorOf(blockKv),
        blockQDkv: block(), blockKvDkv, blockKvDkvCompute: divisorOf(blockKvDkv),
        useFusedBwdKernel: isFused, qLayout, kLayout, vLayout,
        ...(isFused ? {} : { blockQDq: block(), blockKvDq: block() }),
      },
    };
    // Heavy combinations shrink: batch first, then head dim, then heads, then sequence lengths.
    const cost = (): number => Math.max(1, c.batch) * c.heads[0] * c.seq[0] * c.seq[1] * c.dim;
    if (cost() > MAX_COST) c.batch = 0;
    while (cost() > MAX_COST && c.dim > 64) c.dim /= 2;
    if (cost() > MAX_COST) c.heads = c.heads[1] === 0 ? [2, 0] : [2, 1];
    while (cost() > MAX_COST && c.seq[0] > 128) c.seq = [c.seq[0] / 2, c.seq[1]];
    while (cost() > MAX_COST && c.seq[1] > 128) c.seq = [c.seq[0], c.seq[1] / 2];
    return c;
  });
}

const GRID = sampleGrid(GRID_SIZE, 777);

function describeCase(c: GridCase): string {
  const h = c.heads[1] === 0 ? `MQA${c.heads[0]}` : `H${c.heads[0]}/${c.heads[1]}`;
  const b = c.blocks;
  const lay = [b.qLayout, b.kLayout, b.vLayout].map((l) => (l === SM ? 'S' : 'H')).join('');
  const bs = `bq${b.blockQ} bkv${b.blockKv}/${b.blockKvCompute} dkv${b.blockQDkv}x${b.blockKvDkv}/${b.blockKvDkvCompute}` +
    (b.useFusedBwdKernel ? ' fused' : ` dq${b.blockQDq}x${b.blockKvDq}`);
  return `${c.seq[0]}x${c.seq[1]} D${c.dim} ${h}${c.batch ? ` B${c.batch}` : ''} ${c.mask}` +
    `${c.segments ? ' seg' : ''} cap=${c.softCap ?? 'none'} ${c.dtype} ${lay} ${bs}`;
}

function gridProblem(c: GridCase): Problem {
  const rand = seededRandom(c.seed);
  const [sq, skv] = c.seq;
  const [h, hkv] = c.heads;
  const mqa = hkv === 0;
  const lead = c.batch ? [c.batch] : [];
  const kvLead = mqa ? lead : [...lead, hkv];
  // Without a soft cap q is scaled by 1/√D (callers scale q); with one, logits are large enough for the cap to bite.
  const qScale = c.softCap === null ? 1 / Math.sqrt(c.dim) : 1;
  return {
    q: randTensor([...lead, h, sq, c.dim], c.seed * 4 + 1, c.dtype, qScale),
    k: randTensor([...kvLead, skv, c.dim], c.seed * 4 + 2, c.dtype),
    v: randTensor([...kvLead, skv, c.dim], c.seed * 4 + 3, c.dtype),
    dout: randTensor([...lead, h, sq, c.dim], c.seed * 4 + 4, c.dtype),
    seg: c.segments ? packedSegments(Math.max(1, c.batch), sq, skv, 1 + Math.floor(rand() * 3), c.seed) : undefined,
    mask: makeMask(c.mask, h, sq, skv, rand),
    mqa,
  };
}

/** Tolerances against the float64 reference, by dtype. */
type Tolerances = Record<'out' | 'logsumexp' | 'dq' | 'dk' | 'dv', number>;

/**
 * Relative-norm tolerances per output, about 4x the largest error this suite measured against the float64
 * reference over all its cases and ISA paths (SPLASH_TOL_LOG=file, 2026-11-30, AVX-512 bf16 CPU):
 *   float32   out 1.2e-6, dq 2.0e-6, dk 2.0e-6, dv 1.4e-6   (summation order and a ~1e-7 exp)
 *   bfloat16  out 2.3e-3, dq 2.7e-3, dk 2.8e-3, dv 1.1e-4   (8 mantissa bits in, out and in P·V)
 *   float16   out 2.1e-5, dq 8.6e-5, dk 1.3e-4, dv 3.1e-5   (11 mantissa bits)
 *   logsumexp 1.6e-7 whatever the inputs' dtype: it is float32 and computed in float32.
 */
function tolerances(dtype: DType): Tolerances {
  const logsumexp = 7e-7;
  if (dtype === 'float32') return { out: 5e-6, logsumexp, dq: 8e-6, dk: 8e-6, dv: 6e-6 };
  if (dtype === 'bfloat16') return { out: 1e-2, logsumexp, dq: 1.1e-2, dk: 1.2e-2, dv: 5e-4 };
  return { out: 1e-4, logsumexp, dq: 4e-4, dk: 6e-4, dv: 1.5e-4 };
}

function checkAgainstReference(p: Problem, opts: SplashOptions, dtype: DType, tag = ''): void {
  const cpu = run(p, { ...opts, backend: 'cpu' });
  const ref = run(p, { backend: 'reference', maskValue: opts.maskValue, attnLogitsSoftCap: opts.attnLogitsSoftCap });
  const tol = tolerances(dtype);
  assertClose(cpu.res.out, ref.res.out, tol.out, `out${tag}`);
  assertClose(cpu.res.logsumexp, ref.res.logsumexp, tol.logsumexp, `logsumexp${tag}`);
  assertClose(cpu.grads.dq, ref.grads.dq, tol.dq, `dq${tag}`);
  assertClose(cpu.grads.dk, ref.grads.dk, tol.dk, `dk${tag}`);
  assertClose(cpu.grads.dv, ref.grads.dv, tol.dv, `dv${tag}`);
}

/** The CPU entry points, taking the calls this file builds (and spoils) by hand. */
type HandMadeCalls = { [K in keyof CpuKernelExports]: (call: unknown) => ReturnType<CpuKernelExports[K]> };

function addon(): HandMadeCalls {
  return loadNative().addon as unknown as HandMadeCalls;
}

// ---- tests ----------------------------------------------------------------------------------------

describe('cpu backend', function () {
  this.timeout(120_000);

  before(function () {
    const cpu = backends().find((b) => b.name === 'cpu');
    assert.ok(cpu?.available, `the cpu backend must be available here: ${cpu?.reason}`);
  });

  it("is what 'auto' picks when no GPU backend is available", function () {
    if (backends().some((b) => (b.name === 'cuda' || b.name === 'rocm') && b.available)) this.skip();
    assert.equal(makeSplashMHA(new CausalMask([64, 64])).backend, 'cpu');
  });

  it('the sampled grid covers every value of every axis', () => {
    const has = <T>(vals: readonly T[], get: (c: GridCase) => T): void => {
      const seen = new Set(GRID.map((c) => JSON.stringify(get(c))));
      for (const v of vals) assert.ok(seen.has(JSON.stringify(v)), `grid misses ${JSON.stringify(v)}`);
    };
    if (!SMALL) {
      // Sizes the cost cap never shrinks (the small sample shrinks them all).
      has(SEQS.filter(([a, b]) => a * b <= 512 * 512), (c) => c.seq);
      has(HEADS, (c) => c.heads);
      has(SOFT_CAPS, (c) => c.softCap);
      has(DIMS, (c) => c.dim);
      has(BATCHES, (c) => c.batch);
    }
    has(MASK_KINDS, (c) => c.mask);
    has([false, true], (c) => c.segments);
    has(DTYPES, (c) => c.dtype);
    has(LAYOUTS, (c) => [c.blocks.qLayout, c.blocks.kLayout, c.blocks.vLayout]);
    has([false, true], (c) => c.blocks.useFusedBwdKernel as boolean);
    for (const f of ['blockQ', 'blockKv', 'blockKvCompute', 'blockQDkv', 'blockKvDkv', 'blockKvDkvCompute', 'blockQDq', 'blockKvDq'] as const) {
      has(BLOCKS, (c) => c.blocks[f]);
    }
  });

  describe('matches the float64 reference on the sampled splash grid', () => {
    for (const c of GRID) {
      it(describeCase(c), () => {
        checkAgainstReference(gridProblem(c), { blockSizes: c.blocks, attnLogitsSoftCap: c.softCap }, c.dtype);
      });
    }
  });

  describe('sizes off the vector width and every instruction-set path', () => {
    // Head dims and blocks that are not multiples of 16 exercise every padded and packed operand.
    const sq = 150;
    const skv = 170;
    const p: Problem = {
      q: randTensor([3, sq, 40], 61, 'float32', 0.2),
      k: randTensor([3, skv, 40], 62, 'float32'),
      v: randTensor([3, skv, 24], 63, 'float32'),
      dout: randTensor([3, sq, 24], 64, 'float32'),
      seg: packedSegments(1, sq, skv, 3, 65),
      mask: new MultiHeadMask([new CausalMask([sq, skv], 20), randomMask(sq, skv, 0.4, 66), new LocalMask([sq, skv], [30, 10])]),
      mqa: false,
    };
    const blockSizes: BlockSizes = { blockQ: 48, blockKv: 80, blockKvCompute: 40, blockQDkv: 56, blockKvDkv: 72, blockKvDkvCompute: 24, blockQDq: 40, blockKvDq: 88 };
    for (const isa of ['avx512', 'avx2', 'neon', 'generic']) {
      for (const fused of [false, true]) {
        it(`D=40, Dv=24, blocks 48/80/40 … (${isa}, ${fused ? 'fused' : 'split'})`, function () {
          onIsa(this, isa, '1', () =>
            checkAgainstReference(p, { blockSizes: { ...blockSizes, ...(fused ? { useFusedBwdKernel: true, blockQDq: undefined, blockKvDq: undefined } : {}) }, attnLogitsSoftCap: 7 }, 'float32'));
        });
      }
    }
    for (const dtype of ['bfloat16', 'float16'] as DType[]) {
      for (const [isa, bf16] of [['avx512', '1'], ['avx512', '0'], ['avx2', '1'], ['neon', '1'], ['neon', '0'], ['generic', '1']]) {
        it(`${dtype}, odd sizes, seq-minor k (${isa}${bf16 === '0' ? ', no bf16 dot products' : ''})`, function () {
          const half: Problem = { ...p, q: fromFloat32(toFloat32(p.q), p.q.shape, dtype), k: fromFloat32(toFloat32(p.k), p.k.shape, dtype),
            v: fromFloat32(toFloat32(p.v), p.v.shape, dtype), dout: fromFloat32(toFloat32(p.dout), p.dout.shape, dtype) };
          onIsa(this, isa, bf16, () => checkAgainstReference(half, { blockSizes: { ...blockSizes, kLayout: SM } }, dtype));
        });
      }
    }
    // Rounding to nearest makes the errors of the bf16 P·V products cancel: out's error has no component
    // along out. Truncating P instead pulls out toward zero (-1.5e-4 along out, measured on this problem),
    // which the relative-norm tolerance cannot tell from the rounding noise. Measured with rounding over 5
    // seeds and every path (2026-11-30): |bias| <= 6.9e-6 (the AVX-512 bf16 path), 2.4e-7 on the others.
    for (const [isa, bf16] of [['avx512', '1'], ['avx512', '0'], ['avx2', '1'], ['neon', '1'], ['neon', '0'], ['generic', '1']]) {
      it(`bfloat16 rounding is unbiased: out's error has no component along out (${isa}${bf16 === '0' ? ', no bf16 dot products' : ''})`, function () {
        const [h, s, d] = [4, 512, 64];
        const bf = (seed: number, scale = 1): Tensor => fromFloat32(toFloat32(randTensor([h, s, d], seed, 'float32', scale)), [h, s, d], 'bfloat16');
        const [q, k, v] = [bf(1, 0.5), bf(2), bf(3)];
        const mask = new CausalMask([s, s]);
        onIsa(this, isa, bf16, () => {
          const out = toFloat32(makeSplashMHA(mask, { backend: 'cpu' }).forwardSync(q, k, v) as Tensor);
          const ref = toFloat32(makeSplashMHA(mask, { backend: 'reference' }).forwardSync(q, k, v) as Tensor);
          let along = 0;
          let norm = 0;
          for (let i = 0; i < out.length; i++) {
            along += (out[i] - ref[i]) * ref[i];
            norm += ref[i] * ref[i];
          }
          const bias = along / norm;
          assert.ok(Math.abs(bias) < 3e-5, `out's error along out is ${bias.toExponential(2)} (bound 3e-5, 4x the measured 6.9e-6)`);
        });
      });
    }
  });

  describe('tiny and odd shapes', () => {
    // [heads, kv heads, Sq, Skv, D, Dv, dtype, block]: single elements, odd head dims (bf16 pairs with a
    // zero half), blocks far larger or smaller than the sequences.
    const shapes: [number, number, number, number, number, number, DType, number][] = [
      [1, 1, 1, 1, 1, 1, 'float32', 128],
      [2, 1, 3, 5, 2, 3, 'float32', 2],
      [3, 3, 17, 300, 7, 9, 'float32', 16],
      [1, 1, 70, 90, 33, 17, 'bfloat16', 32],
      [2, 2, 300, 17, 5, 1, 'bfloat16', 512],
      [1, 1, 70, 90, 33, 17, 'float16', 32],
    ];
    for (const [h, hkv, sq, skv, d, dv, dtype, block] of shapes) {
      it(`H${h}/${hkv} ${sq}x${skv} D${d} Dv${dv} ${dtype} block ${block}`, () => {
        const p: Problem = {
          q: randTensor([h, sq, d], 51, dtype, 0.3),
          k: randTensor([hkv, skv, d], 52, dtype),
          v: randTensor([hkv, skv, dv], 53, dtype),
          dout: randTensor([h, sq, dv], 54, dtype),
          mask: new LocalMask([sq, skv], [5, 2]).or(new CausalMask([sq, skv], skv - sq)),
          mqa: false,
        };
        for (const fused of [false, true]) {
          checkAgainstReference(p, { attnLogitsSoftCap: 3, blockSizes: { blockQ: block, blockKv: block, useFusedBwdKernel: fused } }, dtype);
        }
      });
    }
  });

  describe('results never depend on how the work is split', () => {
    const sq = 384;
    const skv = 320;
    const p: Problem = {
      q: randTensor([2, 4, sq, 64], 71, 'float32', 1 / 8),
      k: randTensor([2, 2, skv, 64], 72, 'float32'),
      v: randTensor([2, 2, skv, 32], 73, 'float32'),
      dout: randTensor([2, 4, sq, 32], 74, 'float32'),
      seg: packedSegments(2, sq, skv, 4, 75),
      mask: new MultiHeadMask([new CausalMask([sq, skv]), randomMask(sq, skv, 0.4, 76), new LocalMask([sq, skv], [40, 8]), new FullMask([sq, skv])]),
      mqa: false,
    };
    for (const fused of [false, true]) {
      const blockSizes: BlockSizes = { blockQ: 64, blockKv: 64, blockQDkv: 64, blockKvDkv: 64, useFusedBwdKernel: fused };
      const mode = fused ? 'fused' : 'split';

      it(`1 thread and 2, 3, 5 threads are bitwise identical (${mode} backward)`, () => {
        const one = withEnv({ SPLASH_NUM_THREADS: '1' }, () => run(p, { backend: 'cpu', blockSizes }));
        for (const threads of ['2', '3', '5']) {
          assertSameRun(withEnv({ SPLASH_NUM_THREADS: threads }, () => run(p, { backend: 'cpu', blockSizes })), one, `threads=${threads}`);
        }
      });

      it(`headShards / qSeqShards are bitwise identical (${mode} backward)`, () => {
        const base = run(p, { backend: 'cpu', blockSizes });
        for (const [headShards, qSeqShards] of [[2, 1], [1, 3], [4, 6], [3, 2]]) {
          assertSameRun(run(p, { backend: 'cpu', blockSizes, headShards, qSeqShards }), base, `headShards=${headShards} qSeqShards=${qSeqShards}`);
        }
      });

      it(`segment skipping on and off are bitwise identical (${mode} backward)`, () => {
        // 8 packed documents: most block pairs cannot share a segment and are skipped.
        const docs: Problem = { ...p, seg: packedSegments(2, sq, skv, 8, 77) };
        const on = run(docs, { backend: 'cpu', blockSizes });
        const off = withEnv({ SPLASH_SEGMENT_SKIP: '0' }, () => run(docs, { backend: 'cpu', blockSizes }));
        assertSameRun(on, off, 'skip on/off');
        // And both are right (f32 tolerances as in the grid).
        const ref = run(docs, { backend: 'reference' });
        assertClose(on.res.out, ref.res.out, 1e-5, 'out');
        assertClose(on.grads.dq, ref.grads.dq, 1e-4, 'dq');
        assertClose(on.grads.dk, ref.grads.dk, 1e-4, 'dk');
      });
    }

    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      it(`tile trimming on and off are bitwise identical (${dtype}, split and fused backward)`, () => {
        // Causal, random, local and full heads over 4 packed documents: partial tiles of every kind.
        const typed: Problem = { ...p, q: randTensor([2, 4, sq, 64], 71, dtype, 1 / 8), k: randTensor([2, 2, skv, 64], 72, dtype),
          v: randTensor([2, 2, skv, 32], 73, dtype), dout: randTensor([2, 4, sq, 32], 74, dtype) };
        for (const useFusedBwdKernel of [false, true]) {
          const blockSizes: BlockSizes = { blockQ: 64, blockKv: 128, blockKvCompute: 64, blockQDkv: 96, blockKvDkv: 64, useFusedBwdKernel };
          const on = run(typed, { backend: 'cpu', blockSizes });
          const off = withEnv({ SPLASH_TRIM_TILES: '0' }, () => run(typed, { backend: 'cpu', blockSizes }));
          assertSameRun(on, off, `trim on/off, fused=${useFusedBwdKernel}`);
        }
      });
    }

    it('partial tiles skip their 16 x 16 sub-blocks without an allowed pair', () => {
      // SPLASH_TRIM_TILES=0 shows that the probe can tell: without the skipping the NaN reaches those rows.
      const probe = maskedNanProblem();
      for (const useFusedBwdKernel of [false, true]) {
        const blockSizes: BlockSizes = { blockQ: 128, blockKv: 128, blockQDkv: 128, blockKvDkv: 128, useFusedBwdKernel };
        const on = run(probe, { backend: 'cpu', blockSizes });
        assert.ok(clearOfMaskedNan(on.res.out), `out rows 0-95 finite with trimming (fused=${useFusedBwdKernel})`);
        assert.ok(clearOfMaskedNan(on.grads.dq), `dq rows 0-95 finite with trimming (fused=${useFusedBwdKernel})`);
        const off = withEnv({ SPLASH_TRIM_TILES: '0' }, () => run(probe, { backend: 'cpu', blockSizes }));
        assert.ok(!clearOfMaskedNan(off.res.out) && !clearOfMaskedNan(off.grads.dq), 'without trimming the NaN reaches them');
      }
    });

    it('the fused backward is reproducible run to run', () => {
      const blockSizes: BlockSizes = { blockQ: 64, blockKv: 64, blockQDkv: 64, blockKvDkv: 64, useFusedBwdKernel: true };
      const first = run(p, { backend: 'cpu', blockSizes });
      for (let i = 0; i < 3; i++) assertSameRun(run(p, { backend: 'cpu', blockSizes }), first, `run ${i}`);
    });
  });

  describe('query heads of one kv head share a forward task when q-blocks are short', () => {
    // Decoding reads a few queries against a long cache: a task then takes the query heads of a kv head
    // side by side, and reads each K and V tile once for all of them. No query's arithmetic changes, so
    // the results must not either. Two threads (a task per thread at least twice) fix the expected counts.
    const twoThreads = { SPLASH_NUM_THREADS: '2' };
    const problem = (shape: { batch?: number; heads: number; kvHeads: number; sq: number; skv: number; d: number },
      mask: Mask | MultiHeadMask, dtype: DType, seed: number, seg?: SegmentIds): Problem => {
      const lead = shape.batch === undefined ? [] : [shape.batch];
      return {
        q: randTensor([...lead, shape.heads, shape.sq, shape.d], seed, dtype, 0.3),
        k: randTensor([...lead, shape.kvHeads, shape.skv, shape.d], seed + 1, dtype),
        v: randTensor([...lead, shape.kvHeads, shape.skv, shape.d], seed + 2, dtype),
        dout: randTensor([...lead, shape.heads, shape.sq, shape.d], seed + 3, dtype),
        seg, mask, mqa: false,
      };
    };
    const packedSeg = (batch: number, sq: number, skv: number, docs: number): SegmentIds => ({
      q: Int32Array.from({ length: batch * sq }, (_, i) => Math.floor(((i % sq) * docs) / sq)),
      kv: Int32Array.from({ length: batch * skv }, (_, i) => Math.floor(((i % skv) * docs) / skv)),
    });
    const localHeads = new MultiHeadMask(Array.from({ length: 8 }, (_, h) => new LocalMask([120, 120], [8 + 4 * h, 0])));
    const cases: [string, Problem, BlockSizes, DType, number][] = [
      // [what, problem, block sizes, dtype, heads per task expected with two threads]
      ['decoding, f32: 1 query against 300 keys, 8 heads over 2 kv heads, batch 2',
        problem({ batch: 2, heads: 8, kvHeads: 2, sq: 1, skv: 300, d: 64 }, new FullMask([1, 300]), 'float32', 301),
        { blockQ: 128, blockKv: 128 }, 'float32', 4],
      ['decoding, bf16', problem({ batch: 2, heads: 8, kvHeads: 2, sq: 1, skv: 300, d: 64 }, new FullMask([1, 300]), 'bfloat16', 311),
        { blockQ: 128, blockKv: 128 }, 'bfloat16', 4],
      ['decoding with one batch: fewer heads per task, so that each thread still has two tasks',
        problem({ heads: 8, kvHeads: 2, sq: 1, skv: 300, d: 64 }, new FullMask([1, 300]), 'float32', 321),
        { blockQ: 128, blockKv: 128 }, 'float32', 2],
      ['causal 16-row q-blocks with packed documents (partial tiles, trimmed)',
        problem({ heads: 4, kvHeads: 1, sq: 96, skv: 96, d: 32 }, new CausalMask([96, 96]), 'float32', 331, packedSeg(1, 96, 96, 3)),
        { blockQ: 16, blockKv: 32 }, 'float32', 4],
      ['a local window with 20-row q-blocks (heads straddle the 16-column groups)',
        problem({ heads: 8, kvHeads: 2, sq: 120, skv: 120, d: 32 }, new LocalMask([120, 120], [16, 8]), 'float32', 341),
        { blockQ: 20, blockKv: 40 }, 'float32', 4],
      ['a mask per head: heads of one kv head differ, so each keeps its own task',
        problem({ heads: 8, kvHeads: 2, sq: 120, skv: 120, d: 32 }, localHeads, 'float32', 351),
        { blockQ: 20, blockKv: 40 }, 'float32', 1],
    ];
    for (const [what, p, blockSizes, dtype, heads] of cases) {
      it(`${what}: ${heads} head(s) per task, bitwise as one per task, and the reference's result`, () => {
        const on = withEnv(twoThreads, () => run(p, { backend: 'cpu', blockSizes }));
        withEnv(twoThreads, () => kernelFor(p, { backend: 'cpu', blockSizes }).forwardSync(p.q, p.k, p.v, p.seg));
        assert.equal(lastCpuCallReport()?.headsPerTask, heads, 'heads per task');
        const off = withEnv({ ...twoThreads, SPLASH_PACK_HEADS: '0' }, () => run(p, { backend: 'cpu', blockSizes }));
        assert.equal(lastCpuCallReport()?.headsPerTask, undefined, 'the last call was a backward');
        assertSameRun(on, off, 'heads packed / one per task');
        checkAgainstReference(p, { blockSizes }, dtype);
      });
    }

    it('sinks: each head of a shared task keeps its own', () => {
      const p = problem({ batch: 2, heads: 8, kvHeads: 2, sq: 3, skv: 200, d: 32 }, new FullMask([3, 200]), 'float32', 361);
      const sinks = fromFloat32(Float32Array.from({ length: 8 }, (_, h) => h - 4), [8], 'float32');
      const forward = (backend: 'cpu' | 'reference') =>
        kernelFor(p, { backend }).forwardSync(p.q, p.k, p.v, undefined, { sinks }) as { out: Tensor; logsumexp: Tensor };
      const on = withEnv(twoThreads, () => forward('cpu'));
      assert.equal(lastCpuCallReport()?.headsPerTask, 4, 'heads per task');
      const off = withEnv({ ...twoThreads, SPLASH_PACK_HEADS: '0' }, () => forward('cpu'));
      assertBitwise(on.out, off.out, 'out');
      assertBitwise(on.logsumexp, off.logsumexp, 'logsumexp');
      const ref = forward('reference');
      const tol = tolerances('float32');
      assertClose(on.out, ref.out, tol.out, 'out against the reference');
      assertClose(on.logsumexp, ref.logsumexp, tol.logsumexp, 'logsumexp against the reference');
    });
  });

  describe('async calls', () => {
    const s = 192;
    const mask = new CausalMask([s, s]);
    const kernel = makeSplashMHA(mask, { backend: 'cpu', saveResiduals: true, blockSizes: { blockQ: 64, blockKv: 64 } });
    const inputs = (seed: number) => ({
      q: randTensor([2, s, 64], seed, 'float32', 1 / 8),
      k: randTensor([2, s, 64], seed + 1, 'float32'),
      v: randTensor([2, s, 64], seed + 2, 'float32'),
    });

    it('forward / backward promises agree bitwise with the sync calls', async () => {
      const { q, k, v } = inputs(81);
      const dout = randTensor([2, s, 64], 84, 'float32');
      const a = await kernel.forward(q, k, v);
      const b = kernel.forwardSync(q, k, v);
      assertBitwise(a.out, b.out, 'out');
      assertBitwise(a.logsumexp, b.logsumexp, 'logsumexp');
      const ga = await kernel.backward({ q, k, v, ...a, dout });
      const gb = kernel.backwardSync({ q, k, v, ...b, dout });
      assertBitwise(ga.dq, gb.dq, 'dq');
      assertBitwise(ga.dk, gb.dk, 'dk');
      assertBitwise(ga.dv, gb.dv, 'dv');
    });

    it('every call hands the addon an object of one hidden class (sync, async, forward, backward, fused)', async () => {
      // A call object built with spreads got a hidden class of its own on every call: V8 then built a
      // new map for each call and the addon's property reads went the slow way, which cost several
      // times a small call's kernel. %HaveSameMap and %HasFastProperties are V8's own checks.
      setFlagsFromString('--allow-natives-syntax');
      const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
      const fastProperties = new Function('a', 'return %HasFastProperties(a)') as (a: object) => boolean;
      const entries = ['forwardSync', 'forward', 'backwardSync', 'backward'] as const;
      const native = addon() as unknown as Record<string, (call: object) => unknown>;
      const saved = entries.map((name) => native[name]);
      const seen: [string, object][] = [];
      entries.forEach((name, i) => {
        native[name] = (call: object) => {
          seen.push([name, call]);
          return saved[i].call(native, call);
        };
      });
      try {
        const fused = makeSplashMHA(mask, { backend: 'cpu', saveResiduals: true, blockSizes: { blockQ: 64, blockKv: 64, useFusedBwdKernel: true } });
        const { q, k, v } = inputs(71);
        const dout = randTensor([2, s, 64], 74, 'float32');
        for (const kern of [kernel, fused]) {
          const r = kern.forwardSync(q, k, v);
          await kern.forward(q, k, v);
          await kern.forward(q, k, v, undefined, { signal: new AbortController().signal });
          kern.backwardSync({ q, k, v, ...r, dout });
          await kern.backward({ q, k, v, ...r, dout });
          await kern.backward({ q, k, v, ...r, dout, signal: new AbortController().signal });
        }
      } finally {
        entries.forEach((name, i) => { native[name] = saved[i]; });
      }
      assert.equal(seen.length, 12, 'addon calls seen');
      for (const [name, call] of seen) assert.ok(sameMap(seen[0][1], call), `a ${name} call has a hidden class of its own`);
      // Fields assigned one by one past V8's limit would make the object a dictionary: slow reads again.
      assert.ok(fastProperties(seen[0][1]), 'the call object has fast properties');
    });

    it('inputs on a SharedArrayBuffer are read in place by async calls; any others are copied', async () => {
      const onShared = (t: Tensor): Tensor => {
        const data = new Float32Array(new SharedArrayBuffer(t.data.byteLength));
        data.set(t.data as Float32Array);
        return tensor(data, t.shape.slice(), 'float32');
      };
      const { q, k, v } = inputs(61);
      const dout = randTensor([2, s, 64], 64, 'float32');
      const want = kernel.forwardSync(q, k, v);
      const wantGrads = kernel.backwardSync({ q, k, v, ...want, dout });
      const bytes = (...ts: Tensor[]) => ts.reduce((n, t) => n + t.data.byteLength, 0);

      const copied = await kernel.forward(q, k, v);
      assert.equal(lastCpuCallReport()?.copiedBytes, bytes(q, k, v), 'forward: q, k and v copied');
      const [sq, sk, sv, sdout] = [q, k, v, dout].map(onShared);
      const inPlace = await kernel.forward(sq, sk, sv);
      assert.equal(lastCpuCallReport()?.copiedBytes, 0, 'forward on shared memory: nothing copied');
      for (const r of [copied, inPlace]) {
        assertBitwise(r.out, want.out, 'out');
        assertBitwise(r.logsumexp, want.logsumexp, 'logsumexp');
      }
      // The residuals are ordinary arrays here: only they are copied.
      const g = await kernel.backward({ q: sq, k: sk, v: sv, ...inPlace, dout: sdout });
      assert.equal(lastCpuCallReport()?.copiedBytes, bytes(inPlace.out, inPlace.logsumexp), 'backward: only out and logsumexp copied');
      assertBitwise(g.dq, wantGrads.dq, 'dq');
      assertBitwise(g.dk, wantGrads.dk, 'dk');
      assertBitwise(g.dv, wantGrads.dv, 'dv');
      assert.equal(kernel.forwardSync(sq, sk, sv).out.data.buffer instanceof SharedArrayBuffer, false, 'outputs stay ordinary arrays');
    });

    it('50 concurrent forward() promises each return their own result', async () => {
      const calls = Array.from({ length: 50 }, (_, i) => inputs(1000 + 10 * i));
      const results = await Promise.all(calls.map(({ q, k, v }) => kernel.forward(q, k, v)));
      results.forEach((r, i) => {
        const { q, k, v } = calls[i];
        const want = kernel.forwardSync(q, k, v);
        assertBitwise(r.out, want.out, `out of call ${i}`);
        assertBitwise(r.logsumexp, want.logsumexp, `logsumexp of call ${i}`);
      });
    });

    it('runs in 2 worker threads at once', async function () {
      this.timeout(120_000);
      const tsxCjs = require.resolve('tsx/cjs');
      const lib = path.join(ROOT, 'lib/index.ts');
      const code = `
        const { parentPort, workerData } = require('node:worker_threads');
        require(${JSON.stringify(tsxCjs)});
        const lib = require(${JSON.stringify(lib)});
        const { s, q, k, v } = workerData;
        const kernel = lib.makeSplashMHA(new lib.CausalMask([s, s]), { backend: 'cpu', saveResiduals: true, blockSizes: { blockQ: 64, blockKv: 64 } });
        const t = (x) => lib.tensor(x, [2, s, 64], 'float32');
        const runs = [];
        for (let i = 0; i < 3; i++) runs.push(kernel.forward(t(q), t(k), t(v)));
        Promise.all(runs).then((rs) => parentPort.postMessage({ backend: kernel.backend, outs: rs.map((r) => r.out.data) }));
      `;
      const jobs = [inputs(91), inputs(92)];
      const outs = await Promise.all(jobs.map(({ q, k, v }) => new Promise<{ backend: string; outs: Float32Array[] }>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { s, q: q.data, k: k.data, v: v.data } });
        w.once('message', (m) => { resolve(m); void w.terminate(); });
        w.once('error', reject);
      })));
      outs.forEach((o, i) => {
        assert.equal(o.backend, 'cpu', `worker ${i} backend`);
        const want = kernel.forwardSync(jobs[i].q, jobs[i].k, jobs[i].v).out.data as Float32Array;
        for (const got of o.outs) {
          assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength)),
            `worker ${i}: out differs from the main thread's`);
        }
      });
    });
  });

  describe('masking edge cases', () => {
    it('rows with no allowed key give out = 0, logsumexp = -Infinity and zero gradients', () => {
      const { p, sq, empty } = emptyRowsProblem();
      for (const fused of [false, true]) {
        const cpu = run(p, { backend: 'cpu', blockSizes: { blockQ: 64, blockKv: 64, useFusedBwdKernel: fused } });
        assertEmptyRows(cpu.res, cpu.grads, sq, empty);
      }
      checkAgainstReference(p, { blockSizes: { blockQ: 64, blockKv: 64 } }, 'float32');
    });

    it('a custom maskValue and soft cap match the reference when every block is visited', () => {
      const p = oneBlockCausalProblem();
      for (const fused of [false, true]) {
        checkAgainstReference(p, { maskValue: -3, attnLogitsSoftCap: 4, blockSizes: { blockQ: 128, blockKv: 128, blockKvCompute: 64, useFusedBwdKernel: fused } }, 'float32');
      }
    });

    it('maskValue = -Infinity gives no NaN', () => {
      const s = 130;
      const p: Problem = {
        q: randTensor([1, s, 32], 35, 'float32', 0.3),
        k: randTensor([1, s, 32], 36, 'float32'),
        v: randTensor([1, s, 32], 37, 'float32'),
        dout: randTensor([1, s, 32], 38, 'float32'),
        mask: new CausalMask([s, s]),
        mqa: false,
      };
      checkAgainstReference(p, { maskValue: -Infinity, blockSizes: { blockQ: 64, blockKv: 64 } }, 'float32');
    });
  });

  describe('the addon checks every call against the real buffers', () => {
    const s = 128;
    const d = 32;
    const mask = new CausalMask([s, s]);
    const fwdInfo = processMask(mask, [64, 64]);
    const dkvInfo = processMask(mask, [64, 64], { isDkv: true });
    const f32 = (n: number, seed: number) => randomNormal(n, seed, 0.3);
    const t = (data: Float32Array | Uint16Array, dim = d, seq = s, dtype = 0) =>
      ({ data, dtype, strides: [seq * dim, seq * dim, dim, 1] });
    const forwardCall = (): Record<string, unknown> => ({
      batch: 1, heads: 1, kvHeads: 1, qSeq: s, kvSeq: s, headDim: d, headDimV: d,
      q: t(f32(s * d, 1)), k: t(f32(s * d, 2)), v: t(f32(s * d, 3)),
      out: t(new Float32Array(s * d)), lse: t(new Float32Array(s), 1),
      segmentIdsQ: null, segmentIdsKv: null,
      maskValue: -1e38, softCap: 0, saveLse: true, blockKvCompute: 64, blockKvDkvCompute: 64, fusedBwd: false,
      fwdSchedule: addon().prepareSchedule(fwdInfo), numThreads: 0, headShards: 1,
    });
    const backwardCall = (): Record<string, unknown> => ({
      ...forwardCall(), saveLse: false, fwdSchedule: undefined, dkvSchedule: addon().prepareSchedule(dkvInfo),
      dqSchedule: addon().prepareSchedule(fwdInfo),
      dout: t(f32(s * d, 4)), dq: t(new Float32Array(s * d)), dk: t(new Float32Array(s * d)), dv: t(new Float32Array(s * d)),
    });

    it('a well-formed direct call works (the baseline of the cases below)', () => {
      const call = forwardCall();
      addon().forwardSync(call);
      const lse = (call.lse as { data: Float32Array }).data;
      assert.ok(lse.every((x) => Number.isFinite(x)), 'every lse finite');
      addon().backwardSync(backwardCall());
    });

    // Async entry points check the call before queueing it and throw as the sync ones do (the backends
    // call them inside async functions, so users see a rejection).
    const bad: [string, (c: Record<string, any>) => void, RegExp][] = [
      ['a truncated q', (c) => { c.q.data = c.q.data.subarray(0, s * d - 1); }, /^q\.data: expected at least 4096 elements/],
      ['a truncated output', (c) => { c.out.data = new Float32Array(s * d - 5); }, /^out\.data/],
      ['a short logsumexp', (c) => { c.lse.data = new Float32Array(s - 1); }, /^lse\.data/],
      ['strides reaching past the end', (c) => { c.k.strides = [0, 0, d + 1, 1]; }, /^k\.data/],
      ['an output that overlaps itself', (c) => { c.out.strides = [0, 0, 1, 1]; }, /^out\.strides/],
      ['an output sharing an input buffer', (c) => { c.out.data = c.q.data; }, /^outputs/],
      ['segment ids of the wrong length', (c) => { c.segmentIdsQ = new Int32Array(s - 1); c.segmentIdsKv = new Int32Array(s); }, /^segmentIdsQ/],
      ['a schedule for another sequence length', (c) => { c.qSeq = s + 64; c.q.data = new Float32Array((s + 64) * d); c.out.data = new Float32Array((s + 64) * d); c.lse.data = new Float32Array(s + 64); }, /^fwdSchedule: cut into 2 x 2 blocks/],
      ['a compute block that does not divide the block', (c) => { c.blockKvCompute = 48; }, /^blockKvCompute/],
      ['kv heads that do not divide heads', (c) => { c.heads = 3; c.kvHeads = 2; }, /^kvHeads/],
    ];
    for (const [what, spoil, message] of bad) {
      it(`${what} → RangeError, sync and async`, () => {
        const call = forwardCall();
        spoil(call);
        assert.throws(() => addon().forwardSync(call), (e: unknown) => e instanceof RangeError && message.test(e.message));
        const again = forwardCall();
        spoil(again);
        assert.throws(() => addon().forward(again), (e: unknown) => e instanceof RangeError && message.test(e.message));
      });
    }

    // Schedules are checked once, when the addon takes its copy of a MaskInfo.
    const badSchedules: [string, () => unknown, RegExp][] = [
      ['a column index out of range', () => ({ ...fwdInfo, colIdx: fwdInfo.colIdx.map((x) => x + 5) }), /^maskInfo\.colIdx\[\d+\]: expected an index in \[0, 2\)/],
      ['a row pointer past nnz', () => { const rp = fwdInfo.rowPtr.slice(); rp[rp.length - 1] += 3; return { ...fwdInfo, rowPtr: rp }; }, /^maskInfo\.rowPtr\[\d+\]: expected 3, got 6/],
      ['columns out of order', () => ({ ...fwdInfo, colIdx: Int32Array.from([0, 1, 0]) }), /^maskInfo\.colIdx\[2\]: expected ascending columns/],
      ['a stored-block index out of range', () => ({ ...fwdInfo, colMaskRef: fwdInfo.colMaskRef.map(() => 9) }), /^maskInfo\.colMaskRef\[\d+\]/],
      ['a malformed mask program', () => ({ ...fwdInfo, programs: Int32Array.from([2]), programPtr: Int32Array.from([0, 1]) }), /^maskInfo\.programs: schedule 0's mask program: truncated instruction/],
      ['a head schedule index out of range', () => ({ ...fwdInfo, headSchedule: Int32Array.from([3]) }), /^maskInfo\.headSchedule\[0\]/],
      ['a short colKind', () => ({ ...fwdInfo, colKind: fwdInfo.colKind.subarray(1) }), /^maskInfo\.colKind: expected length 3, got 2/],
      ['q-shard bounds that stop short', () => ({ ...fwdInfo, qShardBounds: Int32Array.from([0, 1]) }), /^maskInfo\.qShardBounds\[1\]: expected 2, got 1/],
    ];
    for (const [what, spoiled, message] of badSchedules) {
      it(`${what} → RangeError from prepareSchedule`, () => {
        assert.throws(() => addon().prepareSchedule(spoiled()), (e: unknown) => e instanceof RangeError && message.test(e.message));
      });
    }

    it('an async call keeps the inputs it reads in place (on a SharedArrayBuffer) alive until it settles', async () => {
      setFlagsFromString('--expose-gc');
      const gc = runInNewContext('gc') as () => void;
      const want = forwardCall();
      addon().forwardSync(want);
      // Long calls first, one per runner the dispatcher may have, so that the calls below wait in its
      // queue while their inputs lose every JavaScript reference and are collected.
      const big = 4096;
      const busy = Array.from({ length: Math.max(2, availableParallelism()) }, () => addon().forward({
        ...forwardCall(), qSeq: big, kvSeq: big, q: t(f32(big * d, 5), d, big), k: t(f32(big * d, 6), d, big),
        v: t(f32(big * d, 7), d, big), out: t(new Float32Array(big * d), d, big), lse: t(new Float32Array(big), 1, big),
        fwdSchedule: addon().prepareSchedule(processMask(new FullMask([big, big]), [64, 64])),
      }));
      const queued = Array.from({ length: 4 }, () => {
        const c = forwardCall();
        for (const name of ['q', 'k', 'v']) {
          const view = c[name] as { data: Float32Array };
          const shared = new Float32Array(new SharedArrayBuffer(view.data.byteLength));
          shared.set(view.data);
          view.data = shared;
        }
        return { out: (c.out as { data: Float32Array }).data, done: addon().forward(c) };
      });
      for (let i = 0; i < 3; i++) gc();
      await new Promise((resolve) => setTimeout(resolve, 20)); // V8 frees collected buffers on its own time
      gc();
      await Promise.all(busy);
      const expected = Buffer.from((want.out as { data: Float32Array }).data.buffer);
      for (const { out, done } of queued) {
        await done;
        assert.ok(Buffer.from(out.buffer).equals(expected), 'out of a call whose inputs were read in place');
      }
    });

    it('a handle that is not a schedule → TypeError', () => {
      const c = forwardCall();
      c.fwdSchedule = fwdInfo;
      assert.throws(() => addon().forwardSync(c), (e: unknown) => e instanceof TypeError && /^fwdSchedule: expected a schedule handle/.test(e.message));
    });

    it('wrong kinds of values → TypeError naming the field', () => {
      const c1 = forwardCall();
      (c1.q as { data: unknown }).data = new Float64Array(s * d);
      assert.throws(() => addon().forwardSync(c1), (e: unknown) => e instanceof TypeError && /^q\.data: expected a Float32Array, got Float64Array/.test(e.message));
      const c2 = forwardCall();
      c2.batch = '1';
      assert.throws(() => addon().forwardSync(c2), (e: unknown) => e instanceof TypeError && /^batch/.test(e.message));
      assert.throws(() => addon().forwardSync(undefined), TypeError);
      const c3 = backwardCall();
      (c3.dk as { data: unknown }).data = new Uint16Array(s * d);
      assert.throws(() => addon().backwardSync(c3), (e: unknown) => e instanceof TypeError && /^dk\.data/.test(e.message));
    });

    it('a truncated backward gradient buffer → RangeError', async () => {
      const c = backwardCall();
      (c.dv as { data: Float32Array }).data = new Float32Array(s * d - 1);
      assert.throws(() => addon().backwardSync(c), (e: unknown) => e instanceof RangeError && /^dv\.data/.test(e.message));
      const c2 = backwardCall();
      c2.dkvSchedule = addon().prepareSchedule(fwdInfo);
      assert.throws(() => addon().backward(c2), (e: unknown) => e instanceof RangeError && /^dkvSchedule\.isDkv: expected true/.test(e.message));
    });
  });
});
