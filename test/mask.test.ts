// Masks: every class against a brute-force evaluation of API.md's formula, MaxText's cases written
// out, slices, random masks and every argument error.

import assert from 'node:assert/strict';
import {
  CausalMask, ChunkedCausalMask, DenseMask, FullMask, LocalMask, LogicalAnd, LogicalOr, Mask, MultiHeadMask,
  makeRandomMask,
} from '../lib/mask';
import { seededRandom } from '../lib/random';

function randInt(random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}

/** Square, wide and tall shapes in turn. */
function randomShape(random: () => number, i: number): [number, number] {
  const a = randInt(random, 1, 40);
  const b = randInt(random, 1, 40);
  if (i % 3 === 0) return [a, a];
  return i % 3 === 1 ? [Math.min(a, b), Math.max(a, b)] : [Math.max(a, b), Math.min(a, b)];
}

/** The matrix of a predicate over a shape: the brute-force side of every comparison. */
function evaluate([qLen, kvLen]: readonly [number, number], element: (q: number, kv: number) => boolean): Uint8Array {
  const out = new Uint8Array(qLen * kvLen);
  for (let q = 0; q < qLen; q++) for (let kv = 0; kv < kvLen; kv++) out[q * kvLen + kv] = element(q, kv) ? 1 : 0;
  return out;
}

// The formulas of API.md's table, written independently of lib/mask.ts.
const causal = (offset: number) => (q: number, kv: number) => q + offset >= kv;
const local = (left: number | null, right: number | null, offset: number) => (q: number, kv: number) =>
  (left === null || q + offset - left <= kv) && (right === null || q + offset + right >= kv);
const chunked = (c: number) => (q: number, kv: number) => Math.floor(q / c) === Math.floor(kv / c) && q >= kv;

/** Parses rows like '1100' into a matrix. */
function matrix(rows: string[]): Uint8Array {
  return Uint8Array.from(rows.join('').split('').map(Number));
}

const CASES = 240;

