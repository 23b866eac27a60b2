// The JS backend: splash attention's blocked algorithm in plain TypeScript.
//
// It walks the same MaskInfo schedules as the native kernels: empty blocks are
// never visited, full blocks run without mask arithmetic, partial blocks read a
// stored dense block or evaluate the mask program. Memory is O(S·D): only
// per-block scratch tiles are allocated, never an S×S matrix.
//
// Array conventions (they keep every kernel monomorphic for V8):
//   Float32Array = tensor data (inputs decoded once, outputs before encoding),
//   Float64Array = everything the kernels read and write: working copies of q, k, v and dout, score tiles
//   and accumulators. JS arithmetic is double anyway, so accumulating in float64 costs nothing (it
//   measured faster than float32 scratch) and is at least as exact as splash's fp32 accumulators;
//   results are rounded once, when written out.
//
// A call is a plan (plain data: sizes, options, schedule, working copies and outputs) cut into units,
// each of which computes its own output rows, the same way wherever it runs: a (batch, head, q-block)
// row of the forward or of the dq pass, a kv tile of the dk/dv pass. Sync calls run the units in order
// on the calling thread. Async calls run them on worker threads (js-pool.ts) when there is enough work
// and workers can start, else in time slices on the calling thread; the results are bitwise the same.

import type { MaskInfo } from '../mask-info';
import { fillBlockFromProgram } from '../mask-program';
import { fromFloat32, tensor, toFloat32, type DType, type Tensor } from '../tensor';
import { forwardResultShapes, type CallShape } from '../validate';
import type { Backend, BackwardArgs, BackwardResult, CallControl, ForwardArgs, ForwardResult, KernelConfig } from './backend';
import { jsPoolFor } from './js-pool';
import { runInSlices, runToEnd } from './time-slices';
import { TRIM_MASK_VALUE_BELOW, TileRuns } from './tile-runs';

// ---- data in and out --------------------------------------------------------

/** f32 values of a tensor: float32 data is used in place (never written), half types are decoded once. */
function values(t: Tensor): Float32Array {
  return t.dtype === 'float32' ? (t.data as Float32Array) : toFloat32(t);
}

function encode(vals: Float32Array, shape: readonly number[], dtype: DType): Tensor {
  return dtype === 'float32' ? tensor(vals, shape.slice(), 'float32') : fromFloat32(vals, shape, dtype);
}

/** Where a plan's arrays live: the heap for the calling thread alone, SharedArrayBuffers for workers. */
interface Alloc {
  f64(n: number): Float64Array;
  f32(n: number): Float32Array;
  i32(n: number): Int32Array;
}

const heapAlloc: Alloc = {
  f64: (n) => new Float64Array(n),
  f32: (n) => new Float32Array(n),
  i32: (n) => new Int32Array(n),
};

const sharedAlloc: Alloc = {
  f64: (n) => new Float64Array(new SharedArrayBuffer(n * 8)),
  f32: (n) => new Float32Array(new SharedArrayBuffer(n * 4)),
  i32: (n) => new Int32Array(new SharedArrayBuffer(n * 4)),
};

/** An output the caller owns: one on shared memory is copied to the heap (O(S·D)). */
function owned(x: Float32Array): Float32Array {
  return x.buffer instanceof ArrayBuffer ? x : x.slice();
}

// Working copies: the kernels read q, k, v and dout as float64, so every array they touch has one type and
// no conversion happens in an inner loop, and each operand in the layout that puts the dimension the
// kernel streams along at unit stride (k and v transposed where they are the right-hand side of q·kᵀ or
// dout·vᵀ). They cost O(S·D) once per call; qLayout/kLayout/vLayout do not change them.

/** float64 copy of a tensor's values, row-major as given. */
function rowMajor(t: Tensor, alloc: Alloc): Float64Array {
  const x = values(t);
  const y = alloc.f64(x.length);
  y.set(x);
  return y;
}

/** float64 copy with every [seq, dim] slab transposed to [dim, seq]: row c holds feature c of every position. */
function transposed(t: Tensor, slabs: number, seq: number, dim: number, alloc: Alloc): Float64Array {
  const x = values(t);
  const y = alloc.f64(x.length);
  const TILE = 32; // square tiles keep both the reads and the strided writes in cache
  for (let sl = 0; sl < slabs; sl++) {
    const base = sl * seq * dim;
    for (let r0 = 0; r0 < seq; r0 += TILE) {
      const r1 = Math.min(r0 + TILE, seq);
      for (let c0 = 0; c0 < dim; c0 += TILE) {
        const c1 = Math.min(c0 + TILE, dim);
        for (let r = r0; r < r1; r++) {
          const src = base + r * dim;
          for (let c = c0; c < c1; c++) y[base + c * seq + r] = x[src + c];
        }
      }
    }
  }
  return y;
}

/** Segment ids, sinks or logsumexp where the plan's other arrays live (read as they are on the heap). */
function f32Where(x: Float32Array, alloc: Alloc): Float32Array {
  if (alloc === heapAlloc) return x;
  const y = alloc.f32(x.length);
  y.set(x);
  return y;
}

function i32Where(x: Int32Array | null, alloc: Alloc): Int32Array | null {
  if (x === null || alloc === heapAlloc) return x;
  const y = alloc.i32(x.length);
  y.set(x);
  return y;
}

