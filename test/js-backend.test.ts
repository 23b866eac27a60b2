// The JS backend against the float64 reference: JAX's splash test grid scaled to CPU (a seeded sample
// that covers every value of every axis), plus shards, block sizes, layouts, fully masked rows and memory.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import {
  CausalMask,
  ChunkedCausalMask,
  FullMask,
  LocalMask,
  MultiHeadMask,
  QKVLayout,
  makeSplashMHA,
  toFloat32,
  type BlockSizes,
  type Mask,
  type SegmentIds,
  type Tensor,
} from '../lib/index';
import { seededRandom } from '../lib/random';
import { benchJs } from '../bench/js';
import { configureJsWorkers } from '../lib/backends/js-pool';
import { assertBitwise, assertClose, kernelFor, relErr, run, type Problem } from './support/compare';
import { assertEmptyRows, clearOfMaskedNan, emptyRowsProblem, maskedNanProblem, oneBlockCausalProblem } from './support/edge-cases';
import { BATCHES, BLOCKS, DIMS, HEADS, SEQS, SOFT_CAPS, cycler, randTensor, randomMask } from './support/grid';

type DT = 'float32' | 'bfloat16';

// ---- data ------------------------------------------------------------------------------------

/** Contiguous segments at the same relative positions in q and kv (so segments overlap), batch-major. */
function segmentIds(batch: number, sq: number, skv: number, seed: number): SegmentIds {
  const rand = seededRandom(seed);
  const q = new Int32Array(batch * sq);
  const kv = new Int32Array(batch * skv);
  for (let b = 0; b < batch; b++) {
    const cuts = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => 0.1 + 0.8 * rand()).sort((x, y) => x - y);
    const id = (pos: number): number => 7 * b + cuts.filter((c) => c <= pos).length;
    for (let i = 0; i < sq; i++) q[b * sq + i] = id(i / sq);
    for (let j = 0; j < skv; j++) kv[b * skv + j] = id(j / skv);
  }
  return { q, kv };
}

const MASK_KINDS = ['causal', 'full', 'random', 'local', 'diagonal', 'chunked', 'or', 'and', 'multihead'] as const;
type MaskKind = (typeof MASK_KINDS)[number];

function makeMask2d(kind: Exclude<MaskKind, 'multihead'>, sq: number, skv: number, rand: () => number): Mask {
  const shape: [number, number] = [sq, skv];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  switch (kind) {
    case 'causal':
      return new CausalMask(shape, pick([0, 0, skv - sq]));
    case 'full':
      return new FullMask(shape);
    case 'random':
      return randomMask(sq, skv, pick([0.1, 0.3, 0.5]), Math.floor(rand() * 1e6));
    case 'local':
      return new LocalMask(shape, pick([[64, 0], [32, 32], [null, 16], [128, null]] as [number | null, number | null][]));
    case 'diagonal':
      return new LocalMask(shape, [0, 0]);
    case 'chunked':
      return new ChunkedCausalMask(shape, pick([64, 96, 128]));
    case 'or':
      // Alternately a computable Or (mask program) and one with a dense operand (stored blocks).
      return rand() < 0.5
        ? new CausalMask(shape).or(new LocalMask(shape, [0, 48]))
        : new CausalMask(shape).or(randomMask(sq, skv, 0.9, Math.floor(rand() * 1e6)));
    case 'and':
      return new CausalMask(shape).and(new LocalMask(shape, [96, null]));
  }
}

function makeMask(kind: MaskKind, heads: number, sq: number, skv: number, rand: () => number): Mask | MultiHeadMask {
  if (kind !== 'multihead') return makeMask2d(kind, sq, skv, rand);
  const perHead = ['causal', 'local', 'full', 'random', 'chunked', 'and'] as const;
  return new MultiHeadMask(Array.from({ length: heads }, (_, h) => makeMask2d(perHead[h % perHead.length], sq, skv, rand)));
}

