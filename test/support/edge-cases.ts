// Masking edge cases every backend test runs (cpu-backend, js-backend): problems whose rows see no
// allowed key, one where a custom maskValue reaches every masked logit, and a NaN that only masked
// pairs meet.

import assert from 'node:assert/strict';
import { CausalMask, DenseMask, fromFloat32, toFloat32, type Tensor } from '../../lib/index';
import type { Grads, Problem, Residuals } from './compare';
import { randTensor, randomMask } from './grid';

/**
 * 2 heads, 160 queries x 144 keys, d = 64, f32: rows 10..29 of the mask are empty, and segment ids
 * empty rows 100..119 (a q segment that no key has).
 */
export function emptyRowsProblem(): { p: Problem; sq: number; empty: (i: number) => boolean } {
  const sq = 160;
  const skv = 144;
  const data = randomMask(sq, skv, 0.3, 9).toDense();
  data.fill(0, 10 * skv, 30 * skv);
  const seg = { q: new Int32Array(sq), kv: new Int32Array(skv) };
  seg.q.fill(5, 100, 120);
  const p: Problem = {
    q: randTensor([2, sq, 64], 21, 'float32', 1 / 8),
    k: randTensor([2, skv, 64], 22, 'float32'),
    v: randTensor([2, skv, 64], 23, 'float32'),
    dout: randTensor([2, sq, 64], 24, 'float32'),
    seg,
    mask: new DenseMask(data, [sq, skv]),
    mqa: false,
  };
  return { p, sq, empty: (i) => (i >= 10 && i < 30) || (i >= 100 && i < 120) };
}

/** Empty rows give out = 0, logsumexp = -Infinity and dq = 0 exactly; every other row a finite lse. */
export function assertEmptyRows(res: Residuals, grads: Grads, sq: number, empty: (i: number) => boolean): void {
  const out = toFloat32(res.out);
  const lse = toFloat32(res.logsumexp);
  const dq = toFloat32(grads.dq);
  for (let h = 0; h < 2; h++) {
    for (let i = 0; i < sq; i++) {
      const r = h * sq + i;
      if (!empty(i)) {
        assert.ok(Number.isFinite(lse[r]), `lse[${h}, ${i}] should be finite, got ${lse[r]}`);
        continue;
      }
      assert.equal(lse[r], -Infinity, `lse[${h}, ${i}]`);
      for (let t = 0; t < 64; t++) {
        assert.equal(out[r * 64 + t], 0, `out[${h}, ${i}, ${t}]`);
        assert.equal(dq[r * 64 + t], 0, `dq[${h}, ${i}, ${t}]`);
      }
    }
  }
}

/** Causal, 2 heads, S = 96, d = 32, f32: with one 128 block every masked logit takes maskValue. */
export function oneBlockCausalProblem(): Problem {
  const s = 96;
  return {
    q: randTensor([2, s, 32], 31, 'float32', 0.5),
    k: randTensor([2, s, 32], 32, 'float32'),
    v: randTensor([2, s, 32], 33, 'float32'),
    dout: randTensor([2, s, 32], 34, 'float32'),
    mask: new CausalMask([s, s]),
    mqa: false,
  };
}

/**
 * A white-box probe of the skipping of a partial tile's empty 16 x 16 sub-blocks: causal, one head,
 * S = 128 (one tile with blocks of 128), d = 64, f32, with NaN in key and value row 100. A product over
 * a sub-block that no allowed pair reaches multiplies that NaN by an exact 0 and spreads it; a skipped
 * one never reads it. So query rows 0..95 (sub-blocks 0..5) keep finite out and dq exactly when the
 * products past the diagonal are skipped.
 */
export function maskedNanProblem(): Problem {
  const n = 128;
  const nanRow = (t: Tensor): Tensor => {
    const f = toFloat32(t);
    f.fill(Number.NaN, 100 * 64, 101 * 64);
    return fromFloat32(f, t.shape, 'float32');
  };
  return {
    q: randTensor([1, n, 64], 81, 'float32', 1 / 8),
    k: nanRow(randTensor([1, n, 64], 82, 'float32')),
    v: nanRow(randTensor([1, n, 64], 83, 'float32')),
    dout: randTensor([1, n, 64], 84, 'float32'),
    mask: new CausalMask([n, n]),
    mqa: false,
  };
}

/** Whether rows 0..95 of a maskedNanProblem result (out or dq) are all finite. */
export function clearOfMaskedNan(t: Tensor): boolean {
  return toFloat32(t).subarray(0, 96 * 64).every(Number.isFinite);
}
