// The JS backend: splash attention's blocked algorithm in plain TypeScript.
//
// It walks the same MaskInfo schedules as the native kernels: empty blocks are
// never visited, full blocks run without mask arithmetic, partial blocks read a
// stored dense block or evaluate the mask program. Memory is O(S·D): only
// per-block scratch tiles are allocated, never an S×S matrix.
//
// Array conventions (they keep every kernel monomorphic for V8):
//   Float32Array = tensor data (inputs decoded once, outputs before encoding),
//   Float64Array = score tiles and accumulators. JS arithmetic is double anyway, so accumulating in
//   float64 costs nothing (it measured faster than float32 scratch) and is at least as exact as
//   splash's fp32 accumulators; results are rounded once, when written out.

import type { MaskInfo } from '../mask-info';
import { fillBlockFromProgram } from '../mask-program';
import { fromFloat32, tensor, toFloat32, type DType, type Tensor } from '../tensor';
import { QKVLayout, forwardResultShapes, type CallShape } from '../validate';
import type { Backend, BackwardArgs, BackwardResult, ForwardArgs, ForwardResult, KernelConfig } from './backend';
import { toSeqMinor } from './marshal';
import { runInSlices, runToEnd } from './time-slices';

// ---- data in and out --------------------------------------------------------

/** f32 values of a tensor: float32 data is used in place (never written), half types are decoded once. */
function values(t: Tensor): Float32Array {
  return t.dtype === 'float32' ? (t.data as Float32Array) : toFloat32(t);
}

function encode(vals: Float32Array, shape: readonly number[], dtype: DType): Tensor {
  return dtype === 'float32' ? tensor(vals, shape.slice(), 'float32') : fromFloat32(vals, shape, dtype);
}

/**
 * One of q/k/v held in its physical layout. `arr` is what the row-major kernels read: the data itself
 * for HEAD_DIM_MINOR, or a tile that `load` gathers rows into for SEQ_MINOR.
 */
class Operand {
  readonly src: Float32Array;
  readonly arr: Float32Array;
  private readonly seqMinor: boolean;

  constructor(
    data: Float32Array,
    layout: QKVLayout,
    slabs: number,
    private readonly seq: number,
    private readonly dim: number,
    tileRows: number,
  ) {
    this.seqMinor = layout === QKVLayout.SEQ_MINOR;
    this.src = this.seqMinor ? toSeqMinor(data, slabs, seq, dim) : data;
    this.arr = this.seqMinor ? new Float32Array(tileRows * dim) : this.src;
  }

  /** Makes rows [r0, r1) of slab `slab` readable row-major in `arr`; returns the offset of row r0. */
  load(slab: number, r0: number, r1: number): number {
    const { seq, dim } = this;
    const base = slab * seq * dim;
    if (!this.seqMinor) return base + r0 * dim;
    const src = this.src;
    const dst = this.arr;
    const n = r1 - r0;
    for (let c = 0; c < dim; c++) {
      const s = base + c * seq + r0;
      for (let r = 0; r < n; r++) dst[r * dim + c] = src[s + r];
    }
    return 0;
  }
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

// ---- micro-kernels -----------------------------------------------------------------

// Register blocking (2 × 4 for dot products, 4 × 4 for accumulations) reuses every loaded value
// several times; V8 does not vectorise, so this is where most of the speed comes from.

/** S[i, j] = a_i · b_j for row-major rows a (nA × d at aOff) and b (nB × d at bOff). */
function dotRows(
  a: Float32Array, aOff: number, nA: number,
  b: Float32Array, bOff: number, nB: number,
  d: number, s: Float64Array,
): void {
  let i = 0;
  for (; i + 2 <= nA; i += 2) {
    const a0 = aOff + i * d;
    const a1 = a0 + d;
    const r0 = i * nB;
    const r1 = r0 + nB;
    let j = 0;
    for (; j + 4 <= nB; j += 4) {
      const b0 = bOff + j * d;
      const b1 = b0 + d;
      const b2 = b1 + d;
      const b3 = b2 + d;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let t = 0; t < d; t++) {
        const x = a[a0 + t];
        const y = a[a1 + t];
        const c0 = b[b0 + t], c1 = b[b1 + t], c2 = b[b2 + t], c3 = b[b3 + t];
        s00 += x * c0; s01 += x * c1; s02 += x * c2; s03 += x * c3;
        s10 += y * c0; s11 += y * c1; s12 += y * c2; s13 += y * c3;
      }
      s[r0 + j] = s00; s[r0 + j + 1] = s01; s[r0 + j + 2] = s02; s[r0 + j + 3] = s03;
      s[r1 + j] = s10; s[r1 + j + 1] = s11; s[r1 + j + 2] = s12; s[r1 + j + 3] = s13;
    }
    for (; j < nB; j++) {
      const bj = bOff + j * d;
      let x = 0, y = 0;
      for (let t = 0; t < d; t++) {
        const c = b[bj + t];
        x += a[a0 + t] * c;
        y += a[a1 + t] * c;
      }
      s[r0 + j] = x;
      s[r1 + j] = y;
    }
  }
  if (i < nA) {
    // An odd last row (ragged blocks only).
    const ai = aOff + i * d;
    for (let j = 0; j < nB; j++) {
      const bj = bOff + j * d;
      let x = 0;
      for (let t = 0; t < d; t++) x += a[ai + t] * b[bj + t];
      s[i * nB + j] = x;
    }
  }
}

