// MaskInfo: processMask against a brute-force block classification of toDense(), stored partial
// blocks and their deduplication, CSR schedules (fwd and dkv), shared schedules, mask programs,
// q-shards, the O(blocks) path for huge computable masks, and argument errors.

import assert from 'node:assert/strict';
import {
  CausalMask, ChunkedCausalMask, DenseMask, FullMask, LocalMask, Mask, MultiHeadMask, makeRandomMask,
} from '../lib/mask';
import { seededRandom } from '../lib/random';
import { MaskInfo, processMask } from '../lib/mask-info';
import { evalMaskProgram, fillBlockFromProgram } from '../lib/mask-program';
import { benchMaskInfo } from '../bench/mask-info';
import { randInt, pick, randomLeaf, randomTree, randomShape, randomBlockShape, checkInfo, rebuild } from './support/mask-oracle';

// ---- tests -------------------------------------------------------------------------------------

describe('processMask: classification and storage against brute force', () => {
  it('random Or/And trees (3-4 deep, every kind, dense included), ragged and exact blocks, fwd and dkv', () => {
    const random = seededRandom(11);
    for (let i = 0; i < 300; i++) {
      const shape = randomShape(random);
      const mask = randomTree(random, shape, randInt(random, 3, 4), i % 3 !== 0);
      const blockShape = randomBlockShape(random, shape);
      const isDkv = i % 2 === 1;
      checkInfo(processMask(mask, blockShape, { isDkv }), [mask], blockShape, isDkv);
    }
  });

  it('single masks of every kind', () => {
    const random = seededRandom(12);
    for (let i = 0; i < 300; i++) {
      const shape = randomShape(random);
      const mask = randomLeaf(random, shape, true);
      const blockShape = randomBlockShape(random, shape);
      checkInfo(processMask(mask, blockShape), [mask], blockShape, false);
    }
  });

  it('every causal offset, local window (any signs) and chunk size on small shapes, every block shape', () => {
    const sides = [null, -3, -2, -1, 0, 1, 2, 3, 4];
    for (const shape of [[7, 9], [9, 7], [8, 8]] as [number, number][]) {
      const masks: Mask[] = [];
      for (let offset = -10; offset <= 10; offset++) masks.push(new CausalMask(shape, offset));
      for (const left of sides) for (const right of sides) for (const offset of [-2, 0, 3]) masks.push(new LocalMask(shape, [left, right], offset));
      for (let chunk = 1; chunk <= 10; chunk++) masks.push(new ChunkedCausalMask(shape, chunk));
      for (const mask of masks) {
        for (const blockShape of [[1, 1], [2, 3], [3, 2], [4, 4], [5, 3], [2, 8], [10, 10]] as [number, number][]) {
          checkInfo(processMask(mask, blockShape), [mask], blockShape, false);
        }
      }
    }
  });

  it('multi-head masks with repeated objects, structurally equal copies and distinct heads', () => {
    const random = seededRandom(13);
    for (let i = 0; i < 150; i++) {
      const shape = randomShape(random);
      const pool = [randomTree(random, shape, 3, true), randomLeaf(random, shape, true), randomLeaf(random, shape, false)];
      const heads = Array.from({ length: randInt(random, 1, 6) }, () => {
        const m = pick(random, pool);
        if (random() < 0.5) return m;
        // A fresh object with the same content: a DenseMask copy, or a rebuilt computable mask.
        return m.program() === null ? new DenseMask(m.toDense(), shape) : rebuild(m);
      });
      const blockShape = randomBlockShape(random, shape);
      const isDkv = random() < 0.5;
      checkInfo(processMask(new MultiHeadMask(heads), blockShape, { isDkv }), heads, blockShape, isDkv);
    }
  });

  it('shares one schedule between the same object, equal programs and equal dense heads', () => {
    const shape: [number, number] = [32, 32];
    const causal = new CausalMask(shape);
    const dense = makeRandomMask(shape, 0.5, 1);
    const heads = [causal, new CausalMask(shape), causal, new CausalMask(shape, 1), dense, new DenseMask(dense.toDense(), shape)];
    const info = processMask(new MultiHeadMask(heads), [8, 8]);
    assert.deepEqual(Array.from(info.headSchedule), [0, 0, 0, 1, 2, 2]);
    assert.equal(info.numSchedules, 3);
    assert.equal(info.stats.uniquePartial, 16, 'the two equal dense heads store their 16 blocks once');
  });

  it('classifies ragged blocks by their real extent', () => {
    // 5x5 causal in 4x4 blocks: the last block row holds q = 4 only, which sees kv 0..4.
    assert.deepEqual(Array.from(processMask(new CausalMask([5, 5]), [4, 4]).blockMask), [1, 0, 2, 2]);
    // A block larger than the sequence is one ragged block.
    const info = processMask(new CausalMask([3, 5], 4), [8, 8]);
    assert.deepEqual([info.qBlocks, info.kvBlocks, Array.from(info.blockMask)], [1, 1, [2]]);
  });

  it('stores ragged dense blocks zero-padded and full dense blocks not at all', () => {
    const data = new Uint8Array(5 * 4).fill(1);
    data[19] = 0; // the last element: only the bottom-right block (1 row of q) is partial
    const info = processMask(new DenseMask(data, [5, 4]), [2, 2]);
    assert.deepEqual(Array.from(info.blockMask), [2, 2, 2, 2, 2, 1]);
    assert.deepEqual(Array.from(info.partialMaskBlocks ?? []), [1, 0, 0, 0], 'q=4: kv 2 true, kv 3 false; padding row 0');
    assert.equal(processMask(new DenseMask(new Uint8Array(16).fill(1), [4, 4]), [2, 2]).partialMaskBlocks, null);
  });

  it('deduplicates repeated dense blocks across positions and heads', () => {
    const tile = [1, 0, 1, 1]; // 2x2, partial
    const data = Uint8Array.from({ length: 64 }, (_, i) => tile[((i >> 3) % 2) * 2 + ((i & 7) % 2)]);
    const a = new DenseMask(data, [8, 8]);
    const info = processMask(new MultiHeadMask([a, a.and(new FullMask([8, 8]))]), [2, 2]);
    assert.equal(info.stats.partial, 32);
    assert.equal(info.stats.uniquePartial, 1);
    assert.deepEqual(Array.from(info.partialMaskBlocks ?? []), tile);
  });

  it('results do not depend on qSeqShards', () => {
    const mask = makeRandomMask([40, 40], 0.5, 4).or(new CausalMask([40, 40]));
    const base = processMask(mask, [4, 8]);
    for (const shards of [2, 3, 7, 10]) {
      const info = processMask(mask, [4, 8], { qSeqShards: shards });
      assert.deepEqual({ ...info, qShardBounds: null }, { ...base, qShardBounds: null });
    }
  });
});

