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

import type { MaskInfo } from '../mask-info';
import { fillBlockFromProgram } from '../mask-program';
import { fromFloat32, tensor, toFloat32, type DType, type Tensor } from '../tensor';
import { forwardResultShapes, type CallShape } from '../validate';
import type { Backend, BackwardArgs, BackwardResult, ForwardArgs, ForwardResult, KernelConfig } from './backend';
import { runInSlices, runToEnd } from './time-slices';

// ---- data in and out --------------------------------------------------------

/** f32 values of a tensor: float32 data is used in place (never written), half types are decoded once. */
function values(t: Tensor): Float32Array {
  return t.dtype === 'float32' ? (t.data as Float32Array) : toFloat32(t);
}

function encode(vals: Float32Array, shape: readonly number[], dtype: DType): Tensor {
  return dtype === 'float32' ? tensor(vals, shape.slice(), 'float32') : fromFloat32(vals, shape, dtype);
}

// Working copies: the kernels read q, k, v and dout as float64, so every array they touch has one type and
// no conversion happens in an inner loop, and each operand in the layout that puts the dimension the
// kernel streams along at unit stride (k and v transposed where they are the right-hand side of q·kᵀ or
// dout·vᵀ). They cost O(S·D) once per call; qLayout/kLayout/vLayout do not change them.

/** float64 copy of a tensor's values, row-major as given. */
function rowMajor(t: Tensor): Float64Array {
  return new Float64Array(values(t));
}