/**
 * C[cOff + r·d + :] += Σ_k P[r·prs + k·pks] · b[bOff + k·d + :] for r < nR, k < nK. With (prs, pks) =
 * (nB, 1) this is P·B; with (1, nB) it is Pᵀ·B, so one kernel serves p·v, ds·k, pᵀ·dout and dsᵀ·q.
 */
function accum(
  p: Float64Array, prs: number, pks: number, nR: number, nK: number,
  b: Float32Array, bOff: number, d: number,
  c: Float64Array, cOff: number,
): void {
  let r = 0;
  for (; r + 4 <= nR; r += 4) {
    const p0 = r * prs;
    const p1 = p0 + prs;
    const p2 = p1 + prs;
    const p3 = p2 + prs;
    const c0 = cOff + r * d;
    const c1 = c0 + d;
    const c2 = c1 + d;
    const c3 = c2 + d;
    let k = 0;
    for (; k + 4 <= nK; k += 4) {
      const k0 = k * pks;
      const k1 = k0 + pks;
      const k2 = k1 + pks;
      const k3 = k2 + pks;
      const w00 = p[p0 + k0], w01 = p[p0 + k1], w02 = p[p0 + k2], w03 = p[p0 + k3];
      const w10 = p[p1 + k0], w11 = p[p1 + k1], w12 = p[p1 + k2], w13 = p[p1 + k3];
      const w20 = p[p2 + k0], w21 = p[p2 + k1], w22 = p[p2 + k2], w23 = p[p2 + k3];
      const w30 = p[p3 + k0], w31 = p[p3 + k1], w32 = p[p3 + k2], w33 = p[p3 + k3];
      const b0 = bOff + k * d;
      const b1 = b0 + d;
      const b2 = b1 + d;
      const b3 = b2 + d;
      for (let t = 0; t < d; t++) {
        const v0 = b[b0 + t], v1 = b[b1 + t], v2 = b[b2 + t], v3 = b[b3 + t];
        c[c0 + t] += w00 * v0 + w01 * v1 + w02 * v2 + w03 * v3;
        c[c1 + t] += w10 * v0 + w11 * v1 + w12 * v2 + w13 * v3;
        c[c2 + t] += w20 * v0 + w21 * v1 + w22 * v2 + w23 * v3;
        c[c3 + t] += w30 * v0 + w31 * v1 + w32 * v2 + w33 * v3;
      }
    }
    for (; k < nK; k++) {
      const kk = k * pks;
      const w0 = p[p0 + kk], w1 = p[p1 + kk], w2 = p[p2 + kk], w3 = p[p3 + kk];
      const bk = bOff + k * d;
      for (let t = 0; t < d; t++) {
        const v = b[bk + t];
        c[c0 + t] += w0 * v;
        c[c1 + t] += w1 * v;
        c[c2 + t] += w2 * v;
        c[c3 + t] += w3 * v;
      }
    }
  }
  for (; r < nR; r++) {
    // Last rows of a tile whose row count is not a multiple of 4.
    const pr = r * prs;
    const cr = cOff + r * d;
    for (let k = 0; k < nK; k++) {
      const w = p[pr + k * pks];
      if (w === 0) continue;
      const bk = bOff + k * d;
      for (let t = 0; t < d; t++) c[cr + t] += w * b[bk + t];
    }
  }
}

/** S[i, j] = a_i · bT[:, j] where bT is SEQ_MINOR ([d, ld], columns from bOff): outer products over d. */
function dotCols(
  a: Float32Array, aOff: number, nA: number,
  bT: Float32Array, bOff: number, ld: number, nB: number,
  d: number, s: Float64Array,
): void {
  for (let i = 0; i < nA; i++) {
    const ai = aOff + i * d;
    const si = i * nB;
    s.fill(0, si, si + nB);
    for (let t = 0; t < d; t++) {
      const x = a[ai + t];
      const bt = bOff + t * ld;
      for (let j = 0; j < nB; j++) s[si + j] += x * bT[bt + j];
    }
  }
}

