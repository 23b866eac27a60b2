import assert from 'node:assert/strict';
import type { CallShape } from '../lib/validate';
import {
  referenceBackward64,
  referenceForward64,
  type Reference64Inputs,
  type ReferenceOptions,
} from '../lib/backends/reference';
import { seededRandom } from '../lib/random';

const DEFAULT_MASK_VALUE = -0.7 * 3.4028234663852886e38;

function randn64(n: number, rand: () => number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = 2 * rand() - 1;
  return a;
}

function relErr(a: Float64Array, b: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

/** A small GQA problem with a random mask (one fully masked row), segment ids and a batch of 2. */
function problem(seed: number): { inp: Reference64Inputs; shape: CallShape } {
  const rand = seededRandom(seed);
  const shape: CallShape = {
    batch: 2, hasBatch: true, heads: 4, kvHeads: 2, qSeqLen: 5, kvSeqLen: 7, headDim: 3, headDimV: 4, dtype: 'float32',
  };
  const masks = [0, 1, 2, 3].map(() => {
    const m = new Uint8Array(5 * 7);
    for (let i = 0; i < m.length; i++) m[i] = rand() < 0.7 ? 1 : 0;
    m[0] = 1;
    return m;
  });
  masks[1].fill(0, 2 * 7, 3 * 7); // head 1, row 2: no allowed key
  const inp: Reference64Inputs = {
    shape,
    masks,
    q: randn64(2 * 4 * 5 * 3, rand),
    k: randn64(2 * 2 * 7 * 3, rand),
    v: randn64(2 * 2 * 7 * 4, rand),
    segQ: Int32Array.from([0, 0, 0, 1, 1, 0, 0, 0, 0, 0]),
    segKv: Int32Array.from([0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]),
  };
  return { inp, shape };
}

/** The scalar loss sum(out · w) whose gradient the VJP with dout = w computes. */
function loss(inp: Reference64Inputs, w: Float64Array, opts: ReferenceOptions): number {
  const { out } = referenceForward64(inp, opts);
  let s = 0;
  for (let i = 0; i < out.length; i++) s += out[i] * w[i];
  return s;
}

function centralDifferences(inp: Reference64Inputs, which: 'q' | 'k' | 'v' | 'sinks', w: Float64Array, opts: ReferenceOptions): Float64Array {
  const x = inp[which] as Float64Array;
  const g = new Float64Array(x.length);
  const h = 1e-5;
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    x[i] = keep + h;
    const up = loss(inp, w, opts);
    x[i] = keep - h;
    const down = loss(inp, w, opts);
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

describe('reference backend (float64 core)', () => {
  for (const softCap of [null, 2.5]) {
    for (const diMode of ['flash', 'vanilla'] as const) {
      it(`gradients equal central finite differences (softCap ${softCap}, di ${diMode})`, () => {
        const { inp } = problem(7);
        const opts: ReferenceOptions = { maskValue: DEFAULT_MASK_VALUE, softCap, diMode };
        const fwd = referenceForward64(inp, opts);
        const w = randn64(fwd.out.length, seededRandom(99));
        const g = referenceBackward64(inp, fwd, w, opts);
        for (const which of ['q', 'k', 'v'] as const) {
          const num = centralDifferences(inp, which, w, opts);
          const got = which === 'q' ? g.dq : which === 'k' ? g.dk : g.dv;
          // float64 central differences with h = 1e-5: truncation ~1e-10, rounding ~1e-11.
          assert.ok(relErr(got, num) < 1e-6, `d${which} relative error ${relErr(got, num)}`);
        }
      });
    }
  }

  for (const softCap of [null, 2.5]) {
    it(`with sinks and a scale, gradients (dsinks included) equal central differences (softCap ${softCap})`, () => {
      const { inp } = problem(8);
      inp.sinks = Float64Array.from([0.3, -1.2, 2.0, 0.7]); // one per query head; head 1 has a row with no key
      const opts: ReferenceOptions = { maskValue: DEFAULT_MASK_VALUE, softCap, scale: 0.37 };
      const fwd = referenceForward64(inp, opts);
      const w = randn64(fwd.out.length, seededRandom(98));
      const g = referenceBackward64(inp, fwd, w, opts);
      for (const which of ['q', 'k', 'v', 'sinks'] as const) {
        const num = centralDifferences(inp, which, w, opts);
        const got = { q: g.dq, k: g.dk, v: g.dv, sinks: g.dsinks as Float64Array }[which];
        // float64 central differences with h = 1e-5: truncation ~1e-10, rounding ~1e-11.
        assert.ok(relErr(got, num) < 1e-6, `d${which} relative error ${relErr(got, num)}`);
      }
    });
  }

  it('a sink joins the denominator: one row by hand, and a row with no allowed key gets out 0 and lse = the sink', () => {
    const shape: CallShape = { batch: 1, hasBatch: false, heads: 1, kvHeads: 1, qSeqLen: 2, kvSeqLen: 2, headDim: 1, headDimV: 1, dtype: 'float32' };
    const inp: Reference64Inputs = {
      shape, masks: [Uint8Array.from([1, 1, 0, 0])], segQ: null, segKv: null, sinks: Float64Array.from([0.5]),
      q: Float64Array.from([2, 1]), k: Float64Array.from([1, -1]), v: Float64Array.from([3, 5]),
    };
    const { out, lse } = referenceForward64(inp, { maskValue: DEFAULT_MASK_VALUE, softCap: null, scale: 0.5 });
    const [l0, l1] = [0.5 * 2, 0.5 * -2]; // scale · q·k
    const total = Math.exp(l0) + Math.exp(l1) + Math.exp(0.5);
    assert.ok(Math.abs(lse[0] - Math.log(total)) < 1e-12);
    assert.ok(Math.abs(out[0] - (3 * Math.exp(l0) + 5 * Math.exp(l1)) / total) < 1e-12);
    assert.equal(out[1], 0);
    assert.equal(lse[1], 0.5);
  });

  it('matches a hand-written softmax on one row, with lse = max + log(sum)', () => {
    const shape: CallShape = { batch: 1, hasBatch: false, heads: 1, kvHeads: 1, qSeqLen: 1, kvSeqLen: 3, headDim: 2, headDimV: 1, dtype: 'float32' };
    const inp: Reference64Inputs = {
      shape, masks: [Uint8Array.from([1, 0, 1])], segQ: null, segKv: null,
      q: Float64Array.from([1, 2]), k: Float64Array.from([1, 0, 0, 1, 1, 1]), v: Float64Array.from([10, 20, 30]),
    };
    const { out, lse } = referenceForward64(inp, { maskValue: DEFAULT_MASK_VALUE, softCap: null });
    // logits 1 and 3 for keys 0 and 2 (key 1 masked); no 1/sqrt(d) scaling, as in splash.
    const e1 = Math.exp(1 - 3);
    const e3 = 1;
    assert.ok(Math.abs(out[0] - (10 * e1 + 30 * e3) / (e1 + e3)) < 1e-12);
    assert.ok(Math.abs(lse[0] - (3 + Math.log(e1 + e3))) < 1e-12);
  });

  it('a non-default maskValue enters the softmax as a logit, as in splash\'s dense reference', () => {
    const shape: CallShape = { batch: 1, hasBatch: false, heads: 1, kvHeads: 1, qSeqLen: 1, kvSeqLen: 2, headDim: 1, headDimV: 1, dtype: 'float32' };
    const inp: Reference64Inputs = {
      shape, masks: [Uint8Array.from([1, 0])], segQ: null, segKv: null,
      q: Float64Array.from([1]), k: Float64Array.from([0.5, 4]), v: Float64Array.from([1, 3]),
    };
    const { out } = referenceForward64(inp, { maskValue: 0, softCap: null });
    const e0 = Math.exp(0.5);
    const e1 = Math.exp(0); // masked logit replaced by maskValue 0
    assert.ok(Math.abs(out[0] - (1 * e0 + 3 * e1) / (e0 + e1)) < 1e-12);
  });

  it('soft cap is applied before masking: logits = cap * tanh(logits / cap)', () => {
    const shape: CallShape = { batch: 1, hasBatch: false, heads: 1, kvHeads: 1, qSeqLen: 1, kvSeqLen: 2, headDim: 1, headDimV: 1, dtype: 'float32' };
    const inp: Reference64Inputs = {
      shape, masks: [Uint8Array.from([1, 1])], segQ: null, segKv: null,
      q: Float64Array.from([2]), k: Float64Array.from([3, -1]), v: Float64Array.from([1, 0]),
    };
    const { lse } = referenceForward64(inp, { maskValue: DEFAULT_MASK_VALUE, softCap: 5 });
    const l0 = 5 * Math.tanh(6 / 5);
    const l1 = 5 * Math.tanh(-2 / 5);
    assert.ok(Math.abs(lse[0] - Math.log(Math.exp(l0) + Math.exp(l1))) < 1e-12);
  });

  it('soft cap before masking, with a masked key and a finite maskValue (where the order shows)', () => {
    const shape: CallShape = { batch: 1, hasBatch: false, heads: 1, kvHeads: 1, qSeqLen: 1, kvSeqLen: 2, headDim: 1, headDimV: 1, dtype: 'float32' };
    const inp: Reference64Inputs = {
      shape, masks: [Uint8Array.from([1, 0])], segQ: null, segKv: null,
      q: Float64Array.from([2]), k: Float64Array.from([3, -1]), v: Float64Array.from([1, 0]),
    };
    const { lse } = referenceForward64(inp, { maskValue: -3, softCap: 2 });
    const l0 = 2 * Math.tanh(6 / 2);
    // The masked logit becomes maskValue itself; capping after masking would give 2·tanh(-3/2) instead.
    assert.ok(Math.abs(lse[0] - Math.log(Math.exp(l0) + Math.exp(-3))) < 1e-12, `lse ${lse[0]}`);
    assert.ok(Math.abs(lse[0] - Math.log(Math.exp(l0) + Math.exp(2 * Math.tanh(-1.5)))) > 1e-3);
  });

  it('a row with no allowed key gives out 0, lse -Infinity and zero gradients, never NaN', () => {
    const { inp, shape } = problem(3);
    const opts: ReferenceOptions = { maskValue: DEFAULT_MASK_VALUE, softCap: null };
    const fwd = referenceForward64(inp, opts);
    const w = randn64(fwd.out.length, seededRandom(5));
    const g = referenceBackward64(inp, fwd, w, opts);
    // batch 0, head 1, row 2 is fully masked by the mask.
    const row = (0 * shape.heads + 1) * shape.qSeqLen + 2;
    assert.equal(fwd.lse[row], -Infinity);
    for (let c = 0; c < shape.headDimV; c++) assert.equal(fwd.out[row * shape.headDimV + c], 0);
    for (let c = 0; c < shape.headDim; c++) assert.equal(g.dq[row * shape.headDim + c], 0);
    for (const a of [fwd.out, g.dq, g.dk, g.dv]) assert.ok(a.every((x) => !Number.isNaN(x)));
  });
});