/** float64 copy with every [seq, dim] slab transposed to [dim, seq]: row c holds feature c of every position. */
function transposed(t: Tensor, slabs: number, seq: number, dim: number): Float64Array {
  const x = values(t);
  const y = new Float64Array(x.length);
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

/** The forward as steps: it yields after every compute tile, so an async caller can stop between tiles. */
function* forwardSteps(cfg: KernelConfig, shape: CallShape, args: ForwardArgs): Generator<void, ForwardResult, void> {
  const { batch, heads, kvHeads, qSeqLen: sq, kvSeqLen: skv, headDim: d, headDimV: dv } = shape;
  const bs = cfg.blockSizes;
  const info = cfg.fwdMaskInfo;
  const bq = info.blockQ;
  const bkv = info.blockKv;
  const bkc = bs.blockKvCompute;
  const group = heads / kvHeads;
  const softCap = cfg.attnLogitsSoftCap ?? 0;
  const maskValue = cfg.maskValue;
  const ms: MaskSource = { info, segQ: args.segQ, segKv: args.segKv };
  const sinks = args.sinks ?? null;

  const q = rowMajor(args.q);
  const kT = transposed(args.k, batch * kvHeads, skv, d);
  const v = rowMajor(args.v);

  const out = new Float32Array(batch * heads * sq * dv);
  const lse = new Float32Array(batch * heads * sq);

  // Per-block scratch: the only memory that grows with block size.
  const s = new Float64Array(bq * bkc);
  const mt = new Uint8Array(bq * bkc);
  const acc = new Float64Array(bq * dv);
  const m = new Float64Array(bq);
  const l = new Float64Array(bq);
  const any = new Uint8Array(bq);

  // Shards only order the work; every (head, q-block) is computed the same way.
  const headBounds = splitRange(heads, cfg.headShards);
  const qBounds = info.qShardBounds;
  for (let b = 0; b < batch; b++) {
    for (let hs = 0; hs + 1 < headBounds.length; hs++) {
      for (let qs = 0; qs + 1 < qBounds.length; qs++) {
        for (let h = headBounds[hs]; h < headBounds[hs + 1]; h++) {
          const sched = scheduleOf(info, h);
          const kvSlab = b * kvHeads + Math.floor(h / group);
          const kTBase = kvSlab * d * skv;
          const vBase = kvSlab * skv * dv;
          for (let qb = qBounds[qs]; qb < qBounds[qs + 1]; qb++) {
            const q0 = qb * bq;
            const q1 = Math.min(q0 + bq, sq);
            const nq = q1 - q0;
            const qOff = ((b * heads + h) * sq + q0) * d;
            // A sink enters as a first key with logit s_h and no value: m = s_h, l = 1, acc = 0.
            const sink = sinks === null ? -Infinity : sinks[h];
            m.fill(sink);
            l.fill(sinks === null ? 0 : 1);
            any.fill(0);
            acc.fill(0);
            const row = sched * info.rowsPerSchedule + qb;
            for (let e = info.rowPtr[row]; e < info.rowPtr[row + 1]; e++) {
              const kb = info.colIdx[e];
              const kbEnd = Math.min((kb + 1) * bkv, skv);
              for (let k0 = kb * bkv; k0 < kbEnd; k0 += bkc) {
                const k1 = Math.min(k0 + bkc, kbEnd);
                const nk = k1 - k0;
                s.fill(0, 0, nq * nk);
                gemmAcc(q, qOff, d, 1, nq, d, kT, kTBase + k0, skv, nk, s, 0, nk); // s = q·kᵀ
                const masked = tileMask(ms, sched, e, qb, kb, q0, q1, k0, k1, b * sq, b * skv, mt);
                softmaxStep(s, nq, nk, cfg.scale, softCap, masked ? mt : null, maskValue, m, l, any, acc, dv);
                gemmAcc(s, 0, nk, 1, nq, nk, v, vBase + k0 * dv, dv, dv, acc, 0, dv); // acc += p·v
                yield;
              }
            }
            // Normalise; a row with no allowed key gives out = 0 and logsumexp = its sink (-Infinity without).
            const rowBase = (b * heads + h) * sq + q0;
            for (let i = 0; i < nq; i++) {
              const o = (rowBase + i) * dv;
              if (any[i] === 0) {
                lse[rowBase + i] = sink;
                continue; // out is already 0
              }
              const inv = 1 / l[i];
              for (let t = 0; t < dv; t++) out[o + t] = acc[i * dv + t] * inv;
              lse[rowBase + i] = m[i] + Math.log(l[i]);
            }
          }
        }
      }
    }
  }

  const shapes = forwardResultShapes(shape);
  return {
    out: encode(out, shapes.out, args.q.dtype),
    logsumexp: tensor(lse, shapes.logsumexp, 'float32'),
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

/** The backward's two nq × nk tiles for q rows at qOff (dout rows at doOff) and keys [k0, k0 + nk) of kv
 *  slab kvSlab: s = q·kᵀ and dp = dout·vᵀ. */
function scoreTiles(
  q: Float64Array, qOff: number, dout: Float64Array, doOff: number, nq: number,
  kT: Float64Array, vT: Float64Array, kvSlab: number, k0: number, nk: number, skv: number, d: number, dv: number,
  s: Float64Array, dp: Float64Array,
): void {
  s.fill(0, 0, nq * nk);
  gemmAcc(q, qOff, d, 1, nq, d, kT, kvSlab * d * skv + k0, skv, nk, s, 0, nk);
  dp.fill(0, 0, nq * nk);
  gemmAcc(dout, doOff, dv, 1, nq, dv, vT, kvSlab * dv * skv + k0, skv, nk, dp, 0, nk);
}

function toF32(x: Float64Array): Float32Array {
  return Float32Array.from(x);
}

/** The backward as steps: it yields after every tile pair (see forwardSteps). */
function* backwardSteps(cfg: KernelConfig, shape: CallShape, args: BackwardArgs): Generator<void, BackwardResult, void> {
  const { batch, heads, kvHeads, qSeqLen: sq, kvSeqLen: skv, headDim: d, headDimV: dv } = shape;
  const bs = cfg.blockSizes;
  const group = heads / kvHeads;
  const softCap = cfg.attnLogitsSoftCap ?? 0;
  const maskValue = cfg.maskValue;
  const fused = cfg.dqMaskInfo === null;
  const dkvInfo = cfg.dkvMaskInfo;
  const dqInfo = cfg.dqMaskInfo;

  const lse = values(args.logsumexp);
  const di = rowDots(values(args.out), values(args.dout), batch * heads * sq, dv);
  // s = q·kᵀ and dp = dout·vᵀ read k and v transposed; dq += ds·k reads k as stored; v is not needed so.
  const q = rowMajor(args.q);
  const k = rowMajor(args.k);
  const kT = transposed(args.k, batch * kvHeads, skv, d);
  const vT = transposed(args.v, batch * kvHeads, skv, dv);
  const dout = rowMajor(args.dout);

  const maxQ = Math.max(dkvInfo.blockQ, dqInfo?.blockQ ?? 0);
  const maxKv = Math.max(bs.blockKvDkvCompute, dqInfo?.blockKv ?? 0);

  const s = new Float64Array(maxQ * maxKv);
  const dp = new Float64Array(maxQ * maxKv);
  const mt = new Uint8Array(maxQ * maxKv);
  // The fused pass accumulates dq for every row across kv blocks; the split dq pass needs one block of it.
  const dq = new Float64Array(fused ? q.length : maxQ * d);
  const dqOut = new Float32Array(q.length);
  const dkOut = new Float32Array(k.length);
  const dvOut = new Float32Array(vT.length);

  // ---- dq pass (split backward): rows are q-blocks, like the forward ----
  if (dqInfo !== null) {
    const bq = dqInfo.blockQ;
    const bkv = dqInfo.blockKv;
    const ms: MaskSource = { info: dqInfo, segQ: args.segQ, segKv: args.segKv };
    const headBounds = splitRange(heads, cfg.headShards);
    const qBounds = dqInfo.qShardBounds;
    for (let b = 0; b < batch; b++) {
      for (let hs = 0; hs + 1 < headBounds.length; hs++) {
        for (let qs = 0; qs + 1 < qBounds.length; qs++) {
          for (let h = headBounds[hs]; h < headBounds[hs + 1]; h++) {
            const sched = scheduleOf(dqInfo, h);
            const kvSlab = b * kvHeads + Math.floor(h / group);
            for (let qb = qBounds[qs]; qb < qBounds[qs + 1]; qb++) {
              const q0 = qb * bq;
              const q1 = Math.min(q0 + bq, sq);
              const nq = q1 - q0;
              const rowOff = (b * heads + h) * sq + q0;
              const qOff = rowOff * d;
              dq.fill(0, 0, nq * d);
              const row = sched * dqInfo.rowsPerSchedule + qb;
              for (let e = dqInfo.rowPtr[row]; e < dqInfo.rowPtr[row + 1]; e++) {
                const kb = dqInfo.colIdx[e];
                const k0 = kb * bkv;
                const k1 = Math.min(k0 + bkv, skv);
                const nk = k1 - k0;
                scoreTiles(q, qOff, dout, rowOff * dv, nq, kT, vT, kvSlab, k0, nk, skv, d, dv, s, dp);
                const masked = tileMask(ms, sched, e, qb, kb, q0, q1, k0, k1, b * sq, b * skv, mt);
                gradTile(s, dp, nq, nk, cfg.scale, softCap, masked ? mt : null, maskValue, lse, di, rowOff);
                gemmAcc(dp, 0, nk, 1, nq, nk, k, (kvSlab * skv + k0) * d, d, d, dq, 0, d); // dq += ds·k
                yield;
              }
              const o = rowOff * d;
              for (let x = 0; x < nq * d; x++) dqOut[o + x] = dq[x];
            }
          }
        }
      }
    }
  }

  // ---- dk/dv pass (and dq when fused): rows are kv-blocks, entries q-blocks ----
  // dk/dv of a kv tile are summed over the group's query heads and the q-blocks in one fixed order,
  // so shards cannot change them.
  {
    const bq = dkvInfo.blockQ;
    const bkv = dkvInfo.blockKv;
    const bkc = bs.blockKvDkvCompute;
    const ms: MaskSource = { info: dkvInfo, segQ: args.segQ, segKv: args.segKv };
    const dkAcc = new Float64Array(bkc * d);
    const dvAcc = new Float64Array(bkc * dv);
    for (let b = 0; b < batch; b++) {
      for (let kvh = 0; kvh < kvHeads; kvh++) {
        const kvSlab = b * kvHeads + kvh;
        for (let kb = 0; kb < dkvInfo.rowsPerSchedule; kb++) {
          const kbEnd = Math.min((kb + 1) * bkv, skv);
          for (let k0 = kb * bkv; k0 < kbEnd; k0 += bkc) {
            const k1 = Math.min(k0 + bkc, kbEnd);
            const nk = k1 - k0;
            const kOff = (kvSlab * skv + k0) * d;
            dkAcc.fill(0);
            dvAcc.fill(0);
            for (let h = kvh * group; h < (kvh + 1) * group; h++) {
              const sched = scheduleOf(dkvInfo, h);
              const row = sched * dkvInfo.rowsPerSchedule + kb;
              for (let e = dkvInfo.rowPtr[row]; e < dkvInfo.rowPtr[row + 1]; e++) {
                const qb = dkvInfo.colIdx[e];
                const q0 = qb * bq;
                const q1 = Math.min(q0 + bq, sq);
                const nq = q1 - q0;
                const rowOff = (b * heads + h) * sq + q0;
                const qOff = rowOff * d;
                scoreTiles(q, qOff, dout, rowOff * dv, nq, kT, vT, kvSlab, k0, nk, skv, d, dv, s, dp);
                const masked = tileMask(ms, sched, e, qb, kb, q0, q1, k0, k1, b * sq, b * skv, mt);
                gradTile(s, dp, nq, nk, cfg.scale, softCap, masked ? mt : null, maskValue, lse, di, rowOff);
                gemmAcc(s, 0, 1, nk, nk, nq, dout, rowOff * dv, dv, dv, dvAcc, 0, dv); // dv += pᵀ·dout
                gemmAcc(dp, 0, 1, nk, nk, nq, q, qOff, d, d, dkAcc, 0, d); // dk += dsᵀ·q
                if (fused) gemmAcc(dp, 0, nk, 1, nq, nk, k, kOff, d, d, dq, qOff, d); // dq += ds·k
                yield;
              }
            }
            const ko = (kvSlab * skv + k0) * d;
            for (let x = 0; x < nk * d; x++) dkOut[ko + x] = dkAcc[x];
            const vo = (kvSlab * skv + k0) * dv;
            for (let x = 0; x < nk * dv; x++) dvOut[vo + x] = dvAcc[x];
          }
        }
      }
    }
  }

  return {
    dq: encode(fused ? toF32(dq) : dqOut, args.q.shape, args.q.dtype),
    dk: encode(dkOut, args.k.shape, args.k.dtype),
    dv: encode(dvOut, args.v.shape, args.v.dtype),
  };
}

export const jsBackend: Backend = {
  name: 'js',
  sinks: 'forward',
  // 128 × 128 tiles keep q, k, v and score tiles in L2; 64 and 256 measured within ±10% on bench/js.ts.
  defaultBlockSize: () => 128,
  forwardSync: (cfg, shape, args) => runToEnd(forwardSteps(cfg, shape, args)),
  backwardSync: (cfg, shape, args) => runToEnd(backwardSteps(cfg, shape, args)),
  // Async calls run in slices of a few milliseconds between which the event loop runs and an aborted
  // signal stops the call.
  forward: (cfg, shape, args, control) => runInSlices(forwardSteps(cfg, shape, args), control?.signal),
  backward: (cfg, shape, args, control) => runInSlices(backwardSteps(cfg, shape, args), control?.signal),
};