// ---- the sampled grid --------------------------------------------------------------------------

const DTYPES: DT[] = ['float32', 'bfloat16'];
/** B·H·Sq·Skv·D above this is scaled down so the reference stays fast (1024² fits with H = 1, D = 64). */
const MAX_COST = 1024 * 1024 * 64;

interface GridCase {
  seq: [number, number];
  dim: number;
  heads: [number, number];
  batch: number;
  mask: MaskKind;
  segments: boolean;
  softCap: number | null;
  blocks: BlockSizes;
  dtype: DT;
  seed: number;
}

/** A compute block size from BLOCKS that divides `block`. */
function divisorOf(block: number, rand: () => number): number {
  const options = BLOCKS.filter((x) => block % x === 0);
  return options[Math.floor(rand() * options.length)];
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
  const cases: GridCase[] = [];
  for (let i = 0; i < n; i++) {
    const c: GridCase = {
      seq: seq(),
      dim: dim(),
      heads: heads(),
      batch: batch(),
      mask: mask(),
      segments: seg(),
      softCap: cap(),
      blocks: {},
      dtype: dtype(),
      seed: 1000 + i,
    };
    const isFused = fused();
    const blockKv = block();
    const blockKvDkv = block();
    c.blocks = {
      blockQ: block(),
      blockKv,
      blockKvCompute: divisorOf(blockKv, rand),
      blockQDkv: block(),
      blockKvDkv,
      blockKvDkvCompute: divisorOf(blockKvDkv, rand),
      useFusedBwdKernel: isFused,
      ...(isFused ? {} : { blockQDq: block(), blockKvDq: block() }),
    };
    // Heaviest combos are made smaller: batch first, then head dim, then heads.
    const cost = (): number =>
      Math.max(1, c.batch) * c.heads[0] * c.seq[0] * c.seq[1] * c.dim;
    if (cost() > MAX_COST) c.batch = 0;
    while (cost() > MAX_COST && c.dim > 64) c.dim /= 2;
    if (cost() > MAX_COST) c.heads = c.heads[1] === 0 ? [1, 0] : [1, 1];
    cases.push(c);
  }
  return cases;
}

const GRID = sampleGrid(96, 20240607);

function describeCase(c: GridCase): string {
  const h = c.heads[1] === 0 ? `MQA${c.heads[0]}` : `H${c.heads[0]}/${c.heads[1]}`;
  const b = c.blocks;
  const bs = `bq${b.blockQ} bkv${b.blockKv}/${b.blockKvCompute} dkv${b.blockQDkv}x${b.blockKvDkv}/${b.blockKvDkvCompute}` +
    (b.useFusedBwdKernel ? ' fused' : ` dq${b.blockQDq}x${b.blockKvDq}`);
  return `${c.seq[0]}x${c.seq[1]} D${c.dim} ${h}${c.batch ? ` B${c.batch}` : ''} ${c.mask}` +
    `${c.segments ? ' seg' : ''} cap=${c.softCap ?? 'none'} ${c.dtype} ${bs}`;
}

function makeProblem(c: GridCase): Problem {
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
    seg: c.segments ? segmentIds(Math.max(1, c.batch), sq, skv, c.seed) : undefined,
    mask: makeMask(c.mask, h, sq, skv, rand),
    mqa,
  };
}

// ---- tests ---------------------------------------------------------------------------------------