/** Contiguous split of [0, n) into `parts` ranges: [parts + 1] boundaries. */
function splitRange(n: number, parts: number): Int32Array {
  const p = Math.max(1, Math.min(parts, n));
  const b = new Int32Array(p + 1);
  for (let i = 0; i <= p; i++) b[i] = Math.floor((i * n) / p);
  return b;
}

/** The schedule a query head uses (a plain 2-D mask has one schedule for every head). */
function scheduleOf(info: MaskInfo, h: number): number {
  return info.headSchedule[info.heads === 1 ? 0 : h];
}

// ---- masks ---------------------------------------------------------------------

/** Per-call inputs of the mask tile builder. */
interface MaskSource {
  info: MaskInfo;
  segQ: Int32Array | null;
  segKv: Int32Array | null;
}

/**
 * Writes the allowed flags of tile [q0, q1) × [k0, k1) (row stride k1 - k0) into `mt` for schedule entry `e`
 * of schedule `sched`, whose block origin is (qb, kb) in the MaskInfo's block grid. Segment ids (already
 * offset by the batch) are and-ed in. Returns false, leaving `mt` untouched, when every entry is allowed.
 */
function tileMask(
  ms: MaskSource,
  sched: number,
  e: number,
  qb: number,
  kb: number,
  q0: number,
  q1: number,
  k0: number,
  k1: number,
  segQBase: number,
  segKvBase: number,
  mt: Uint8Array,
): boolean {
  const info = ms.info;
  const segQ = ms.segQ;
  const segKv = ms.segKv;
  const full = info.colKind[e] === 2;
  if (full && segQ === null) return false;
  const nq = q1 - q0;
  const nk = k1 - k0;
  if (full) {
    mt.fill(1, 0, nq * nk);
  } else {
    const ref = info.colMaskRef[e];
    if (ref >= 0) {
      // Stored dense block, [blockQ, blockKv] zero-padded; the tile may be a sub-block of it.
      const bkv = info.blockKv;
      const blocks = info.partialMaskBlocks as Uint8Array;
      const base = ref * info.blockQ * bkv + (q0 - qb * info.blockQ) * bkv + (k0 - kb * bkv);
      for (let i = 0; i < nq; i++) {
        const src = base + i * bkv;
        const dst = i * nk;
        for (let j = 0; j < nk; j++) mt[dst + j] = blocks[src + j];
      }
    } else {
      fillBlockFromProgram(info.programs, info.programPtr[sched], info.programPtr[sched + 1], q0, q1, k0, k1, mt);
    }
  }
  if (segQ !== null && segKv !== null) {
    for (let i = 0; i < nq; i++) {
      const sq = segQ[segQBase + q0 + i];
      const dst = i * nk;
      const sk = segKvBase + k0;
      for (let j = 0; j < nk; j++) if (segKv[sk + j] !== sq) mt[dst + j] = 0;
    }
  }
  return true;
}

// ---- micro-kernel ------------------------------------------------------------------

// Every product of the forward and backward is C += W·B with B's rows at unit stride. V8 does not
// vectorise, and each typed-array access costs an index computation and a bounds check, so the speed comes
// from doing many flops per access: an 8 × 4 block of W is held in locals while one pass over j reads
// 4 rows of B and updates 8 rows of C (12 loads and 8 stores for 64 flops; a 2 × 4 block of dot products
// needs 6 loads for 16). Every element of C sees the same arithmetic whichever row block it falls in:
// c += w₀b₀ + w₁b₁ + w₂b₂ + w₃b₃ per group of four k, then c += w·b for each k left over.

/**
 * C[cOff + r·ldc + j] += Σ_k W[wOff + r·wrs + k·wks] · B[bOff + k·ldb + j] for r < nR, k < nK, j < n.
 * (wrs, wks) = (row length, 1) reads W as stored; (1, row length) reads its transpose.
 */
function gemmAcc(
  w: Float64Array, wOff: number, wrs: number, wks: number, nR: number, nK: number,
  b: Float64Array, bOff: number, ldb: number, n: number,
  c: Float64Array, cOff: number, ldc: number,
): void {
  let r = 0;
  for (; r + 8 <= nR; r += 8) gemmAcc8Rows(w, wOff + r * wrs, wrs, wks, nK, b, bOff, ldb, n, c, cOff + r * ldc, ldc);
  for (; r < nR; r++) gemmAccRow(w, wOff + r * wrs, wks, nK, b, bOff, ldb, n, c, cOff + r * ldc);
}

