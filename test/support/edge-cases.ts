// Masking edge cases every backend test runs (cpu-backend, js-backend): problems whose rows see no
// allowed key, and one where a custom maskValue reaches every masked logit.

import assert from 'node:assert/strict';
import { CausalMask, DenseMask, toFloat32 } from '../../lib/index';
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
