// The masks the CPU benchmarks time, by name, and how much work each one is.

import {
  CausalMask, ChunkedCausalMask, FullMask, LocalMask, makeRandomMask, type Mask, type SegmentIds,
} from '../lib/index';

export interface Problem {
  mask: Mask;
  segmentIds?: SegmentIds;
}

/**
 * `full`, `causal`, `local<W>` (each query sees itself and the W keys before it), `chunked<C>`,
 * `packed<N>` (a causal mask and-ed with N equal segments: packed documents) and `random<P>` (P % of the
 * pairs allowed, seed 7), on an S x S grid.
 */
export function problemByName(name: string, s: number): Problem {
  const size = (prefix: string) => Number(name.slice(prefix.length));
  if (name === 'full') return { mask: new FullMask([s, s]) };
  if (name === 'causal') return { mask: new CausalMask([s, s]) };
  if (name.startsWith('local')) return { mask: new LocalMask([s, s], [size('local'), 0]) };
  if (name.startsWith('chunked')) return { mask: new ChunkedCausalMask([s, s], size('chunked')) };
  if (name.startsWith('random')) return { mask: makeRandomMask([s, s], size('random') / 100, 7) };
  if (name.startsWith('packed')) {
    const docs = size('packed');
    const ids = new Int32Array(s);
    for (let i = 0; i < s; i++) ids[i] = Math.floor((i * docs) / s);
    return { mask: new CausalMask([s, s]), segmentIds: { q: ids, kv: ids } };
  }
  throw new RangeError(`unknown benchmark mask '${name}'`);
}

/**
 * Allowed (q, kv) pairs, segment ids included, and `active`: every pair of the block x block tiles that
 * hold at least one of them, the work a block-sparse kernel cannot skip. One strip of block rows at a
 * time, never an S x S array.
 */
export function pairCounts({ mask, segmentIds: seg }: Problem, block: number): { allowed: number; active: number } {
  const [sq, skv] = mask.shape;
  let allowed = 0;
  let active = 0;
  for (let q0 = 0; q0 < sq; q0 += block) {
    const q1 = Math.min(sq, q0 + block);
    const strip = mask.slice(q0, q1, 0, skv);
    for (let k0 = 0; k0 < skv; k0 += block) {
      const k1 = Math.min(skv, k0 + block);
      let inTile = 0;
      for (let r = q0; r < q1; r++) {
        for (let c = k0; c < k1; c++) {
          if (strip[(r - q0) * skv + c] && (!seg || seg.q[r] === seg.kv[c])) inTile++;
        }
      }
      allowed += inTile;
      if (inTile > 0) active += (q1 - q0) * (k1 - k0);
    }
  }
  return { allowed, active };
}