describe('js backend', function () {
  this.timeout(120_000);

  it('the sampled grid covers every value of every axis', () => {
    const has = <T>(vals: readonly T[], get: (c: GridCase) => T, key = (x: T) => JSON.stringify(x)): void => {
      const seen = new Set(GRID.map((c) => key(get(c))));
      for (const v of vals) assert.ok(seen.has(key(v)), `grid misses ${key(v)}`);
    };
    has(SEQS, (c) => c.seq);
    has(DIMS, (c) => c.dim);
    has(HEADS, (c) => c.heads);
    has(BATCHES, (c) => c.batch);
    has(MASK_KINDS, (c) => c.mask);
    has([false, true], (c) => c.segments);
    has(SOFT_CAPS, (c) => c.softCap);
    has(DTYPES, (c) => c.dtype);
    has([false, true], (c) => c.blocks.useFusedBwdKernel as boolean);
    for (const f of ['blockQ', 'blockKv', 'blockKvCompute', 'blockQDkv', 'blockKvDkv', 'blockKvDkvCompute', 'blockQDq', 'blockKvDq'] as const) {
      has(BLOCKS, (c) => c.blocks[f]);
    }
  });

  describe('matches the float64 reference on the sampled splash grid', () => {
    for (const c of GRID) {
      it(describeCase(c), () => {
        const p = makeProblem(c);
        const js = run(p, { backend: 'js', blockSizes: c.blocks, attnLogitsSoftCap: c.softCap });
        const ref = run(p, { backend: 'reference', attnLogitsSoftCap: c.softCap });
        // Both compute in float64 and round once to the output dtype, in different orders: results can
        // differ only where two float64 sums ~1e-15 apart straddle a rounding boundary, by one ulp of
        // the dtype on those few elements. Measured over this grid (SPLASH_TOL_LOG, 2026-11-30): exactly
        // 0 in all 550 comparisons. The bounds allow a few one-ulp flips: 1e-6 (f32 ulp 6e-8), 1e-3 for
        // bf16 (one flipped element in 4096 gives 6e-5); logsumexp is float32 for every dtype.
        const tol = c.dtype === 'float32' ? 1e-6 : 1e-3;
        assertClose(js.res.out, ref.res.out, tol, 'out');
        assertClose(js.res.logsumexp, ref.res.logsumexp, 1e-6, 'logsumexp');
        assertClose(js.grads.dq, ref.grads.dq, tol, 'dq');
        assertClose(js.grads.dk, ref.grads.dk, tol, 'dk');
        assertClose(js.grads.dv, ref.grads.dv, tol, 'dv');
      });
    }
  });

  describe('work splitting and block sizes', () => {
    const sq = 320;
    const skv = 256;
    const heads = 4;
    const mask = new MultiHeadMask([
      new CausalMask([sq, skv]),
      randomMask(sq, skv, 0.4, 5),
      new LocalMask([sq, skv], [40, 8]),
      new FullMask([sq, skv]),
    ]);
    const p: Problem = {
      q: randTensor([heads, sq, 64], 11, 'float32', 1 / 8),
      k: randTensor([2, skv, 64], 12, 'float32'),
      v: randTensor([2, skv, 32], 13, 'float32'),
      dout: randTensor([heads, sq, 32], 14, 'float32'),
      seg: segmentIds(1, sq, skv, 15),
      mask,
      mqa: false,
    };

    for (const fused of [false, true]) {
      it(`headShards / qSeqShards give bitwise-identical results (${fused ? 'fused' : 'split'} backward)`, () => {
        const blockSizes: BlockSizes = { blockQ: 64, blockKv: 64, blockQDkv: 64, blockKvDkv: 64, useFusedBwdKernel: fused };
        const base = run(p, { backend: 'js', blockSizes });
        for (const [headShards, qSeqShards] of [[2, 1], [1, 3], [4, 5], [2, 2]]) {
          const r = run(p, { backend: 'js', blockSizes, headShards, qSeqShards });
          const tag = `headShards=${headShards} qSeqShards=${qSeqShards}`;
          assertBitwise(r.res.out, base.res.out, `out ${tag}`);
          assertBitwise(r.res.logsumexp, base.res.logsumexp, `logsumexp ${tag}`);
          assertBitwise(r.grads.dq, base.grads.dq, `dq ${tag}`);
          assertBitwise(r.grads.dk, base.grads.dk, `dk ${tag}`);
          assertBitwise(r.grads.dv, base.grads.dv, `dv ${tag}`);
        }
      });
    }

    it('block-size choices agree within tolerance (default maskValue)', () => {
      const configs: BlockSizes[] = [
        { blockQ: 64, blockKv: 64, blockQDkv: 64, blockKvDkv: 64, blockQDq: 64, blockKvDq: 64 },
        { blockQ: 128, blockKv: 256, blockKvCompute: 64, blockQDkv: 256, blockKvDkv: 128, blockKvDkvCompute: 64, blockQDq: 256, blockKvDq: 128 },
        { blockQ: 256, blockKv: 128, blockKvCompute: 128, blockQDkv: 64, blockKvDkv: 256, useFusedBwdKernel: true },
        { blockQ: 512, blockKv: 512, blockQDkv: 512, blockKvDkv: 512, useFusedBwdKernel: true },
      ];
      const base = run(p, { backend: 'js', blockSizes: configs[0] });
      for (const blockSizes of configs.slice(1)) {
        const r = run(p, { backend: 'js', blockSizes });
        // Only the order of f32-rounded partial sums changes between block shapes.
        assertClose(r.res.out, base.res.out, 1e-5, 'out');
        assertClose(r.res.logsumexp, base.res.logsumexp, 1e-5, 'logsumexp');
        assertClose(r.grads.dq, base.grads.dq, 1e-5, 'dq');
        assertClose(r.grads.dk, base.grads.dk, 1e-5, 'dk');
        assertClose(r.grads.dv, base.grads.dv, 1e-5, 'dv');
      }
    });

    it('forward (async) and forwardSync agree bitwise', async () => {
      const kernel = kernelFor(p, { backend: 'js' });
      assert.equal(kernel.backend, 'js');
      const a = await kernel.forward(p.q, p.k, p.v, p.seg);
      const b = kernel.forwardSync(p.q, p.k, p.v, p.seg);
      assertBitwise(a.out, b.out, 'out');
      assertBitwise(a.logsumexp, b.logsumexp, 'logsumexp');
      const ga = await kernel.backward({ q: p.q, k: p.k, v: p.v, segmentIds: p.seg, ...a, dout: p.dout });
      const gb = kernel.backwardSync({ q: p.q, k: p.k, v: p.v, segmentIds: p.seg, ...b, dout: p.dout });
      assertBitwise(ga.dq, gb.dq, 'dq');
      assertBitwise(ga.dk, gb.dk, 'dk');
      assertBitwise(ga.dv, gb.dv, 'dv');
    });

    it('async calls give the sync results bitwise on 1, 2 or 3 worker threads and in slices', async () => {
      for (const fused of [false, true]) {
        const blockSizes: BlockSizes = { blockQ: 64, blockKv: 128, blockKvCompute: 64, blockQDkv: 128, blockKvDkv: 64, useFusedBwdKernel: fused };
        const kernel = kernelFor(p, { backend: 'js', blockSizes, saveResiduals: true });
        const want = kernel.forwardSync(p.q, p.k, p.v, p.seg) as { out: Tensor; logsumexp: Tensor };
        const wantGrads = kernel.backwardSync({ q: p.q, k: p.k, v: p.v, segmentIds: p.seg, ...want, dout: p.dout });
        for (const workers of [1, 2, 3, 0]) {
          // minWork 0: even this small problem goes to the workers.
          const previous = configureJsWorkers({ workers, minWork: 0 });
          try {
            const got = (await kernel.forward(p.q, p.k, p.v, p.seg)) as { out: Tensor; logsumexp: Tensor };
            const grads = await kernel.backward({ q: p.q, k: p.k, v: p.v, segmentIds: p.seg, ...want, dout: p.dout });
            // A pool that could not start sets workers to 0 and the calls run in slices: that must not pass here.
            assert.equal(configureJsWorkers({}).workers, workers, 'the worker threads started');
            const tag = `${workers} workers, ${fused ? 'fused' : 'split'}`;
            assertBitwise(got.out, want.out, `out ${tag}`);
            assertBitwise(got.logsumexp, want.logsumexp, `logsumexp ${tag}`);
            assertBitwise(grads.dq, wantGrads.dq, `dq ${tag}`);
            assertBitwise(grads.dk, wantGrads.dk, `dk ${tag}`);
            assertBitwise(grads.dv, wantGrads.dv, `dv ${tag}`);
          } finally {
            configureJsWorkers(previous);
          }
        }
      }
    });

    it('worker threads do not keep a process alive once its calls are done', () => {
      const script = path.join(__dirname, 'support', 'js-workers-exit.ts');
      const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, `exit status ${r.status} (signal ${r.signal}): ${r.stderr}`);
      assert.match(r.stdout, /^done on 2 workers\n$/);
    });

    it('SEQ_MINOR layouts match HEAD_DIM_MINOR', () => {
      const { HEAD_DIM_MINOR: H, SEQ_MINOR: S } = QKVLayout;
      const base = run(p, { backend: 'js', blockSizes: { blockQ: 128, blockKv: 128, blockKvCompute: 64 } });
      for (const [qLayout, kLayout, vLayout] of [[S, S, S], [S, H, H], [H, S, H], [H, H, S]]) {
        for (const fused of [false, true]) {
          const blockSizes = { blockQ: 128, blockKv: 128, blockKvCompute: 64, qLayout, kLayout, vLayout, useFusedBwdKernel: fused };
          const r = run(p, { backend: 'js', blockSizes });
          // Same math; SEQ_MINOR k/v only change the summation order of the forward dot products.
          const tol = 1e-6;
          assertClose(r.res.out, base.res.out, tol, `out ${qLayout}${kLayout}${vLayout}`);
          assertClose(r.res.logsumexp, base.res.logsumexp, tol, 'logsumexp');
          assertClose(r.grads.dq, base.grads.dq, tol, 'dq');
          assertClose(r.grads.dk, base.grads.dk, tol, 'dk');
          assertClose(r.grads.dv, base.grads.dv, tol, 'dv');
        }
      }
    });
  });

  describe('masking edge cases', () => {
    it('partial tiles skip their 16 x 16 sub-blocks without an allowed pair', () => {
      const probe = maskedNanProblem();
      for (const useFusedBwdKernel of [false, true]) {
        const js = run(probe, { backend: 'js', blockSizes: { blockQ: 128, blockKv: 128, blockQDkv: 128, blockKvDkv: 128, useFusedBwdKernel } });
        assert.ok(clearOfMaskedNan(js.res.out), `out rows 0-95 finite (fused=${useFusedBwdKernel})`);
        assert.ok(clearOfMaskedNan(js.grads.dq), `dq rows 0-95 finite (fused=${useFusedBwdKernel})`);
      }
    });

    it('rows with no allowed key give out = 0, logsumexp = -Infinity and zero gradients', () => {
      const { p, sq, empty } = emptyRowsProblem();
      for (const fused of [false, true]) {
        const js = run(p, { backend: 'js', blockSizes: { blockQ: 64, blockKv: 64, useFusedBwdKernel: fused } });
        const ref = run(p, { backend: 'reference' });
        assertEmptyRows(js.res, js.grads, sq, empty);
        // Everything else as in the reference (f32 tolerances as in the grid).
        assertClose(js.res.out, ref.res.out, 1e-5, 'out');
        assertClose(js.res.logsumexp, ref.res.logsumexp, 1e-5, 'logsumexp');
        assertClose(js.grads.dq, ref.grads.dq, 1e-4, 'dq');
        assertClose(js.grads.dk, ref.grads.dk, 1e-4, 'dk');
        assertClose(js.grads.dv, ref.grads.dv, 1e-4, 'dv');
      }
    });

    it('a custom maskValue matches the reference when every block is visited', () => {
      const p = oneBlockCausalProblem();
      const opts = { maskValue: -3, attnLogitsSoftCap: 4 };
      const js = run(p, { ...opts, backend: 'js', blockSizes: { blockQ: 128, blockKv: 128, blockKvCompute: 64 } });
      const ref = run(p, { ...opts, backend: 'reference' });
      // f32 summation order only.
      assertClose(js.res.out, ref.res.out, 1e-5, 'out');
      assertClose(js.res.logsumexp, ref.res.logsumexp, 1e-5, 'logsumexp');
      assertClose(js.grads.dq, ref.grads.dq, 1e-4, 'dq');
      assertClose(js.grads.dk, ref.grads.dk, 1e-4, 'dk');
      assertClose(js.grads.dv, ref.grads.dv, 1e-4, 'dv');
    });
  });

  describe('memory', () => {
    it('a 1×8192×64 causal forward allocates no S×S array', function () {
      this.timeout(120_000);
      // 8192 makes the point of 32768 (an S×S array would dwarf the bound) in a sixteenth of the time.
      const s = 8192;
      const d = 64;
      const q = randTensor([1, s, d], 41, 'float32', 1 / 8);
      const k = randTensor([1, s, d], 42, 'float32');
      const v = randTensor([1, s, d], 43, 'float32');
      const kernel = makeSplashMHA(new CausalMask([s, s]), { backend: 'js', saveResiduals: true });
      const before = process.memoryUsage().arrayBuffers;
      const { out, logsumexp } = kernel.forwardSync(q, k, v);
      const grown = process.memoryUsage().arrayBuffers - before;
      // Outputs are 2.1 MB; a float32 S×S array would be 268 MB. Allow 64 MB for MaskInfo and scratch.
      assert.ok(grown < 64 * 2 ** 20, `array buffers grew by ${(grown / 2 ** 20).toFixed(1)} MB`);
      // Spot-check a few rows against a direct float64 computation.
      const qf = toFloat32(q);
      const kf = toFloat32(k);
      const vf = toFloat32(v);
      const of = toFloat32(out);
      const lf = toFloat32(logsumexp);
      for (const i of [0, 1, 4097, 6000, s - 1]) {
        const logits = new Float64Array(i + 1);
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          let x = 0;
          for (let t = 0; t < d; t++) x += qf[i * d + t] * kf[j * d + t];
          logits[j] = x;
          max = Math.max(max, x);
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += Math.exp(logits[j] - max);
        const lse = max + Math.log(sum);
        // f32 accumulation over up to 8192 keys.
        assert.ok(Math.abs(lf[i] - lse) <= 1e-5 * Math.max(1, Math.abs(lse)), `lse[${i}]: ${lf[i]} vs ${lse}`);
        const want = new Float64Array(d);
        for (let j = 0; j <= i; j++) {
          const pj = Math.exp(logits[j] - lse);
          for (let t = 0; t < d; t++) want[t] += pj * vf[j * d + t];
        }
        const err = relErr(of.subarray(i * d, (i + 1) * d), Float32Array.from(want), `out[${i}]`);
        assert.ok(err <= 1e-5, `out[${i}]: relative-norm error ${err}`); // f32 accumulation, as above
      }
    });
  });

  it('bench/js.ts still runs (tiny size)', async () => {
    const rows = await benchJs({ heads: 1, seq: 128, dim: 32, repeats: 1, passes: ['fwd', 'bwd'] });
    assert.deepEqual(rows.map((r) => `${r.mask} ${r.pass}`), ['full fwd', 'full bwd', 'causal fwd', 'causal bwd']);
    for (const r of rows) assert.ok(r.gflops > 0 && Number.isFinite(r.gflops), `${r.mask}: ${r.gflops} GFLOP/s`);
  });
});