/** gemmAcc for 8 rows of W and C starting at wOff and cOff. */
function gemmAcc8Rows(
  w: Float64Array, wOff: number, wrs: number, wks: number, nK: number,
  b: Float64Array, bOff: number, ldb: number, n: number,
  c: Float64Array, cOff: number, ldc: number,
): void {
  const p0 = wOff, p1 = p0 + wrs, p2 = p1 + wrs, p3 = p2 + wrs, p4 = p3 + wrs, p5 = p4 + wrs, p6 = p5 + wrs, p7 = p6 + wrs;
  const c0 = cOff, c1 = c0 + ldc, c2 = c1 + ldc, c3 = c2 + ldc, c4 = c3 + ldc, c5 = c4 + ldc, c6 = c5 + ldc, c7 = c6 + ldc;
  const kMain = nK - (nK % 4);
  for (let k = 0; k < kMain; k += 4) {
    const k0 = k * wks, k1 = k0 + wks, k2 = k1 + wks, k3 = k2 + wks;
    const w00 = w[p0 + k0], w01 = w[p0 + k1], w02 = w[p0 + k2], w03 = w[p0 + k3];
    const w10 = w[p1 + k0], w11 = w[p1 + k1], w12 = w[p1 + k2], w13 = w[p1 + k3];
    const w20 = w[p2 + k0], w21 = w[p2 + k1], w22 = w[p2 + k2], w23 = w[p2 + k3];
    const w30 = w[p3 + k0], w31 = w[p3 + k1], w32 = w[p3 + k2], w33 = w[p3 + k3];
    const w40 = w[p4 + k0], w41 = w[p4 + k1], w42 = w[p4 + k2], w43 = w[p4 + k3];
    const w50 = w[p5 + k0], w51 = w[p5 + k1], w52 = w[p5 + k2], w53 = w[p5 + k3];
    const w60 = w[p6 + k0], w61 = w[p6 + k1], w62 = w[p6 + k2], w63 = w[p6 + k3];
    const w70 = w[p7 + k0], w71 = w[p7 + k1], w72 = w[p7 + k2], w73 = w[p7 + k3];
    const b0 = bOff + k * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
    for (let j = 0; j < n; j++) {
      const v0 = b[b0 + j], v1 = b[b1 + j], v2 = b[b2 + j], v3 = b[b3 + j];
      c[c0 + j] += w00 * v0 + w01 * v1 + w02 * v2 + w03 * v3;
      c[c1 + j] += w10 * v0 + w11 * v1 + w12 * v2 + w13 * v3;
      c[c2 + j] += w20 * v0 + w21 * v1 + w22 * v2 + w23 * v3;
      c[c3 + j] += w30 * v0 + w31 * v1 + w32 * v2 + w33 * v3;
      c[c4 + j] += w40 * v0 + w41 * v1 + w42 * v2 + w43 * v3;
      c[c5 + j] += w50 * v0 + w51 * v1 + w52 * v2 + w53 * v3;
      c[c6 + j] += w60 * v0 + w61 * v1 + w62 * v2 + w63 * v3;
      c[c7 + j] += w70 * v0 + w71 * v1 + w72 * v2 + w73 * v3;
    }
  }
  if (kMain < nK) {
    for (let i = 0; i < 8; i++) gemmAccTail(w, wOff + i * wrs, wks, kMain, nK, b, bOff, ldb, n, c, cOff + i * ldc);
  }
}

/** gemmAcc for the one row of W and C starting at wOff and cOff. */
function gemmAccRow(
  w: Float64Array, wOff: number, wks: number, nK: number,
  b: Float64Array, bOff: number, ldb: number, n: number,
  c: Float64Array, cOff: number,
): void {
  const kMain = nK - (nK % 4);
  for (let k = 0; k < kMain; k += 4) {
    const k0 = wOff + k * wks;
    const w0 = w[k0], w1 = w[k0 + wks], w2 = w[k0 + 2 * wks], w3 = w[k0 + 3 * wks];
    const b0 = bOff + k * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
    for (let j = 0; j < n; j++) c[cOff + j] += w0 * b[b0 + j] + w1 * b[b1 + j] + w2 * b[b2 + j] + w3 * b[b3 + j];
  }
  gemmAccTail(w, wOff, wks, kMain, nK, b, bOff, ldb, n, c, cOff);
}

/** The k in [k0, nK) of one row, one at a time (head dims and tiles that are not a multiple of 4). */
function gemmAccTail(
  w: Float64Array, wOff: number, wks: number, k0: number, nK: number,
  b: Float64Array, bOff: number, ldb: number, n: number,
  c: Float64Array, cOff: number,
): void {
  for (let k = k0; k < nK; k++) {
    const wk = w[wOff + k * wks];
    const bk = bOff + k * ldb;
    for (let j = 0; j < n; j++) c[cOff + j] += wk * b[bk + j];
  }
}

// ---- forward ---------------------------------------------------------------------

/**
 * Scale, soft cap, mask and one online-softmax step on a score tile (nq × nk): afterwards s holds the
 * unnormalised probabilities exp(logit - m_new), l and m are updated and the acc rows rescaled. `mt` null =
 * all allowed.
 */
function softmaxStep(
  s: Float64Array, nq: number, nk: number, scale: number,
  softCap: number, mt: Uint8Array | null, maskValue: number,
  m: Float64Array, l: Float64Array, any: Uint8Array,
  acc: Float64Array, dv: number,
): void {
  for (let i = 0; i < nq; i++) {
    const si = i * nk;
    if (scale !== 1) for (let j = 0; j < nk; j++) s[si + j] *= scale;
    if (softCap > 0) for (let j = 0; j < nk; j++) s[si + j] = softCap * Math.tanh(s[si + j] / softCap);
    if (mt === null) {
      any[i] = 1;
    } else {
      for (let j = 0; j < nk; j++) {
        if (mt[si + j] === 0) s[si + j] = maskValue;
        else any[i] = 1;
      }
    }
    const mPrev = m[i];
    let mNew = mPrev;
    for (let j = 0; j < nk; j++) if (s[si + j] > mNew) mNew = s[si + j];
    if (mNew === -Infinity) {
      // Only -Infinity logits so far (a maskValue of -Infinity): nothing to add.
      s.fill(0, si, si + nk);
      continue;
    }
    let sum = 0;
    for (let j = 0; j < nk; j++) {
      const e = Math.exp(s[si + j] - mNew);
      s[si + j] = e;
      sum += e;
    }
    const alpha = Math.exp(mPrev - mNew); // 0 on the first visit (mPrev = -Infinity)
    l[i] = l[i] * alpha + sum;
    m[i] = mNew;
    if (alpha !== 1) {
      const ai = i * dv;
      for (let t = 0; t < dv; t++) acc[ai + t] *= alpha;
    }
  }
}