describe('masks: toDense equals the formula', () => {
  it('FullMask', () => {
    const random = seededRandom(1);
    for (let i = 0; i < CASES; i++) {
      const shape = randomShape(random, i);
      assert.deepEqual(new FullMask(shape).toDense(), evaluate(shape, () => true));
    }
  });

  it('CausalMask with offsets on both sides of the diagonal', () => {
    const random = seededRandom(2);
    for (let i = 0; i < CASES; i++) {
      const shape = randomShape(random, i);
      const offset = randInt(random, -45, 45);
      assert.deepEqual(new CausalMask(shape, offset).toDense(), evaluate(shape, causal(offset)), `${shape} offset ${offset}`);
    }
  });

  it('LocalMask with bounded, unbounded and negative windows', () => {
    const random = seededRandom(3);
    const side = () => (random() < 0.25 ? null : randInt(random, -5, 20));
    for (let i = 0; i < CASES; i++) {
      const shape = randomShape(random, i);
      const [left, right, offset] = [side(), side(), randInt(random, -25, 25)];
      assert.deepEqual(
        new LocalMask(shape, [left, right], offset).toDense(), evaluate(shape, local(left, right, offset)),
        `${shape} window ${left},${right} offset ${offset}`,
      );
    }
  });

  it('ChunkedCausalMask with chunks smaller and larger than the shape', () => {
    const random = seededRandom(4);
    for (let i = 0; i < CASES; i++) {
      const shape = randomShape(random, i);
      const chunk = randInt(random, 1, 50);
      assert.deepEqual(new ChunkedCausalMask(shape, chunk).toDense(), evaluate(shape, chunked(chunk)), `${shape} chunk ${chunk}`);
    }
  });

  it('DenseMask from Uint8Array (any non-zero is true) and from boolean[][]', () => {
    const random = seededRandom(5);
    for (let i = 0; i < CASES; i++) {
      const [qLen, kvLen] = randomShape(random, i);
      const raw = Uint8Array.from({ length: qLen * kvLen }, () => (random() < 0.5 ? 0 : randInt(random, 1, 255)));
      const expected = raw.map((x) => (x !== 0 ? 1 : 0));
      assert.deepEqual(new DenseMask(raw, [qLen, kvLen]).toDense(), expected);
      const nested = Array.from({ length: qLen }, (_, q) => Array.from({ length: kvLen }, (_, kv) => expected[q * kvLen + kv] === 1));
      assert.deepEqual(new DenseMask(nested, [qLen, kvLen]).toDense(), expected);
    }
  });

  it('DenseMask copies its data (later changes to the input do not leak in)', () => {
    const data = Uint8Array.of(1, 0, 0, 1);
    const mask = new DenseMask(data, [2, 2]);
    data[1] = 1;
    assert.deepEqual(mask.toDense(), Uint8Array.of(1, 0, 0, 1));
  });

  it('LogicalOr / LogicalAnd of every kind, via methods and constructors', () => {
    const random = seededRandom(6);
    for (let i = 0; i < CASES; i++) {
      const shape = randomShape(random, i);
      const a = new CausalMask(shape, randInt(random, -10, 10));
      const b = new LocalMask(shape, [randInt(random, 0, 6), null], randInt(random, -5, 5));
      const c = new ChunkedCausalMask(shape, randInt(random, 1, 12));
      const d = makeRandomMask(shape, random(), i);
      const dd = d.toDense();
      const expected = evaluate(shape, (q, kv) => {
        const inA = causal(a.offset)(q, kv);
        const inB = local(b.windowSize[0], null, b.offset)(q, kv);
        return (inA && inB) || (chunked(c.chunkSize)(q, kv) && dd[q * shape[1] + kv] === 1);
      });
      assert.deepEqual(a.and(b).or(c.and(d)).toDense(), expected);
      assert.deepEqual(new LogicalOr(new LogicalAnd(a, b), new LogicalAnd(c, d)).toDense(), expected);
    }
  });

  it('or() and and() return LogicalOr and LogicalAnd with the operands', () => {
    const a = new CausalMask([3, 3]);
    const b = new FullMask([3, 3]);
    const or = a.or(b);
    const and = a.and(b);
    assert.ok(or instanceof LogicalOr && or.left === a && or.right === b);
    assert.ok(and instanceof LogicalAnd && and.left === a && and.right === b);
    assert.deepEqual(or.shape, [3, 3]);
  });
});

