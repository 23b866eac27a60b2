// The reference backend: dense float64 attention, exactly MaxText splash's
// `attention_reference` and its custom VJP. Slow on purpose; every other backend
// is tested against it.

import type { Mask, MultiHeadMask } from '../mask';
import { fromFloat32, toFloat32, type Tensor } from '../tensor';
import { forwardResultShapes, type CallShape } from '../validate';
import type { Backend, BackwardArgs, BackwardResult, ForwardArgs, ForwardResult, KernelConfig } from './backend';

/** Options of the float64 core that the public path does not expose. */
export interface ReferenceOptions {
  maskValue: number;
  softCap: number | null;
  /** 'flash': di = rowsum(out · dout) (splash's kernels); 'vanilla': di = rowsum(dp · p). */
  diMode?: 'flash' | 'vanilla';
  /** logits = scale · q·k before the soft cap (default 1). */
  scale?: number;
}

export interface Reference64Inputs {
  shape: CallShape;
  /** Dense masks per mask head, each [Sq * Skv]; one entry means "applies to every head". */
  masks: Uint8Array[];
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  segQ: Int32Array | null;
  segKv: Int32Array | null;
  /** One sink logit per query head (in the softmax denominator, no value vector), or none. */
  sinks?: Float64Array | null;
}

export interface Reference64Forward {
  out: Float64Array;
  lse: Float64Array;
}

export function denseMasks(mask: Mask | MultiHeadMask): Uint8Array[] {
  return 'masks' in mask ? mask.masks.map((m) => m.toDense()) : [mask.toDense()];
}

/** Visits every (batch, head, query row) with the row's allowed-key flags and scaled (uncapped) logits. */
function forEachRow(
  inp: Reference64Inputs,
  scale: number,
  visit: (qOff: number, kvOff: number, vOff: number, rowIdx: number, raw: Float64Array, allowed: Uint8Array, h: number) => void,
): void {
  const { batch, heads, kvHeads, qSeqLen: sq, kvSeqLen: skv, headDim: d, headDimV: dv } = inp.shape;
  const group = heads / kvHeads;
  const raw = new Float64Array(skv);
  const allowed = new Uint8Array(skv);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / group);
      const maskH = inp.masks.length === 1 ? inp.masks[0] : inp.masks[h];
      const kvOff = (b * kvHeads + kvh) * skv * d;
      const vOff = (b * kvHeads + kvh) * skv * dv;
      for (let i = 0; i < sq; i++) {
        const rowIdx = (b * heads + h) * sq + i;
        const qOff = rowIdx * d;
        for (let j = 0; j < skv; j++) {
          let s = 0;
          for (let c = 0; c < d; c++) s += inp.q[qOff + c] * inp.k[kvOff + j * d + c];
          raw[j] = scale * s;
          let ok = maskH[i * skv + j] !== 0;
          if (ok && inp.segQ !== null && inp.segKv !== null) ok = inp.segQ[b * sq + i] === inp.segKv[b * skv + j];
          allowed[j] = ok ? 1 : 0;
        }
        visit(qOff, kvOff, vOff, rowIdx, raw, allowed, h);
      }
    }
  }
}

function cap(x: number, softCap: number | null): number {
  return softCap === null ? x : softCap * Math.tanh(x / softCap);
}

/** Fills p_j = exp(logit_j - lse) (masked logits set to maskValue) and returns the row's lse, whose sum
 *  includes exp(sink) when the head has a sink; a row with no allowed key has p = 0 and lse = the sink
 *  (-Infinity without one). Uses the given lse when not null (the backward's residual). */
function rowProbabilities(raw: Float64Array, allowed: Uint8Array, opts: ReferenceOptions, lse: number | null,
  p: Float64Array, sink: number | null): number {
  let any = false;
  let max = sink ?? -Infinity;
  for (let j = 0; j < raw.length; j++) {
    const l = allowed[j] ? cap(raw[j], opts.softCap) : opts.maskValue;
    p[j] = l;
    if (allowed[j]) any = true;
    if (l > max) max = l;
  }
  if (!any) {
    p.fill(0);
    return sink ?? -Infinity;
  }
  let sum = sink === null ? 0 : Math.exp(sink - max);
  for (let j = 0; j < p.length; j++) sum += Math.exp(p[j] - max);
  const rowLse = lse ?? max + Math.log(sum);
  for (let j = 0; j < p.length; j++) p[j] = Math.exp(p[j] - rowLse);
  return rowLse;
}

export function referenceForward64(inp: Reference64Inputs, opts: ReferenceOptions): Reference64Forward {
  const { batch, heads, qSeqLen: sq, kvSeqLen: skv, headDimV: dv } = inp.shape;
  const out = new Float64Array(batch * heads * sq * dv);
  const lse = new Float64Array(batch * heads * sq);
  const p = new Float64Array(skv);
  forEachRow(inp, opts.scale ?? 1, (_qOff, _kvOff, vOff, rowIdx, raw, allowed, h) => {
    const rowLse = rowProbabilities(raw, allowed, opts, null, p, inp.sinks ? inp.sinks[h] : null);
    lse[rowIdx] = rowLse;
    const o = rowIdx * dv;
    for (let j = 0; j < skv; j++) {
      const pj = p[j];
      if (pj === 0) continue;
      for (let c = 0; c < dv; c++) out[o + c] += pj * inp.v[vOff + j * dv + c];
    }
  });
  return { out, lse };
}