/** Everything a forward reads and writes: plain data, so a worker can run units of it. */
export interface ForwardPlan {
  kind: 'forward';
  batch: number; heads: number; kvHeads: number; sq: number; skv: number; d: number; dv: number;
  bkc: number; scale: number; softCap: number; maskValue: number;
  info: MaskInfo;
  segQ: Int32Array | null; segKv: Int32Array | null; sinks: Float32Array | null;
  q: Float64Array; kT: Float64Array; v: Float64Array;
  out: Float32Array; lse: Float32Array;
}

function forwardPlan(cfg: KernelConfig, shape: CallShape, args: ForwardArgs, alloc: Alloc): ForwardPlan {
  const { batch, heads, kvHeads, qSeqLen: sq, kvSeqLen: skv, headDim: d, headDimV: dv } = shape;
  return {
    kind: 'forward', batch, heads, kvHeads, sq, skv, d, dv,
    bkc: cfg.blockSizes.blockKvCompute, scale: cfg.scale, softCap: cfg.attnLogitsSoftCap ?? 0,
    maskValue: cfg.maskValue, info: cfg.fwdMaskInfo,
    segQ: i32Where(args.segQ, alloc), segKv: i32Where(args.segKv, alloc),
    sinks: args.sinks ? f32Where(args.sinks, alloc) : null,
    q: rowMajor(args.q, alloc),
    kT: transposed(args.k, batch * kvHeads, skv, d, alloc),
    v: rowMajor(args.v, alloc),
    out: alloc.f32(batch * heads * sq * dv),
    lse: alloc.f32(batch * heads * sq),
  };
}

/** Per-block scratch of a forward: the only memory that grows with block size. */
interface ForwardScratch {
  s: Float64Array; mt: Uint8Array; acc: Float64Array; m: Float64Array; l: Float64Array; any: Uint8Array;
  runs: TileRuns;
}

function forwardScratch(p: ForwardPlan): ForwardScratch {
  const bq = p.info.blockQ;
  return {
    s: new Float64Array(bq * p.bkc), mt: new Uint8Array(bq * p.bkc), acc: new Float64Array(bq * p.dv),
    m: new Float64Array(bq), l: new Float64Array(bq), any: new Uint8Array(bq), runs: new TileRuns(bq, p.bkc),
  };
}

/** The runs a tile's products cover: its occupied sub-blocks when it is partial and the mask value is
 *  hugely negative (tile-runs.ts), else the whole tile. */
function productRuns(runs: TileRuns, masked: boolean, maskValue: number, mt: Uint8Array, nq: number, nk: number): TileRuns {
  if (masked && maskValue < TRIM_MASK_VALUE_BELOW) runs.fromMask(mt, nq, nk);
  else runs.whole(nq, nk);
  return runs;
}

/** out and logsumexp of q-block qb of head h in batch b, as steps: one per compute tile. */
function* forwardRow(p: ForwardPlan, t: ForwardScratch, b: number, h: number, qb: number): Generator<void, void, void> {
  const { info, sq, skv, d, dv, bkc } = p;
  const { s, mt, acc, m, l, any } = t;
  const ms: MaskSource = { info, segQ: p.segQ, segKv: p.segKv };
  const bq = info.blockQ;
  const bkv = info.blockKv;
  const sched = scheduleOf(info, h);
  const kvSlab = b * p.kvHeads + Math.floor(h / (p.heads / p.kvHeads));
  const kTBase = kvSlab * d * skv;
  const vBase = kvSlab * skv * dv;
  const q0 = qb * bq;
  const q1 = Math.min(q0 + bq, sq);
  const nq = q1 - q0;
  const qOff = ((b * p.heads + h) * sq + q0) * d;
  // A sink enters as a first key with logit s_h and no value: m = s_h, l = 1, acc = 0.
  const sink = p.sinks === null ? -Infinity : p.sinks[h];
  m.fill(sink);
  l.fill(p.sinks === null ? 0 : 1);
  any.fill(0);
  acc.fill(0);
  const row = sched * info.rowsPerSchedule + qb;
  for (let e = info.rowPtr[row]; e < info.rowPtr[row + 1]; e++) {
    const kb = info.colIdx[e];
    const kbEnd = Math.min((kb + 1) * bkv, skv);
    for (let k0 = kb * bkv; k0 < kbEnd; k0 += bkc) {
      const k1 = Math.min(k0 + bkc, kbEnd);
      const nk = k1 - k0;
      const masked = tileMask(ms, sched, e, qb, kb, q0, q1, k0, k1, b * sq, b * skv, mt);
      const { rows, rowCount } = productRuns(t.runs, masked, p.maskValue, mt, nq, nk);
      s.fill(0, 0, nq * nk);
      for (let r = 0; r < 4 * rowCount; r += 4) { // s = q·kᵀ over each run of q rows and its keys
        const first = rows[r], count = rows[r + 1], lo = rows[r + 2], hi = rows[r + 3];
        gemmAcc(p.q, qOff + first * d, d, 1, count, d, p.kT, kTBase + k0 + lo, skv, hi - lo, s, first * nk + lo, nk);
      }
      softmaxStep(s, nq, nk, p.scale, p.softCap, masked ? mt : null, p.maskValue, m, l, any, acc, dv);
      rowRunsTimes(s, nk, t.runs, p.v, vBase + k0 * dv, dv, acc, 0); // acc += p·v over the same runs
      yield;
    }
  }
  // Normalise; a row with no allowed key gives out = 0 and logsumexp = its sink (-Infinity without).
  const rowBase = (b * p.heads + h) * sq + q0;
  for (let i = 0; i < nq; i++) {
    const o = (rowBase + i) * dv;
    if (any[i] === 0) {
      p.lse[rowBase + i] = sink;
      continue; // out is already 0
    }
    const inv = 1 / l[i];
    for (let c = 0; c < dv; c++) p.out[o + c] = acc[i * dv + c] * inv;
    p.lse[rowBase + i] = m[i] + Math.log(l[i]);
  }
}

