// Comparison helpers shared by the backend tests (cpu-backend, js-backend): relative-norm and bitwise
// checks on tensors, and one forward + backward run of a problem through a backend.

import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import {
  makeSplashMHA,
  makeSplashMQA,
  toFloat32,
  type Mask,
  type MultiHeadMask,
  type SegmentIds,
  type SplashOptions,
  type Tensor,
} from '../../lib/index';

export type Residuals = { out: Tensor; logsumexp: Tensor };
export type Grads = { dq: Tensor; dk: Tensor; dv: Tensor };

/**
 * ‖actual − expected‖ / ‖expected‖ over the finite entries of `expected`; -Infinity entries (rows with no
 * allowed key) must match exactly and no NaN may appear.
 */
export function relErr(actual: Float32Array, expected: Float32Array, what: string): number {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    assert.ok(!Number.isNaN(a), `${what}[${i}] is NaN`);
    if (e === -Infinity) {
      assert.equal(a, -Infinity, `${what}[${i}]: expected -Infinity, got ${a}`);
      continue;
    }
    num += (a - e) * (a - e);
    den += e * e;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** With SPLASH_TOL_LOG=file, every comparison appends { what, dtype, err, tol } to it (one JSON object a
 *  line), so that tolerances can be set from the errors the suites really see. */
const TOL_LOG = process.env.SPLASH_TOL_LOG;

export function assertClose(actual: Tensor, expected: Tensor, tol: number, what: string): void {
  assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  const err = relErr(toFloat32(actual), toFloat32(expected), what);
  if (TOL_LOG) appendFileSync(TOL_LOG, `${JSON.stringify({ what, dtype: actual.dtype, err, tol })}\n`);
  assert.ok(err <= tol, `${what}: relative-norm error ${err.toExponential(3)} > ${tol}`);
}

export function assertBitwise(a: Tensor, b: Tensor, what: string): void {
  assert.deepEqual([...a.shape], [...b.shape], `${what}: shape`);
  const x = Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  assert.ok(x.equals(y), `${what}: not bitwise identical`);
}

/** One attention problem: inputs, upstream gradient, optional segment ids and the mask. */
export interface Problem {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  dout: Tensor;
  seg?: SegmentIds;
  mask: Mask | MultiHeadMask;
  mqa: boolean;
}

export function kernelFor(p: Problem, opts: SplashOptions) {
  const o = { ...opts, saveResiduals: true as const };
  return p.mqa ? makeSplashMQA(p.mask, o) : makeSplashMHA(p.mask, o);
}

/** Forward then backward of `p` with `opts` (sync), returning residuals and gradients. */
export function run(p: Problem, opts: SplashOptions): { res: Residuals; grads: Grads } {
  const kernel = kernelFor(p, opts);
  const res = kernel.forwardSync(p.q, p.k, p.v, p.seg);
  const grads = kernel.backwardSync({ q: p.q, k: p.k, v: p.v, segmentIds: p.seg, ...res, dout: p.dout });
  return { res, grads };
}