export interface Reference64Grads {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  /** Per head, summed over batch and rows; null without sinks. */
  dsinks: Float64Array | null;
}

/** Splash's VJP: probabilities from the given lse, di from the given out (or from dp·p when 'vanilla').
 *  A sink's probability is exp(sink - lse) with no value behind it, so its gradient is -p_sink · di. */
export function referenceBackward64(
  inp: Reference64Inputs,
  res: Reference64Forward,
  dout: Float64Array,
  opts: ReferenceOptions,
): Reference64Grads {
  const { batch, kvHeads, kvSeqLen: skv, headDim: d, headDimV: dvDim } = inp.shape;
  const dq = new Float64Array(inp.q.length);
  const dk = new Float64Array(batch * kvHeads * skv * d);
  const dv = new Float64Array(batch * kvHeads * skv * dvDim);
  const dsinks = inp.sinks ? new Float64Array(inp.sinks.length) : null;
  const scale = opts.scale ?? 1;
  const p = new Float64Array(skv);
  const dp = new Float64Array(skv);
  forEachRow(inp, scale, (qOff, kvOff, vOff, rowIdx, raw, allowed, h) => {
    const rowLse = res.lse[rowIdx];
    if (rowLse === -Infinity) return; // fully masked row: zero gradients
    const sink = inp.sinks ? inp.sinks[h] : null;
    rowProbabilities(raw, allowed, opts, rowLse, p, sink);
    const doOff = rowIdx * dvDim;
    let di = 0;
    for (let j = 0; j < skv; j++) {
      let s = 0;
      for (let c = 0; c < dvDim; c++) s += dout[doOff + c] * inp.v[vOff + j * dvDim + c];
      dp[j] = s;
    }
    if (opts.diMode === 'vanilla') {
      for (let j = 0; j < skv; j++) di += dp[j] * p[j];
    } else {
      for (let c = 0; c < dvDim; c++) di += res.out[doOff + c] * dout[doOff + c];
    }
    if (dsinks !== null && sink !== null) dsinks[h] -= Math.exp(sink - rowLse) * di;
    for (let j = 0; j < skv; j++) {
      const pj = p[j];
      if (pj === 0) continue;
      for (let c = 0; c < dvDim; c++) dv[vOff + j * dvDim + c] += pj * dout[doOff + c];
      let ds = pj * (dp[j] - di);
      if (opts.softCap !== null && allowed[j]) {
        const t = Math.tanh(raw[j] / opts.softCap);
        ds *= 1 - t * t;
      }
      if (!allowed[j]) continue; // a masked logit is a constant: no gradient flows to q or k
      ds *= scale; // logits = scale · q·k
      for (let c = 0; c < d; c++) {
        dq[qOff + c] += ds * inp.k[kvOff + j * d + c];
        dk[kvOff + j * d + c] += ds * inp.q[qOff + c];
      }
    }
  });
  return { dq, dk, dv, dsinks };
}

// ---- the Backend wrapper ----------------------------------------------------

function to64(t: Tensor): Float64Array {
  return Float64Array.from(toFloat32(t));
}

function toTensor(values: Float64Array, like: Tensor, shape: readonly number[] = like.shape): Tensor {
  return fromFloat32(Float32Array.from(values), shape, like.dtype);
}

function inputs(cfg: KernelConfig, shape: CallShape, args: ForwardArgs): Reference64Inputs {
  return {
    shape,
    masks: denseMasks(cfg.mask),
    q: to64(args.q),
    k: to64(args.k),
    v: to64(args.v),
    segQ: args.segQ,
    segKv: args.segKv,
    sinks: args.sinks ? Float64Array.from(args.sinks) : null,
  };
}

function options(cfg: KernelConfig): ReferenceOptions {
  return { maskValue: cfg.maskValue, softCap: cfg.attnLogitsSoftCap, scale: cfg.scale };
}

export const referenceBackend: Backend = {
  name: 'reference',
  sinks: 'forward+backward',
  defaultBlockSize: () => 128,
  forwardSync(cfg, shape, args): ForwardResult {
    const res = referenceForward64(inputs(cfg, shape, args), options(cfg));
    const shapes = forwardResultShapes(shape);
    return {
      out: toTensor(res.out, args.q, shapes.out),
      logsumexp: fromFloat32(Float32Array.from(res.lse), shapes.logsumexp, 'float32'),
    };
  },
  backwardSync(cfg, shape, args: BackwardArgs): BackwardResult {
    const res = { out: to64(args.out), lse: to64(args.logsumexp) };
    const g = referenceBackward64(inputs(cfg, shape, args), res, to64(args.dout), options(cfg));
    const grads: BackwardResult = { dq: toTensor(g.dq, args.q), dk: toTensor(g.dk, args.k), dv: toTensor(g.dv, args.v) };
    if (g.dsinks !== null) grads.dsinks = fromFloat32(Float32Array.from(g.dsinks), [g.dsinks.length], 'float32');
    return grads;
  },
  async forward(cfg, shape, args) {
    return this.forwardSync(cfg, shape, args);
  },
  async backward(cfg, shape, args) {
    return this.backwardSync(cfg, shape, args);
  },
};