function forwardResult(p: ForwardPlan, shape: CallShape, args: ForwardArgs): ForwardResult {
  const shapes = forwardResultShapes(shape);
  return {
    out: encode(owned(p.out), shapes.out, args.q.dtype),
    logsumexp: tensor(owned(p.lse), shapes.logsumexp, 'float32'),
  };
}

// ---- backward ----------------------------------------------------------------------

/**
 * Turns a tile of q·k dots into probabilities and dp into the gradient of the dots, in place:
 * p = exp(logit - lse) with logit = cap(scale · dot) (masked logits are maskValue, a row with lse =
 * -Infinity has p = 0), ds = scale · p·(dp - di)·(1 - tanh²) where allowed, 0 where masked (a masked logit
 * is a constant, so no gradient reaches q or k).
 */
function gradTile(
  s: Float64Array, dp: Float64Array, nq: number, nk: number, scale: number,
  softCap: number, mt: Uint8Array | null, maskValue: number,
  lse: Float32Array, di: Float64Array, rowOff: number,
): void {
  for (let i = 0; i < nq; i++) {
    const si = i * nk;
    const li = lse[rowOff + i];
    if (li === -Infinity) {
      s.fill(0, si, si + nk);
      dp.fill(0, si, si + nk);
      continue;
    }
    const dii = di[rowOff + i];
    for (let j = 0; j < nk; j++) {
      const x = si + j;
      if (mt !== null && mt[x] === 0) {
        s[x] = Math.exp(maskValue - li); // 0 for the default maskValue
        dp[x] = 0;
        continue;
      }
      const z = scale * s[x];
      if (softCap > 0) {
        const th = Math.tanh(z / softCap);
        const p = Math.exp(softCap * th - li);
        s[x] = p;
        dp[x] = scale * p * (dp[x] - dii) * (1 - th * th);
      } else {
        const p = Math.exp(z - li);
        s[x] = p;
        dp[x] = scale * p * (dp[x] - dii);
      }
    }
  }
}

/** di = rowsum(out · dout) per (batch, head, row): splash's residual-based delta. */
function rowDots(out: Float32Array, dout: Float32Array, rows: number, dv: number): Float64Array {
  const di = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * dv;
    let acc = 0;
    for (let t = 0; t < dv; t++) acc += out[o + t] * dout[o + t];
    di[r] = acc;
  }
  return di;
}

/** Everything a backward reads and writes: plain data, so a worker can run units of it. */
export interface BackwardPlan {
  kind: 'backward';
  batch: number; heads: number; kvHeads: number; sq: number; skv: number; d: number; dv: number;
  bkcDkv: number; scale: number; softCap: number; maskValue: number;
  /** null when the fused backward computes dq in the dk/dv pass. */
  dqInfo: MaskInfo | null;
  dkvInfo: MaskInfo;
  segQ: Int32Array | null; segKv: Int32Array | null;
  // s = q·kᵀ and dp = dout·vᵀ read k and v transposed; dq += ds·k reads k as stored.
  q: Float64Array; k: Float64Array; kT: Float64Array; vT: Float64Array; dout: Float64Array;
  lse: Float32Array; di: Float64Array;
  /** The fused backward's dq accumulator (every row, across kv blocks); null for the split backward. */
  dq: Float64Array | null;
  dqOut: Float32Array; dkOut: Float32Array; dvOut: Float32Array;
}

