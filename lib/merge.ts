// Combining attention results over disjoint key sets, and attention sinks built on the same identity.
//
// For one query row, parts computed over disjoint keys combine as lse = log Σ_i exp(lse_i) and
// out = Σ_i exp(lse_i − lse) · out_i. That is what split-KV decoding and ring (context-parallel)
// attention need (mergeAttention), and a sink is such a part with no keys: its lse is the sink's logit
// and its out is 0. The sink's probability is exp(s − lse) and it has no value behind it, so its
// gradient is −Σ_rows exp(s − lse) · di with di = rowsum(out · dout), splash's residual delta.

import { describeValue } from './describe-value';
import { fromFloat32, tensor, toFloat32, type Tensor } from './tensor';
import { checkTensor } from './validate';

/** One result to merge: out [.., H, Sq, Dv] and its float32 logsumexp [.., H, Sq]. */
export interface AttentionPart {
  /** Attention output over this part's keys: `[.., H, Sq, Dv]`, any dtype (the same in every part). */
  out: Tensor;
  /**
   * Natural-log softmax denominator over this part's keys: `[.., H, Sq]` float32; -Infinity where no
   * key was allowed.
   */
  logsumexp: Tensor;
}

/** log(exp(a) + exp(b)), exact for -Infinity operands. */
function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log(Math.exp(a - m) + Math.exp(b - m));
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Combines results of the same queries over disjoint key sets into the result over all of them, as
 * split-KV decoding and ring (context-parallel) attention need: lse = log Σ_i exp(lse_i) and
 * out = Σ_i exp(lse_i − lse) · out_i. Rows that are -Infinity in every part give out = 0 and
 * logsumexp = -Infinity. out keeps its dtype (combined in float64, rounded once); logsumexp is float32.
 * Inputs are not changed; the result is fresh. With sinks, give them to exactly one part's call.
 *
 * @param parts - one or more `{ out, logsumexp }` of the same shapes, e.g. forwards made with
 *   `saveResiduals: true`. Host Tensors only.
 * @throws TypeError when `parts` is not an array, a part is not an object or holds a non-Tensor or a
 *   DeviceTensor, the out dtypes differ, or a logsumexp is not float32 (naming `parts[i].out` and so on).
 * @throws RangeError when `parts` is empty, out has fewer than 3 dims, or a shape differs from
 *   parts[0]'s (out) or from out's rows (logsumexp).
 * @example
 * ```ts
 * // The same queries against two halves of the keys (kernels made with saveResiduals: true).
 * const a = await left.forward(q, k0, v0);
 * const b = await right.forward(q, k1, v1);
 * const { out, logsumexp } = mergeAttention([a, b]); // as one call over all the keys
 * ```
 */