/** C[i·d + t] += Σ_j P[i, j] · bT[t, j] where bT is SEQ_MINOR ([d, ld], columns from bOff). */
function accumCols(
  p: Float64Array, nA: number, nB: number,
  bT: Float32Array, bOff: number, ld: number, d: number,
  c: Float64Array,
): void {
  for (let i = 0; i < nA; i++) {
    const pi = i * nB;
    const ci = i * d;
    for (let t = 0; t < d; t++) {
      const bt = bOff + t * ld;
      let acc = 0;
      for (let j = 0; j < nB; j++) acc += p[pi + j] * bT[bt + j];
      c[ci + t] += acc;
    }
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

  const q = new Operand(values(args.q), bs.qLayout, batch * heads, sq, d, bq);
  // k and v stay in their physical layout; SEQ_MINOR ones feed the column kernels directly.
  const kSeqMinor = bs.kLayout === QKVLayout.SEQ_MINOR;
  const vSeqMinor = bs.vLayout === QKVLayout.SEQ_MINOR;
  const kRaw = values(args.k);
  const vRaw = values(args.v);
  const k = kSeqMinor ? toSeqMinor(kRaw, batch * kvHeads, skv, d) : kRaw;
  const v = vSeqMinor ? toSeqMinor(vRaw, batch * kvHeads, skv, dv) : vRaw;

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
          const kBase = kvSlab * skv * d;
          const vBase = kvSlab * skv * dv;
          for (let qb = qBounds[qs]; qb < qBounds[qs + 1]; qb++) {
            const q0 = qb * bq;
            const q1 = Math.min(q0 + bq, sq);
            const nq = q1 - q0;
            const qOff = q.load(b * heads + h, q0, q1);
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
                if (kSeqMinor) dotCols(q.arr, qOff, nq, k, kBase + k0, skv, nk, d, s);
                else dotRows(q.arr, qOff, nq, k, kBase + k0 * d, nk, d, s);
                const masked = tileMask(ms, sched, e, qb, kb, q0, q1, k0, k1, b * sq, b * skv, mt);
                softmaxStep(s, nq, nk, cfg.scale, softCap, masked ? mt : null, maskValue, m, l, any, acc, dv);
                if (vSeqMinor) accumCols(s, nq, nk, v, vBase + k0, skv, dv, acc);
                else accum(s, nk, 1, nq, nk, v, vBase + k0 * dv, dv, acc, 0);
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

  const qData = values(args.q);
  const kData = values(args.k);
  const vData = values(args.v);
  const dout = values(args.dout);
  const lse = values(args.logsumexp);
  const di = rowDots(values(args.out), dout, batch * heads * sq, dv);

  // Tiles are gathered row-major from SEQ_MINOR operands, so one set of kernels serves every layout.
  const maxQ = Math.max(dkvInfo.blockQ, dqInfo?.blockQ ?? 0);
  const maxKv = Math.max(bs.blockKvDkvCompute, dqInfo?.blockKv ?? 0);
  const q = new Operand(qData, bs.qLayout, batch * heads, sq, d, maxQ);
  const k = new Operand(kData, bs.kLayout, batch * kvHeads, skv, d, maxKv);
  const v = new Operand(vData, bs.vLayout, batch * kvHeads, skv, dv, maxKv);

  const s = new Float64Array(maxQ * maxKv);
  const dp = new Float64Array(maxQ * maxKv);
  const mt = new Uint8Array(maxQ * maxKv);
  // The fused pass accumulates dq for every row across kv blocks; the split dq pass needs one block of it.
  const dq = new Float64Array(fused ? qData.length : maxQ * d);
  const dqOut = new Float32Array(qData.length);
  const dkOut = new Float32Array(kData.length);
  const dvOut = new Float32Array(vData.length);

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
              const qOff = q.load(b * heads + h, q0, q1);
              dq.fill(0, 0, nq * d);
              const row = sched * dqInfo.rowsPerSchedule + qb;
              for (let e = dqInfo.rowPtr[row]; e < dqInfo.rowPtr[row + 1]; e++) {
                const kb = dqInfo.colIdx[e];
                const k0 = kb * bkv;
                const k1 = Math.min(k0 + bkv, skv);
                const nk = k1 - k0;
                const kOff = k.load(kvSlab, k0, k1);
                const vOff = v.load(kvSlab, k0, k1);
                dotRows(q.arr, qOff, nq, k.arr, kOff, nk, d, s);
                dotRows(dout, rowOff * dv, nq, v.arr, vOff, nk, dv, dp);
                const masked = tileMask(ms, sched, e, qb, kb, q0, q1, k0, k1, b * sq, b * skv, mt);
                gradTile(s, dp, nq, nk, cfg.scale, softCap, masked ? mt : null, maskValue, lse, di, rowOff);
                accum(dp, nk, 1, nq, nk, k.arr, kOff, d, dq, 0); // dq += ds·k
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
            const kOff = k.load(kvSlab, k0, k1);
            const vOff = v.load(kvSlab, k0, k1);
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
                const qOff = q.load(b * heads + h, q0, q1);
                dotRows(q.arr, qOff, nq, k.arr, kOff, nk, d, s);
                dotRows(dout, rowOff * dv, nq, v.arr, vOff, nk, dv, dp);
                const masked = tileMask(ms, sched, e, qb, kb, q0, q1, k0, k1, b * sq, b * skv, mt);
                gradTile(s, dp, nq, nk, cfg.scale, softCap, masked ? mt : null, maskValue, lse, di, rowOff);
                accum(s, 1, nk, nk, nq, dout, rowOff * dv, dv, dvAcc, 0); // dv += pᵀ·dout
                accum(dp, 1, nk, nk, nq, q.arr, qOff, d, dkAcc, 0); // dk += dsᵀ·q
                if (fused) accum(dp, nk, 1, nq, nk, k.arr, kOff, d, dq, rowOff * d); // dq += ds·k
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