function backwardPlan(cfg: KernelConfig, shape: CallShape, args: BackwardArgs, alloc: Alloc): BackwardPlan {
  const { batch, heads, kvHeads, qSeqLen: sq, kvSeqLen: skv, headDim: d, headDimV: dv } = shape;
  const rows = batch * heads * sq;
  const di = alloc.f64(rows);
  di.set(rowDots(values(args.out), values(args.dout), rows, dv));
  const fused = cfg.dqMaskInfo === null;
  return {
    kind: 'backward', batch, heads, kvHeads, sq, skv, d, dv,
    bkcDkv: cfg.blockSizes.blockKvDkvCompute, scale: cfg.scale, softCap: cfg.attnLogitsSoftCap ?? 0,
    maskValue: cfg.maskValue, dqInfo: cfg.dqMaskInfo, dkvInfo: cfg.dkvMaskInfo,
    segQ: i32Where(args.segQ, alloc), segKv: i32Where(args.segKv, alloc),
    q: rowMajor(args.q, alloc),
    k: rowMajor(args.k, alloc),
    kT: transposed(args.k, batch * kvHeads, skv, d, alloc),
    vT: transposed(args.v, batch * kvHeads, skv, dv, alloc),
    dout: rowMajor(args.dout, alloc),
    lse: f32Where(values(args.logsumexp), alloc),
    di,
    dq: fused ? alloc.f64(rows * d) : null,
    dqOut: alloc.f32(fused ? 0 : rows * d),
    dkOut: alloc.f32(batch * kvHeads * skv * d),
    dvOut: alloc.f32(batch * kvHeads * skv * dv),
  };
}

/** Per-tile scratch of a backward. */
interface BackwardScratch {
  s: Float64Array; dp: Float64Array; mt: Uint8Array; dqAcc: Float64Array; dkAcc: Float64Array; dvAcc: Float64Array;
  runs: TileRuns;
}

function backwardScratch(p: BackwardPlan): BackwardScratch {
  const maxQ = Math.max(p.dkvInfo.blockQ, p.dqInfo?.blockQ ?? 0);
  const maxKv = Math.max(p.bkcDkv, p.dqInfo?.blockKv ?? 0);
  return {
    s: new Float64Array(maxQ * maxKv), dp: new Float64Array(maxQ * maxKv), mt: new Uint8Array(maxQ * maxKv),
    dqAcc: new Float64Array(maxQ * p.d), dkAcc: new Float64Array(p.bkcDkv * p.d), dvAcc: new Float64Array(p.bkcDkv * p.dv),
    runs: new TileRuns(maxQ, maxKv),
  };
}

/**
 * The backward's two tiles for schedule entry e (block (qb, kb) of schedule sched): queries [q0, q1), which
 * start at row row0 of the (batch, head) rows, against keys [k0, k1) of kv slab kvSlab in batch b. Builds the
 * tile mask and its runs (t.runs), computes s = q·kᵀ and dp = dout·vᵀ over the runs (zeros elsewhere, which
 * gradTile masks), then turns them into p and ds in place. Returns the runs the products with p and ds use.
 */
function gradientTiles(p: BackwardPlan, t: BackwardScratch, ms: MaskSource, sched: number, e: number, qb: number,
  kb: number, q0: number, q1: number, k0: number, k1: number, b: number, row0: number, kvSlab: number): TileRuns {
  const { d, dv, sq, skv } = p;
  const nq = q1 - q0;
  const nk = k1 - k0;
  const masked = tileMask(ms, sched, e, qb, kb, q0, q1, k0, k1, b * sq, b * skv, t.mt);
  const { rows, rowCount } = productRuns(t.runs, masked, p.maskValue, t.mt, nq, nk);
  t.s.fill(0, 0, nq * nk);
  t.dp.fill(0, 0, nq * nk);
  for (let r = 0; r < 4 * rowCount; r += 4) {
    const first = rows[r], count = rows[r + 1], lo = rows[r + 2], hi = rows[r + 3];
    gemmAcc(p.q, (row0 + first) * d, d, 1, count, d, p.kT, kvSlab * d * skv + k0 + lo, skv, hi - lo, t.s, first * nk + lo, nk);
    gemmAcc(p.dout, (row0 + first) * dv, dv, 1, count, dv, p.vT, kvSlab * dv * skv + k0 + lo, skv, hi - lo, t.dp,
      first * nk + lo, nk);
  }
  gradTile(t.s, t.dp, nq, nk, p.scale, p.softCap, masked ? t.mt : null, p.maskValue, p.lse, p.di, row0);
  return t.runs;
}

/** acc[first + i] += tile[first + i, lo..hi) · B[lo..hi) for each run of the tile's rows (p·v, ds·k). */
function rowRunsTimes(tile: Float64Array, nk: number, runs: TileRuns, b: Float64Array, bOff: number, width: number,
  acc: Float64Array, accOff: number): void {
  const { rows, rowCount } = runs;
  for (let r = 0; r < 4 * rowCount; r += 4) {
    const first = rows[r], count = rows[r + 1], lo = rows[r + 2], hi = rows[r + 3];
    gemmAcc(tile, first * nk + lo, nk, 1, count, hi - lo, b, bOff + lo * width, width, width, acc, accOff + first * width, width);
  }
}