describe("masks: MaxText's cases written out", () => {
  it('CausalMask offsets -1, 0, 1 on 4x4, 4x6, 6x4', () => {
    const expected: [[number, number], number, string[]][] = [
      [[4, 4], -1, ['0000', '1000', '1100', '1110']],
      [[4, 4], 0, ['1000', '1100', '1110', '1111']],
      [[4, 4], 1, ['1100', '1110', '1111', '1111']],
      [[4, 6], -1, ['000000', '100000', '110000', '111000']],
      [[4, 6], 0, ['100000', '110000', '111000', '111100']],
      [[4, 6], 1, ['110000', '111000', '111100', '111110']],
      [[6, 4], -1, ['0000', '1000', '1100', '1110', '1111', '1111']],
      [[6, 4], 0, ['1000', '1100', '1110', '1111', '1111', '1111']],
      [[6, 4], 1, ['1100', '1110', '1111', '1111', '1111', '1111']],
    ];
    for (const [shape, offset, rows] of expected) {
      assert.deepEqual(new CausalMask(shape, offset).toDense(), matrix(rows), `${shape} offset ${offset}`);
    }
  });

  it('LocalMask windows (1,None), (None,2), (1,1), (1,0), (0,2) on 4x4, 4x6, 6x4', () => {
    const windows: [number | null, number | null][] = [[1, null], [null, 2], [1, 1], [1, 0], [0, 2]];
    for (const shape of [[4, 4], [4, 6], [6, 4]] as [number, number][]) {
      for (const [left, right] of windows) {
        for (const offset of [-1, 0, 1]) {
          assert.deepEqual(new LocalMask(shape, [left, right], offset).toDense(), evaluate(shape, local(left, right, offset)));
        }
      }
    }
    const written: [[number, number], [number | null, number | null], string[]][] = [
      [[4, 4], [1, null], ['1111', '1111', '0111', '0011']],
      [[4, 4], [null, 2], ['1110', '1111', '1111', '1111']],
      [[4, 4], [1, 1], ['1100', '1110', '0111', '0011']],
      [[4, 4], [1, 0], ['1000', '1100', '0110', '0011']],
      [[4, 4], [0, 2], ['1110', '0111', '0011', '0001']],
      [[4, 6], [1, 1], ['110000', '111000', '011100', '001110']],
      [[6, 4], [1, 1], ['1100', '1110', '0111', '0011', '0001', '0000']],
      [[6, 4], [1, 0], ['1000', '1100', '0110', '0011', '0001', '0000']],
    ];
    for (const [shape, window, rows] of written) {
      assert.deepEqual(new LocalMask(shape, window).toDense(), matrix(rows), `${shape} window ${window}`);
    }
  });

  it('LocalMask with an offset shifts the window', () => {
    assert.deepEqual(new LocalMask([4, 4], [1, 0], 1).toDense(), matrix(['1100', '0110', '0011', '0001']));
  });

  it('ChunkedCausalMask chunk 3 on 7x7', () => {
    const rows = ['1000000', '1100000', '1110000', '0001000', '0001100', '0001110', '0000001'];
    assert.deepEqual(new ChunkedCausalMask([7, 7], 3).toDense(), matrix(rows));
  });
});

describe('masks: slice', () => {
  it('equals the window of toDense for every kind, including empty windows', () => {
    const random = seededRandom(7);
    for (let i = 0; i < CASES; i++) {
      const shape = randomShape(random, i);
      const masks: Mask[] = [
        new FullMask(shape),
        new CausalMask(shape, randInt(random, -5, 5)),
        new LocalMask(shape, [randInt(random, 0, 4), randInt(random, 0, 4)]),
        new ChunkedCausalMask(shape, randInt(random, 1, 9)),
        makeRandomMask(shape, 0.5, i),
      ];
      masks.push(masks[1].or(masks[4]).and(masks[2]));
      const q0 = randInt(random, 0, shape[0]);
      const q1 = randInt(random, q0, shape[0]);
      const kv0 = randInt(random, 0, shape[1]);
      const kv1 = randInt(random, kv0, shape[1]);
      for (const m of masks) {
        const dense = m.toDense();
        const expected = evaluate([q1 - q0, kv1 - kv0], (q, kv) => dense[(q + q0) * shape[1] + kv + kv0] === 1);
        assert.deepEqual(m.slice(q0, q1, kv0, kv1), expected, `${m.constructor.name} ${shape} [${q0},${q1})x[${kv0},${kv1})`);
      }
    }
  });

  it('fillWindow writes the window at the given offset and stride and leaves the rest of the buffer alone', () => {
    // The MaskInfo builder fills windows into a larger scratch block; a write past the window would
    // leak into the next rows. and() of a row the mask never had would zero them, or() would keep them.
    const random = seededRandom(11);
    for (let i = 0; i < 60; i++) {
      const shape = randomShape(random, i);
      const a = new CausalMask(shape, randInt(random, -3, 3));
      const b = makeRandomMask(shape, 0.4, i);
      const q0 = randInt(random, 0, shape[0] - 1);
      const q1 = randInt(random, q0 + 1, shape[0]);
      const kv0 = randInt(random, 0, shape[1] - 1);
      const kv1 = randInt(random, kv0 + 1, shape[1]);
      const width = kv1 - kv0;
      const stride = width + 3;
      const offset = 5;
      for (const m of [a.and(b), a.or(b), new LocalMask(shape, [2, 1]).and(a)]) {
        const out = new Uint8Array(offset + (q1 - q0 + 2) * stride).fill(7);
        m.fillWindow(q0, q1, kv0, kv1, out, offset, stride);
        const want = new Uint8Array(out.length).fill(7);
        const window = m.slice(q0, q1, kv0, kv1);
        for (let r = 0; r < q1 - q0; r++) want.set(window.subarray(r * width, (r + 1) * width), offset + r * stride);
        assert.deepEqual(out, want, `${m.constructor.name} ${shape} [${q0},${q1})x[${kv0},${kv1})`);
      }
    }
  });

  it('throws RangeError outside the shape or for a reversed window', () => {
    const m = new CausalMask([4, 6]);
    for (const [args, name] of [
      [[-1, 2, 0, 1], 'q0'], [[0, 5, 0, 1], 'q1'], [[3, 2, 0, 1], 'q1'], [[0, 1, 0, 7], 'kv1'],
      [[0, 1, 2, 1], 'kv1'], [[0, 1, 7, 7], 'kv0'], [[0.5, 1, 0, 1], 'q0'],
    ] as [[number, number, number, number], string][]) {
      assert.throws(() => m.slice(...args), (e: Error) => e instanceof RangeError && e.message.includes(name), `${args}`);
    }
  });
});