export function mergeAttention(parts: readonly AttentionPart[]): AttentionPart {
  if (!Array.isArray(parts)) throw new TypeError(`parts: expected an array of { out, logsumexp }, got ${describeValue(parts)}`);
  if (parts.length === 0) throw new RangeError('parts: expected at least 1 part, got 0');
  parts.forEach((p, i) => {
    if (p === null || typeof p !== 'object') throw new TypeError(`parts[${i}]: expected { out, logsumexp }, got ${describeValue(p)}`);
    checkTensor(p.out, `parts[${i}].out`);
    checkTensor(p.logsumexp, `parts[${i}].logsumexp`);
    if (!ArrayBuffer.isView(p.out.data) || !ArrayBuffer.isView(p.logsumexp.data)) {
      throw new TypeError(`parts[${i}]: expected host Tensors (DeviceTensors cannot be merged on the host)`);
    }
  });
  const { out: out0, logsumexp: lse0 } = parts[0];
  if (out0.shape.length < 3) {
    throw new RangeError(`parts[0].out.shape: expected [.., H, Sq, Dv], got [${out0.shape.join(', ')}]`);
  }
  const rows = out0.shape.slice(0, -1);
  if (lse0.dtype !== 'float32') throw new TypeError(`parts[0].logsumexp.dtype: expected 'float32', got '${lse0.dtype}'`);
  if (!sameShape(lse0.shape, rows)) {
    throw new RangeError(`parts[0].logsumexp.shape: expected [${rows.join(', ')}] (out's rows), got [${lse0.shape.join(', ')}]`);
  }
  parts.forEach((p, i) => {
    if (p.out.dtype !== out0.dtype) throw new TypeError(`parts[${i}].out.dtype: expected '${out0.dtype}' (parts[0]'s), got '${p.out.dtype}'`);
    if (!sameShape(p.out.shape, out0.shape)) {
      throw new RangeError(`parts[${i}].out.shape: expected [${out0.shape.join(', ')}] (parts[0]'s), got [${p.out.shape.join(', ')}]`);
    }
    if (p.logsumexp.dtype !== 'float32') throw new TypeError(`parts[${i}].logsumexp.dtype: expected 'float32', got '${p.logsumexp.dtype}'`);
    if (!sameShape(p.logsumexp.shape, rows)) {
      throw new RangeError(`parts[${i}].logsumexp.shape: expected [${rows.join(', ')}], got [${p.logsumexp.shape.join(', ')}]`);
    }
  });

  const dv = out0.shape[out0.shape.length - 1];
  const nRows = lse0.data.length;
  const outs = parts.map((p) => toFloat32(p.out));
  const lses = parts.map((p) => p.logsumexp.data as Float32Array);
  const out = new Float32Array(nRows * dv);
  const lse = new Float32Array(nRows);
  const acc = new Float64Array(dv);
  for (let r = 0; r < nRows; r++) {
    let total = -Infinity;
    for (const l of lses) total = logAddExp(total, l[r]);
    lse[r] = total;
    if (total === -Infinity) continue; // no key in any part: out stays 0
    acc.fill(0);
    for (let i = 0; i < parts.length; i++) {
      const w = Math.exp(lses[i][r] - total);
      if (w === 0) continue;
      const o = outs[i];
      for (let c = 0; c < dv; c++) acc[c] += w * o[r * dv + c];
    }
    for (let c = 0; c < dv; c++) out[r * dv + c] = acc[c];
  }
  return { out: fromFloat32(out, out0.shape, out0.dtype), logsumexp: tensor(lse, rows, 'float32') };
}

/** Folds per-head sinks ([heads] logits) into a forward result computed without them. */
export function withSinks(res: AttentionPart, sinks: Float32Array): AttentionPart {
  const heads = sinks.length;
  const rows = res.logsumexp.shape;
  const perHead = rows[rows.length - 1];
  const sinkLse = new Float32Array(res.logsumexp.data.length);
  for (let r = 0; r < sinkLse.length; r++) sinkLse[r] = sinks[Math.floor(r / perHead) % heads];
  const sinkPart: AttentionPart = {
    out: fromFloat32(new Float32Array(res.out.data.length), res.out.shape, res.out.dtype),
    logsumexp: tensor(sinkLse, rows, 'float32'),
  };
  return mergeAttention([res, sinkPart]);
}

/** d loss / d sinks: −Σ over batch and rows of exp(s_h − lse) · rowsum(out · dout), float32 [heads]. */
export function sinkGradient(out: Tensor, dout: Tensor, logsumexp: Tensor, sinks: Float32Array): Tensor {
  const heads = sinks.length;
  const rows = logsumexp.shape;
  const perHead = rows[rows.length - 1];
  const dv = out.shape[out.shape.length - 1];
  const o = toFloat32(out);
  const g = toFloat32(dout);
  const lse = logsumexp.data as Float32Array;
  const d = new Float64Array(heads);
  for (let r = 0; r < lse.length; r++) {
    if (lse[r] === -Infinity) continue;
    let di = 0;
    for (let c = 0; c < dv; c++) di += o[r * dv + c] * g[r * dv + c];
    const h = Math.floor(r / perHead) % heads;
    d[h] -= Math.exp(sinks[h] - lse[r]) * di;
  }
  return tensor(Float32Array.from(d), [heads], 'float32');
}