describe('processMask: q-shards', () => {
  it('splits the q-blocks into contiguous, non-empty, nearly equal shards', () => {
    for (let qBlocks = 1; qBlocks <= 40; qBlocks++) {
      for (let shards = 1; shards <= qBlocks; shards++) {
        const b = processMask(new FullMask([qBlocks * 3, 5]), [3, 5], { qSeqShards: shards }).qShardBounds;
        assert.equal(b.length, shards + 1);
        assert.equal(b[0], 0);
        assert.equal(b[shards], qBlocks);
        for (let i = 0; i < shards; i++) {
          const size = b[i + 1] - b[i];
          assert.ok(size === Math.floor(qBlocks / shards) || size === Math.ceil(qBlocks / shards), `${qBlocks}/${shards}: ${b}`);
        }
      }
    }
  });
});

describe('mask programs', () => {
  it('evalMaskProgram and fillBlockFromProgram equal toDense for computable trees', () => {
    const random = seededRandom(14);
    for (let i = 0; i < 200; i++) {
      const shape = randomShape(random);
      const mask = randomTree(random, shape, randInt(random, 0, 4), false);
      const program = mask.program();
      assert.ok(program !== null);
      // Embed the program between junk words to check that start/end are honoured.
      const padded = new Int32Array(program.length + 5).fill(99);
      padded.set(program, 3);
      const dense = mask.toDense();
      for (let q = 0; q < shape[0]; q++) {
        for (let kv = 0; kv < shape[1]; kv++) {
          assert.equal(evalMaskProgram(padded, 3, 3 + program.length, q, kv), dense[q * shape[1] + kv] === 1, `${q},${kv}`);
        }
      }
      const q0 = randInt(random, 0, shape[0] - 1);
      const q1 = randInt(random, q0 + 1, shape[0]);
      const kv0 = randInt(random, 0, shape[1] - 1);
      const kv1 = randInt(random, kv0 + 1, shape[1]);
      const stride = kv1 - kv0 + 2;
      const out = new Uint8Array(1 + (q1 - q0) * stride).fill(7);
      fillBlockFromProgram(program, 0, program.length, q0, q1, kv0, kv1, out, 1, stride);
      const expected = new Uint8Array(out.length).fill(7);
      const window = mask.slice(q0, q1, kv0, kv1);
      for (let r = 0; r < q1 - q0; r++) expected.set(window.subarray(r * (kv1 - kv0), (r + 1) * (kv1 - kv0)), 1 + r * stride);
      assert.deepEqual(out, expected);
    }
  });

  it('is null exactly when a DenseMask is involved', () => {
    const c = new CausalMask([4, 4]);
    const d = makeRandomMask([4, 4], 0.5, 0);
    assert.ok(c.program() !== null && c.or(new FullMask([4, 4])).program() !== null);
    assert.equal(d.program(), null);
    assert.equal(c.and(d).program(), null);
    assert.equal(d.or(c).or(c).program(), null);
  });

  it('handles programs deeper than the initial evaluation stack', () => {
    let mask: Mask = new CausalMask([6, 6]);
    for (let i = 0; i < 100; i++) mask = new LocalMask([6, 6], [i % 3, null]).or(mask); // right-deep: the stack grows
    const program = mask.program();
    assert.ok(program !== null);
    const dense = mask.toDense();
    for (let q = 0; q < 6; q++) for (let kv = 0; kv < 6; kv++) assert.equal(evalMaskProgram(program, 0, program.length, q, kv), dense[q * 6 + kv] === 1);
  });
});