describe('masks: makeRandomMask', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = makeRandomMask([30, 40], 0.3, 7).toDense();
    assert.deepEqual(makeRandomMask([30, 40], 0.3, 7).toDense(), a);
    assert.notDeepEqual(makeRandomMask([30, 40], 0.3, 8).toDense(), a);
  });

  it('sets each entry false with probability sparsity', () => {
    for (const sparsity of [0, 0.1, 0.5, 0.9, 1]) {
      const d = makeRandomMask([200, 200], sparsity, 3).toDense();
      const falseShare = d.reduce((n, x) => n + (x === 0 ? 1 : 0), 0) / d.length;
      // 40000 Bernoulli draws: the standard deviation of the share is at most 0.0025, so 0.02 is > 8 sigma.
      assert.ok(Math.abs(falseShare - sparsity) < 0.02, `sparsity ${sparsity}: false share ${falseShare}`);
    }
  });

  it('returns a DenseMask', () => {
    assert.ok(makeRandomMask([2, 3], 0.5, 0) instanceof DenseMask);
  });
});

describe('masks: MultiHeadMask', () => {
  it('keeps its masks and has shape [heads, q, kv]', () => {
    const a = new CausalMask([4, 6]);
    const b = new FullMask([4, 6]);
    const mh = new MultiHeadMask([a, b, a]);
    assert.deepEqual(mh.shape, [3, 4, 6]);
    assert.equal(mh.masks.length, 3);
    assert.ok(mh.masks[0] === a && mh.masks[1] === b && mh.masks[2] === a);
  });
});

