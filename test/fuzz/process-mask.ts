// The processMask fuzzer: seeded random masks of every kind (leaves, Or/And trees up to 4 deep, dense
// ones, multi-head mixes of equal and distinct heads), random sizes and block shapes (ragged, larger
// than the sequence), forward and dkv, q-shards; each MaskInfo is checked block by block against
// toDense() by the shared oracle. A failure names the seed and iteration that reproduce it.

import { DenseMask, MultiHeadMask, type Mask } from '../../lib/mask';
import { processMask } from '../../lib/mask-info';
import { seededRandom } from '../../lib/random';
import { checkInfo, pick, randInt, randomBlockShape, randomLeaf, randomTree, rebuild } from '../support/mask-oracle';

/** Sizes up to 40 mostly (most bugs live at block edges), sometimes up to 96. */
function fuzzShape(random: () => number): [number, number] {
  const hi = random() < 0.85 ? 40 : 96;
  return [randInt(random, 1, hi), randInt(random, 1, hi)];
}

function fuzzHeads(random: () => number, shape: [number, number]): Mask[] {
  const kind = random();
  if (kind < 0.25) return [randomLeaf(random, shape, true)];
  if (kind < 0.85) return [randomTree(random, shape, randInt(random, 1, 4), random() < 0.7)];
  const pool = [randomTree(random, shape, randInt(random, 1, 3), true), randomLeaf(random, shape, true), randomLeaf(random, shape, false)];
  return Array.from({ length: randInt(random, 1, 5) }, () => {
    const m = pick(random, pool);
    if (random() < 0.5) return m;
    return m.program() === null ? new DenseMask(m.toDense(), shape) : rebuild(m);
  });
}

/** Checks `count` random masks; throws with the reproducing seed and iteration on the first mismatch. */
export function fuzzProcessMask(seed: number, count: number): void {
  const random = seededRandom(seed);
  for (let i = 0; i < count; i++) {
    const shape = fuzzShape(random);
    const heads = fuzzHeads(random, shape);
    const blockShape = randomBlockShape(random, shape);
    const isDkv = random() < 0.5;
    const qBlocks = Math.ceil(shape[0] / blockShape[0]);
    const qSeqShards = random() < 0.2 ? randInt(random, 1, Math.min(4, qBlocks)) : 1;
    try {
      const mask = heads.length === 1 && random() < 0.7 ? heads[0] : new MultiHeadMask(heads);
      checkInfo(processMask(mask, blockShape, { isDkv, qSeqShards }), heads, blockShape, isDkv);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new Error(`processMask fuzz (seed ${seed}, iteration ${i}, shape ${shape}, block ${blockShape}, ` +
        `isDkv ${isDkv}, qSeqShards ${qSeqShards}): ${why}`);
    }
  }
}