describe('processMask: huge computable masks stay O(blocks)', () => {
  for (const [name, mask] of [
    ['causal', new CausalMask([131072, 131072])],
    ['local [1024, 0]', new LocalMask([131072, 131072], [1024, 0])],
    ['chunked 4096 or local', new ChunkedCausalMask([131072, 131072], 4096).or(new LocalMask([131072, 131072], [100, 100]))],
  ] as const) {
    it(`131072² ${name} at [128, 128]: no dense storage, every array within 2x the block count`, function () {
      this.timeout(10000);
      const info = processMask(mask, [128, 128]);
      const blocks = 1024 * 1024;
      assert.equal(info.partialMaskBlocks, null);
      for (const [field, value] of Object.entries(info)) {
        if (ArrayBuffer.isView(value)) assert.ok((value as Uint8Array).length <= 2 * blocks + 2, `${field}: ${(value as Uint8Array).length}`);
      }
      assert.equal(info.stats.empty + info.stats.partial + info.stats.full, blocks);
      if (name === 'causal') assert.deepEqual([info.stats.partial, info.stats.full], [1024, (1024 * 1023) / 2]);
    });
  }
});

describe('bench/mask-info.ts', () => {
  it('still runs on tiny sizes', () => {
    const results = benchMaskInfo(true);
    assert.equal(results.length, 3);
    for (const r of results) assert.ok(Number.isFinite(r.medianMs) && r.medianMs >= 0, `${r.name}: ${r.medianMs}`);
  });
});

describe('processMask: argument errors name the argument', () => {
  const m = new CausalMask([16, 16]);
  const cases: [string, () => unknown, ErrorConstructor, string][] = [
    ['mask not a mask', () => processMask({} as never, [4, 4]), TypeError, 'mask'],
    ['blockShape not an array', () => processMask(m, 4 as never), TypeError, 'blockShape'],
    ['blockShape of 1 entry', () => processMask(m, [4] as never), RangeError, 'blockShape'],
    ['blockShape 0', () => processMask(m, [0, 4]), RangeError, 'blockShape'],
    ['blockShape fractional', () => processMask(m, [4, 2.5]), RangeError, 'blockShape'],
    ['blockShape negative', () => processMask(m, [-4, 4]), RangeError, 'blockShape'],
    ['blockShape string', () => processMask(m, ['4', 4] as never), TypeError, 'blockShape'],
    ['qSeqShards 0', () => processMask(m, [4, 4], { qSeqShards: 0 }), RangeError, 'qSeqShards'],
    ['qSeqShards fractional', () => processMask(m, [4, 4], { qSeqShards: 1.5 }), RangeError, 'qSeqShards'],
    ['qSeqShards above qBlocks', () => processMask(m, [4, 4], { qSeqShards: 5 }), RangeError, 'qSeqShards'],
    ['qSeqShards string', () => processMask(m, [4, 4], { qSeqShards: '2' as never }), TypeError, 'qSeqShards'],
    ['isDkv not boolean', () => processMask(m, [4, 4], { isDkv: 1 as never }), TypeError, 'isDkv'],
  ];
  for (const [what, fn, errorClass, name] of cases) {
    it(`${what} → ${errorClass.name} naming ${name}`, () => {
      assert.throws(fn, (e: Error) => {
        assert.equal(e.constructor, errorClass, `${what}: got ${e.constructor.name}: ${e.message}`);
        assert.ok(e.message.includes(name), `${what}: message '${e.message}' does not name ${name}`);
        assert.ok(/expected/.test(e.message) && /got/.test(e.message), `${what}: message '${e.message}' lacks expected/actual`);
        return true;
      });
    });
  }
});