describe('masks: argument errors name the argument', () => {
  const cases: [string, () => unknown, ErrorConstructor, string][] = [
    ['shape not an array', () => new FullMask(4 as never), TypeError, 'shape'],
    ['shape of 3 dims', () => new FullMask([1, 2, 3] as never), RangeError, 'shape'],
    ['shape with 0', () => new CausalMask([0, 4]), RangeError, 'shape'],
    ['shape negative', () => new CausalMask([4, -1]), RangeError, 'shape'],
    ['shape fractional', () => new LocalMask([4, 2.5], [1, 1]), RangeError, 'shape'],
    ['shape NaN', () => new ChunkedCausalMask([NaN, 4], 2), RangeError, 'shape'],
    ['shape string entry', () => new FullMask(['4', 4] as never), TypeError, 'shape'],
    ['causal offset fractional', () => new CausalMask([4, 4], 0.5), RangeError, 'offset'],
    ['causal offset NaN', () => new CausalMask([4, 4], NaN), RangeError, 'offset'],
    ['causal offset string', () => new CausalMask([4, 4], '1' as never), TypeError, 'offset'],
    ['local offset fractional', () => new LocalMask([4, 4], [1, 1], 1.5), RangeError, 'offset'],
    ['local window fractional', () => new LocalMask([4, 4], [1.5, 1]), RangeError, 'windowSize'],
    ['local window Infinity', () => new LocalMask([4, 4], [1, Infinity]), RangeError, 'windowSize'],
    ['local window length', () => new LocalMask([4, 4], [1] as never), RangeError, 'windowSize'],
    ['local window not an array', () => new LocalMask([4, 4], 3 as never), TypeError, 'windowSize'],
    ['local window string', () => new LocalMask([4, 4], ['1', 1] as never), TypeError, 'windowSize'],
    ['chunk 0', () => new ChunkedCausalMask([4, 4], 0), RangeError, 'chunkSize'],
    ['chunk negative', () => new ChunkedCausalMask([4, 4], -2), RangeError, 'chunkSize'],
    ['chunk fractional', () => new ChunkedCausalMask([4, 4], 1.5), RangeError, 'chunkSize'],
    ['dense data length', () => new DenseMask(new Uint8Array(5), [2, 3]), RangeError, 'data'],
    ['dense row count', () => new DenseMask([[true, false]], [2, 2]), RangeError, 'data'],
    ['dense row length', () => new DenseMask([[true, false], [true]], [2, 2]), RangeError, 'data'],
    ['dense data Float32Array', () => new DenseMask(new Float32Array(4) as never, [2, 2]), TypeError, 'data'],
    ['dense data string', () => new DenseMask('1111' as never, [2, 2]), TypeError, 'data'],
    ['dense entry string', () => new DenseMask([['x', true], [true, true]] as never, [2, 2]), TypeError, 'data'],
    ['dense shape', () => new DenseMask(new Uint8Array(4), [2] as never), RangeError, 'shape'],
    ['or with other shape', () => new CausalMask([4, 4]).or(new FullMask([4, 5])), RangeError, 'other'],
    ['and with other shape', () => new CausalMask([4, 4]).and(new FullMask([5, 4])), RangeError, 'other'],
    ['or with a non-mask', () => new CausalMask([4, 4]).or({ shape: [4, 4] } as never), TypeError, 'other'],
    ['and with null', () => new CausalMask([4, 4]).and(null as never), TypeError, 'other'],
    ['LogicalOr with other shape', () => new LogicalOr(new FullMask([2, 2]), new FullMask([3, 2])), RangeError, 'other'],
    ['multi-head empty', () => new MultiHeadMask([]), RangeError, 'masks'],
    ['multi-head not an array', () => new MultiHeadMask(new FullMask([2, 2]) as never), TypeError, 'masks'],
    ['multi-head non-mask entry', () => new MultiHeadMask([new FullMask([2, 2]), 3] as never), TypeError, 'masks'],
    ['multi-head shapes differ', () => new MultiHeadMask([new FullMask([2, 2]), new FullMask([2, 3])]), RangeError, 'masks'],
    ['sparsity above 1', () => makeRandomMask([2, 2], 1.5, 0), RangeError, 'sparsity'],
    ['sparsity negative', () => makeRandomMask([2, 2], -0.1, 0), RangeError, 'sparsity'],
    ['sparsity NaN', () => makeRandomMask([2, 2], NaN, 0), RangeError, 'sparsity'],
    ['sparsity string', () => makeRandomMask([2, 2], '0.5' as never, 0), TypeError, 'sparsity'],
    ['random shape', () => makeRandomMask([2, 0], 0.5, 0), RangeError, 'shape'],
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