/** dq of q-block qb of head h in batch b (split backward), as steps: one per kv block. */
function* dqRow(p: BackwardPlan, t: BackwardScratch, b: number, h: number, qb: number): Generator<void, void, void> {
  const info = p.dqInfo as MaskInfo;
  const { sq, skv, d } = p;
  const { dp, dqAcc } = t;
  const ms: MaskSource = { info, segQ: p.segQ, segKv: p.segKv };
  const bq = info.blockQ;
  const bkv = info.blockKv;
  const sched = scheduleOf(info, h);
  const kvSlab = b * p.kvHeads + Math.floor(h / (p.heads / p.kvHeads));
  const q0 = qb * bq;
  const q1 = Math.min(q0 + bq, sq);
  const nq = q1 - q0;
  const rowOff = (b * p.heads + h) * sq + q0;
  dqAcc.fill(0, 0, nq * d);
  const row = sched * info.rowsPerSchedule + qb;
  for (let e = info.rowPtr[row]; e < info.rowPtr[row + 1]; e++) {
    const kb = info.colIdx[e];
    const k0 = kb * bkv;
    const k1 = Math.min(k0 + bkv, skv);
    const nk = k1 - k0;
    const runs = gradientTiles(p, t, ms, sched, e, qb, kb, q0, q1, k0, k1, b, rowOff, kvSlab);
    rowRunsTimes(dp, nk, runs, p.k, (kvSlab * skv + k0) * d, d, dqAcc, 0); // dq += ds·k
    yield;
  }
  const o = rowOff * d;
  for (let x = 0; x < nq * d; x++) p.dqOut[o + x] = dqAcc[x];
}

/**
 * dk and dv of the compute tile of keys from k0 in kv-block kb of kv head kvh in batch b, summed over the
 * group's query heads and their q-blocks in one fixed order (so shards cannot change them), as steps: one
 * per q block. The fused backward also adds the tile's share to dq.
 */
function* dkvTile(p: BackwardPlan, t: BackwardScratch, b: number, kvh: number, kb: number, k0: number): Generator<void, void, void> {
  const info = p.dkvInfo;
  const { sq, skv, d, dv } = p;
  const { s, dp, dkAcc, dvAcc } = t;
  const ms: MaskSource = { info, segQ: p.segQ, segKv: p.segKv };
  const bq = info.blockQ;
  const group = p.heads / p.kvHeads;
  const kvSlab = b * p.kvHeads + kvh;
  const k1 = Math.min(k0 + p.bkcDkv, (kb + 1) * info.blockKv, skv);
  const nk = k1 - k0;
  const kOff = (kvSlab * skv + k0) * d;
  dkAcc.fill(0);
  dvAcc.fill(0);
  for (let h = kvh * group; h < (kvh + 1) * group; h++) {
    const sched = scheduleOf(info, h);
    const row = sched * info.rowsPerSchedule + kb;
    for (let e = info.rowPtr[row]; e < info.rowPtr[row + 1]; e++) {
      const qb = info.colIdx[e];
      const q0 = qb * bq;
      const q1 = Math.min(q0 + bq, sq);
      const rowOff = (b * p.heads + h) * sq + q0;
      const runs = gradientTiles(p, t, ms, sched, e, qb, kb, q0, q1, k0, k1, b, rowOff, kvSlab);
      const { cols, colCount } = runs;
      for (let r = 0; r < 4 * colCount; r += 4) { // each run of keys over the q rows that reach it
        const first = cols[r], count = cols[r + 1], lo = cols[r + 2], hi = cols[r + 3];
        gemmAcc(s, lo * nk + first, 1, nk, count, hi - lo, p.dout, (rowOff + lo) * dv, dv, dv, dvAcc, first * dv, dv); // dv += pᵀ·dout
        gemmAcc(dp, lo * nk + first, 1, nk, count, hi - lo, p.q, (rowOff + lo) * d, d, d, dkAcc, first * d, d); // dk += dsᵀ·q
      }
      if (p.dq !== null) rowRunsTimes(dp, nk, runs, p.k, kOff, d, p.dq, rowOff * d); // dq += ds·k
      yield;
    }
  }
  for (let x = 0; x < nk * d; x++) p.dkOut[kOff + x] = dkAcc[x];
  const vo = (kvSlab * skv + k0) * dv;
  for (let x = 0; x < nk * dv; x++) p.dvOut[vo + x] = dvAcc[x];
}

/** Every dk/dv tile of kv head kvh in batch b, in order: the fused backward's unit, because each of its
 *  dq rows collects a share from every kv tile and must add them in the same order wherever it runs. */
function* dkvSlab(p: BackwardPlan, t: BackwardScratch, b: number, kvh: number): Generator<void, void, void> {
  const info = p.dkvInfo;
  for (let kb = 0; kb < info.rowsPerSchedule; kb++) {
    const kbEnd = Math.min((kb + 1) * info.blockKv, p.skv);
    for (let k0 = kb * info.blockKv; k0 < kbEnd; k0 += p.bkcDkv) yield* dkvTile(p, t, b, kvh, kb, k0);
  }
}

function backwardResult(p: BackwardPlan, args: BackwardArgs): BackwardResult {
  return {
    dq: encode(p.dq !== null ? Float32Array.from(p.dq) : owned(p.dqOut), args.q.shape, args.q.dtype),
    dk: encode(owned(p.dkOut), args.k.shape, args.k.dtype),
    dv: encode(owned(p.dvOut), args.v.shape, args.v.dtype),
  };
}

// ---- units: the pieces a call is cut into --------------------------------------------

export type Plan = ForwardPlan | BackwardPlan;
export type Scratch = ForwardScratch | BackwardScratch;

/** Ints per unit in a unit list: [kind, batch, head or kv head, q-block or first key]. */
export const UNIT_INTS = 4;
const FWD_ROW = 0; // forwardRow(batch, head, q-block)
const DQ_ROW = 1; // dqRow(batch, head, q-block)
const DKV_TILE = 2; // dkvTile(batch, kv head, first key of the compute tile)
const DKV_SLAB = 3; // dkvSlab(batch, kv head)

/** (batch, head, q-block) units in shard order; shards only order the work. */
function rowUnits(kind: number, info: MaskInfo, batch: number, heads: number, headShards: number, out: number[]): void {
  const headBounds = splitRange(heads, headShards);
  const qBounds = info.qShardBounds;
  for (let b = 0; b < batch; b++) {
    for (let hs = 0; hs + 1 < headBounds.length; hs++) {
      for (let qs = 0; qs + 1 < qBounds.length; qs++) {
        for (let h = headBounds[hs]; h < headBounds[hs + 1]; h++) {
          for (let qb = qBounds[qs]; qb < qBounds[qs + 1]; qb++) out.push(kind, b, h, qb);
        }
      }
    }
  }
}

/** The units of a plan, in the order a sync call runs them. */
export function planUnits(p: Plan, headShards: number): Int32Array {
  const u: number[] = [];
  if (p.kind === 'forward') {
    rowUnits(FWD_ROW, p.info, p.batch, p.heads, headShards, u);
  } else {
    if (p.dqInfo !== null) rowUnits(DQ_ROW, p.dqInfo, p.batch, p.heads, headShards, u);
    const info = p.dkvInfo;
    for (let b = 0; b < p.batch; b++) {
      for (let kvh = 0; kvh < p.kvHeads; kvh++) {
        if (p.dq !== null) {
          u.push(DKV_SLAB, b, kvh, 0);
          continue;
        }
        for (let kb = 0; kb < info.rowsPerSchedule; kb++) {
          const kbEnd = Math.min((kb + 1) * info.blockKv, p.skv);
          for (let k0 = kb * info.blockKv; k0 < kbEnd; k0 += p.bkcDkv) u.push(DKV_TILE, b, kvh, k0);
        }
      }
    }
  }
  return Int32Array.from(u);
}

export function makeScratch(p: Plan): Scratch {
  return p.kind === 'forward' ? forwardScratch(p) : backwardScratch(p);
}

/** Unit i of a unit list, as steps. */
export function runUnit(p: Plan, t: Scratch, units: Int32Array, i: number): Generator<void, void, void> {
  const o = i * UNIT_INTS;
  const kind = units[o];
  const b = units[o + 1];
  const x = units[o + 2];
  const y = units[o + 3];
  if (p.kind === 'forward') return forwardRow(p, t as ForwardScratch, b, x, y);
  const bt = t as BackwardScratch;
  if (kind === DQ_ROW) return dqRow(p, bt, b, x, y);
  if (kind === DKV_TILE) return dkvTile(p, bt, b, x, Math.floor(y / p.dkvInfo.blockKv), y);
  return dkvSlab(p, bt, b, x);
}

/** Every unit of a plan in order, as steps. */
function* allUnits(p: Plan, headShards: number): Generator<void, void, void> {
  const units = planUnits(p, headShards);
  const t = makeScratch(p);
  for (let i = 0; i < units.length / UNIT_INTS; i++) yield* runUnit(p, t, units, i);
}

/** Roughly the flops of a call's visited blocks: what decides whether workers are worth their start. */
function callWork(shape: CallShape, info: MaskInfo, products: number): number {
  const { batch, heads, qSeqLen, kvSeqLen, headDim, headDimV } = shape;
  return products * batch * heads * qSeqLen * kvSeqLen * (headDim + headDimV) * info.stats.density;
}

/** Runs a call: on worker threads when it is large enough and they can start, else in time slices. */
async function runAsync(work: number, makePlan: (alloc: Alloc) => Plan, headShards: number, signal?: AbortSignal): Promise<Plan> {
  const pool = await jsPoolFor(work);
  const p = makePlan(pool === null ? heapAlloc : sharedAlloc);
  if (pool === null) {
    await runInSlices(allUnits(p, headShards), signal);
  } else {
    const units = planUnits(p, headShards);
    await pool.run(p, units, units.length / UNIT_INTS, signal);
  }
  return p;
}

export const jsBackend: Backend = {
  name: 'js',
  sinks: 'forward',
  // 128 × 128 tiles keep q, k, v and score tiles in L2; 64 and 256 measured within ±10% on bench/js.ts.
  defaultBlockSize: () => 128,
  forwardSync: (cfg, shape, args) => {
    const p = forwardPlan(cfg, shape, args, heapAlloc);
    runToEnd(allUnits(p, cfg.headShards));
    return forwardResult(p, shape, args);
  },
  backwardSync: (cfg, shape, args) => {
    const p = backwardPlan(cfg, shape, args, heapAlloc);
    runToEnd(allUnits(p, cfg.headShards));
    return backwardResult(p, args);
  },
  forward: async (cfg, shape, args, control?: CallControl) => {
    const work = callWork(shape, cfg.fwdMaskInfo, 2);
    const p = await runAsync(work, (alloc) => forwardPlan(cfg, shape, args, alloc), cfg.headShards, control?.signal);
    return forwardResult(p as ForwardPlan, shape, args);
  },
  backward: async (cfg, shape, args, control?: CallControl) => {
    const work = callWork(shape, cfg.dkvMaskInfo, 5);
    const p = await runAsync(work, (alloc) => backwardPlan(cfg, shape, args, alloc), cfg.headShards, control?.signal);
    return backwardResult(p as BackwardPlan, args);
  },
};
