// splash-attention/tfjs: the op's forward and gradients against tfjs's own autodiff of a dense masked
// softmax attention written with tfjs ops; residuals reused (no recomputed forward); no leaked tensors;
// argument errors equal the kernel's.
import assert from 'node:assert/strict';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-cpu';

import {
  CausalMask, ChunkedCausalMask, FullMask, LocalMask, makeSplashMHA, makeSplashMQA, MultiHeadMask, tensor, fromFloat32,
  toFloat32, type Mask, type SegmentIds, type SplashAttentionKernel, type SplashOptions, type Tensor,
} from '../lib/index';
import { splashAttention } from '../lib/tfjs';
import { relErr } from './support/compare';

const MASK_VALUE = -0.7 * 3.4028234663852886e38; // splash's default maskValue

interface Case {
  mask: Mask | MultiHeadMask;
  q: number[]; // [B?, H, Sq, D]
  k: number[]; // [B?, Hkv, Skv, D] (MQA: [B?, Skv, D])
  v: number[];
  mqa?: boolean;
  seg?: SegmentIds;
  kernelOpts?: SplashOptions;
  qScale?: number;
  sinks?: boolean; // one random sink logit per query head
}

/** Dense 0/1 of mask ∧ segment ids as [B, H, Sq, Skv]. */
function allowedDense(c: Case, batch: number, heads: number, sq: number, skv: number): Uint8Array {
  const perHead = c.mask instanceof MultiHeadMask ? c.mask.masks.map((m) => m.toDense()) : [c.mask.toDense()];
  const out = new Uint8Array(batch * heads * sq * skv);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const m = perHead[perHead.length === 1 ? 0 : h];
      for (let i = 0; i < sq; i++) {
        for (let j = 0; j < skv; j++) {
          const segOk = !c.seg || c.seg.q[b * sq + i] === c.seg.kv[b * skv + j];
          out[((b * heads + h) * sq + i) * skv + j] = m[i * skv + j] && segOk ? 1 : 0;
        }
      }
    }
  }
  return out;
}

/**
 * The dense reference, in tfjs ops so that tfjs differentiates it: scale, soft cap, then mask (segment ids
 * and-ed) to splash's maskValue, softmax (with each head's sink logit as one more column that has no
 * value), rows with no allowed key zeroed; GQA/MQA by gathering kv heads.
 */
function denseAttention(c: Case, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, sinks?: tf.Tensor): tf.Tensor {
  const batched = q.rank === 4;
  const q4 = batched ? q : tf.expandDims(q, 0);
  let k4 = batched ? k : tf.expandDims(k, 0);
  let v4 = batched ? v : tf.expandDims(v, 0);
  if (c.mqa) {
    k4 = tf.expandDims(k4, 1);
    v4 = tf.expandDims(v4, 1);
  }
  const [batch, heads, sq] = q4.shape;
  const [hkv, skv] = k4.shape.slice(1, 3);
  const kvHead = tf.tensor1d(Array.from({ length: heads }, (_, h) => Math.floor(h / (heads / hkv))), 'int32');
  let logits = tf.matMul(q4, tf.gather(k4, kvHead, 1), false, true);
  if (c.kernelOpts?.scale !== undefined) logits = tf.mul(logits, c.kernelOpts.scale);
  const cap = c.kernelOpts?.attnLogitsSoftCap;
  if (cap) logits = tf.mul(cap, tf.tanh(tf.div(logits, cap)));
  const allowed = allowedDense(c, batch, heads, sq, skv);
  const allowedT = tf.tensor4d(allowed, [batch, heads, sq, skv], 'bool');
  const masked = tf.where(allowedT, logits, tf.fill(logits.shape, MASK_VALUE));
  const rowAny = tf.cast(tf.any(allowedT, -1, true), 'float32');
  let probs: tf.Tensor;
  if (sinks) {
    const sinkColumn = tf.mul(tf.reshape(sinks, [1, heads, 1, 1]), tf.ones([batch, heads, sq, 1]));
    probs = tf.slice(tf.softmax(tf.concat([masked, sinkColumn], -1)), [0, 0, 0, 0], [batch, heads, sq, skv]);
  } else {
    probs = tf.softmax(masked);
  }
  const out = tf.matMul(tf.mul(probs, rowAny), tf.gather(v4, kvHead, 1));
  return batched ? out : tf.squeeze(out, [0]);
}

function inputs(c: Case, seed: number): tf.Tensor[] {
  const heads = c.q[c.q.length - 3];
  return [
    tf.mul(tf.randomNormal(c.q, 0, 1, 'float32', seed), c.qScale ?? 1),
    tf.randomNormal(c.k, 0, 1, 'float32', seed + 1),
    tf.randomNormal(c.v, 0, 1, 'float32', seed + 2),
    ...(c.sinks ? [tf.randomNormal([heads], 0, 1, 'float32', seed + 3)] : []),
  ];
}

function makeKernel(c: Case): SplashAttentionKernel {
  const opts: SplashOptions = { saveResiduals: true, blockSizes: { blockQ: 32, blockKv: 32 }, ...c.kernelOpts };
  return c.mqa ? makeSplashMQA(c.mask, opts) : makeSplashMHA(c.mask, opts);
}

type Attn = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, sinks?: tf.Tensor) => tf.Tensor;

/** Output and the gradients (wrt every input, sinks included) of sum(w ⊙ out), w seeded random, through `attn`. */
function valueAndGrads(attn: Attn, xs: tf.Tensor[], seed: number): { out: Float32Array; grads: Float32Array[] } {
  return tf.tidy(() => {
    const out = attn(xs[0], xs[1], xs[2], xs[3]);
    const w = tf.randomNormal(out.shape, 0, 1, 'float32', seed + 7);
    const f = (...a: tf.Tensor[]): tf.Scalar => tf.sum(tf.mul(attn(a[0], a[1], a[2], a[3]), w));
    const grads = tf.grads(f)(xs);
    return { out: out.dataSync() as Float32Array, grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

function compareWithDense(c: Case, seed: number, what: string): { out: Float32Array; grads: Float32Array[] } {
  const kernel = makeKernel(c);
  const xs = inputs(c, seed);
  try {
    const got = valueAndGrads((q, k, v, sinks) => splashAttention(kernel, q, k, v, { segmentIds: c.seg, sinks }), xs, seed);
    const want = valueAndGrads((q, k, v, sinks) => denseAttention(c, q, k, v, sinks), xs, seed);
    // f32 on both sides; the blocked online softmax and tfjs's dense softmax sum in different orders.
    assert.ok(relErr(got.out, want.out, `${what}: out`) <= 1e-4, `${what}: out differs`);
    assert.equal(got.grads.length, xs.length, `${what}: one gradient per input`);
    ['dq', 'dk', 'dv', 'dsinks'].slice(0, xs.length).forEach((name, i) => {
      const e = relErr(got.grads[i], want.grads[i], `${what}: ${name}`);
      assert.ok(e <= 1e-4, `${what}: ${name} relative error ${e}`);
    });
    return got;
  } finally {
    tf.dispose(xs);
  }
}

/** Packed documents of random lengths per batch row, ids counting up from 1. */
function packedIds(batch: number, seqLen: number, seed: number): Int32Array {
  let s = seed;
  const rand = (): number => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const ids = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    let id = 1;
    let left = 8 + Math.floor(rand() * 40);
    for (let i = 0; i < seqLen; i++, left--) {
      if (left === 0) {
        id++;
        left = 8 + Math.floor(rand() * 40);
      }
      ids[b * seqLen + i] = id;
    }
  }
  return ids;
}

describe('splash-attention/tfjs', function () {
  this.timeout(30_000);
  before(async () => {
    // tfjs's test mode: every kernel run is checked for leaked backend data (and no console banner).
    tf.env().set('IS_TEST', true);
    await tf.setBackend('cpu');
  });

  describe('forward and gradients equal tfjs autodiff of dense attention', () => {
    it('causal mask', () => {
      compareWithDense({ mask: new CausalMask([128, 128]), q: [2, 128, 32], k: [2, 128, 32], v: [2, 128, 32] }, 10, 'causal');
    });

    it('local window mask, with a batch dimension', () => {
      const S = 128;
      compareWithDense({ mask: new LocalMask([S, S], [24, 8]), q: [2, 2, S, 16], k: [2, 2, S, 16], v: [2, 2, S, 16] }, 20, 'local');
    });

    it('multi-head mask (causal, local, full, chunked causal) on a ragged length', () => {
      const S = 100; // not a multiple of the 32-wide blocks
      const mask = new MultiHeadMask([
        new CausalMask([S, S]), new LocalMask([S, S], [16, 0]), new FullMask([S, S]), new ChunkedCausalMask([S, S], 40),
      ]);
      compareWithDense({ mask, q: [4, S, 16], k: [4, S, 16], v: [4, S, 16] }, 30, 'multi-head');
    });

    it('grouped-query attention (4 query heads on 2 kv heads), Dv != D', () => {
      compareWithDense({ mask: new CausalMask([96, 96]), q: [4, 96, 32], k: [2, 96, 32], v: [2, 96, 16] }, 40, 'GQA');
    });

    it('multi-query attention (makeSplashMQA)', () => {
      compareWithDense({ mask: new CausalMask([64, 64]), q: [2, 3, 64, 16], k: [2, 64, 16], v: [2, 64, 16], mqa: true }, 50, 'MQA');
    });

    it('segment ids (packed documents) with a causal mask, on the cpu and js kernels', () => {
      const S = 128;
      const ids = packedIds(2, S, 3);
      for (const backend of ['auto', 'js'] as const) {
        compareWithDense({
          mask: new CausalMask([S, S]), q: [2, 2, S, 16], k: [2, 2, S, 16], v: [2, 2, S, 16],
          seg: { q: ids, kv: ids }, kernelOpts: { backend },
        }, 60, `segment ids (${backend})`);
      }
    });

    it('attention sinks, with GQA, a batch, packed documents and a row with no allowed key', () => {
      const S = 64;
      const ids = packedIds(2, S, 8);
      const segQ = ids.slice();
      segQ[S + 10] = 99; // no key has id 99: that row's softmax holds only its sink
      compareWithDense({
        mask: new CausalMask([S, S]), q: [2, 4, S, 16], k: [2, 2, S, 16], v: [2, 2, S, 16],
        seg: { q: segQ, kv: ids }, sinks: true,
      }, 65, 'sinks');
    });

    it('scale and soft cap (scale first, the cap before masking)', () => {
      compareWithDense({
        mask: new LocalMask([64, 64], [20, 4]), q: [2, 64, 16], k: [2, 64, 16], v: [2, 64, 16],
        kernelOpts: { scale: 0.5, attnLogitsSoftCap: 2 },
      }, 75, 'scale + soft cap');
    });

    it('soft cap (applied before masking)', () => {
      // q scaled up so that many logits sit where tanh bends.
      compareWithDense({
        mask: new CausalMask([64, 64]), q: [2, 64, 16], k: [2, 64, 16], v: [2, 64, 16], qScale: 2,
        kernelOpts: { attnLogitsSoftCap: 3 },
      }, 70, 'soft cap');
    });

    it('rows with no allowed key give out = 0 and zero gradients', () => {
      const S = 64;
      const segQ = Int32Array.from({ length: S }, (_, i) => (i < 40 ? 1 : 9)); // id 9 has no key
      const segKv = new Int32Array(S).fill(1);
      const got = compareWithDense({
        mask: new FullMask([S, S]), q: [2, S, 16], k: [2, S, 16], v: [2, S, 16], seg: { q: segQ, kv: segKv },
      }, 80, 'empty rows');
      const [out, dq] = [got.out, got.grads[0]];
      for (let h = 0; h < 2; h++) {
        for (let i = 0; i < S; i++) {
          const row = (a: Float32Array): Float32Array => a.subarray((h * S + i) * 16, (h * S + i + 1) * 16);
          const empty = i >= 40;
          assert.equal(row(out).every((x) => x === 0), empty, `head ${h} row ${i}: out zero iff the row is empty`);
          assert.equal(row(dq).every((x) => x === 0), empty, `head ${h} row ${i}: dq zero iff the row is empty`);
        }
      }
    });
  });

  describe('bfloat16 compute', () => {
    it('rounds q, k, v and dout at the boundary and nowhere else (sinks stay f32): equals the kernel on bf16 tensors', () => {
      const mask = new CausalMask([64, 64]);
      const kernel = makeSplashMHA(mask, { saveResiduals: true });
      const c: Case = { mask, q: [2, 64, 16], k: [2, 64, 16], v: [2, 64, 16], sinks: true };
      const xs = inputs(c, 90);
      try {
        const got = valueAndGrads((q, k, v, sinks) => splashAttention(kernel, q, k, v, { sinks, computeDtype: 'bfloat16' }), xs, 90);
        const [q, k, v] = xs.slice(0, 3).map((t) => fromFloat32(t.dataSync() as Float32Array, t.shape, 'bfloat16'));
        const sinks = tensor(xs[3].dataSync() as Float32Array, [2], 'float32');
        const fwd = kernel.forwardSync(q, k, v, undefined, { sinks });
        const w = tf.tidy(() => tf.randomNormal([2, 64, 16], 0, 1, 'float32', 97).dataSync() as Float32Array);
        const g = kernel.backwardSync({
          q, k, v, out: fwd.out, logsumexp: fwd.logsumexp, dout: fromFloat32(w, [2, 64, 16], 'bfloat16'), sinks,
        });
        // Same kernel, same bf16 bits in: identical results.
        assert.deepEqual(got.out, toFloat32(fwd.out));
        assert.deepEqual(got.grads, [toFloat32(g.dq), toFloat32(g.dk), toFloat32(g.dv), toFloat32(g.dsinks!)]);
        // And near the f32 dense result: bf16 keeps 8 significant bits (relative rounding 2^-9 per value).
        const want = valueAndGrads((a, b, cc, sk) => denseAttention(c, a, b, cc, sk), xs, 90);
        assert.ok(relErr(got.out, want.out, 'bf16 out') <= 2e-2);
        want.grads.forEach((wg, i) => assert.ok(relErr(got.grads[i], wg, `bf16 grad ${i}`) <= 2e-2));
        assert.ok(relErr(got.out, want.out, 'bf16 out') > 0, 'bf16 compute must differ from f32 somewhere');
      } finally {
        tf.dispose(xs);
      }
    });
  });

  describe('residuals and memory', () => {
    it('the backward gets the forward\'s own out, logsumexp and sinks; the forward runs once per gradient', () => {
      const kernel = makeSplashMHA(new CausalMask([64, 64]), { saveResiduals: true });
      const calls = { fwd: 0, bwd: 0 };
      let saved: unknown;
      const fwd = kernel.forwardSync.bind(kernel);
      const bwd = kernel.backwardSync.bind(kernel);
      let forwardSinks: unknown;
      Object.assign(kernel, {
        forwardSync: (...a: Parameters<typeof kernel.forwardSync>) => {
          calls.fwd++;
          forwardSinks = a[4]?.sinks;
          return (saved = fwd(...a));
        },
        backwardSync: (a: Parameters<typeof kernel.backwardSync>[0]) => {
          calls.bwd++;
          const s = saved as { out: unknown; logsumexp: unknown };
          assert.equal(a.out, s.out, 'backward got a different out');
          assert.equal(a.logsumexp, s.logsumexp, 'backward got a different logsumexp');
          assert.ok(a.sinks !== undefined && a.sinks === forwardSinks, 'backward got other sinks than the forward');
          return bwd(a);
        },
      });
      const xs = inputs({ mask: new CausalMask([64, 64]), q: [2, 64, 16], k: [2, 64, 16], v: [2, 64, 16], sinks: true }, 100);
      valueAndGrads((q, k, v, sinks) => splashAttention(kernel, q, k, v, { sinks }), xs, 100);
      tf.dispose(xs);
      // valueAndGrads runs one plain forward, then one forward + backward under the tape.
      assert.deepEqual(calls, { fwd: 2, bwd: 1 });
    });

    it('leaves tf.memory().numTensors unchanged after 100 forward + backward steps in tf.tidy (with sinks)', () => {
      const kernel = makeSplashMHA(new CausalMask([64, 64]), { saveResiduals: true });
      const ids = packedIds(1, 64, 5);
      const xs = inputs({ mask: new CausalMask([64, 64]), q: [2, 64, 16], k: [2, 64, 16], v: [2, 64, 16], sinks: true }, 110);
      const f = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, sinks: tf.Tensor): tf.Scalar =>
        tf.sum(tf.square(splashAttention(kernel, q, k, v, { segmentIds: { q: ids, kv: ids }, sinks })));
      const before = tf.memory();
      let checksum = 0;
      for (let step = 0; step < 100; step++) {
        checksum += tf.tidy(() => {
          const grads = tf.grads(f as (...a: tf.Tensor[]) => tf.Scalar)(xs);
          assert.equal(grads.length, 4);
          return grads.reduce((s, g) => s + (tf.sum(g).dataSync()[0]), 0);
        });
      }
      const after = tf.memory();
      tf.dispose(xs);
      assert.ok(Number.isFinite(checksum) && checksum !== 0, `gradients ran (checksum ${checksum})`);
      assert.equal(after.numTensors, before.numTensors, 'tensors leaked');
      assert.equal(after.numBytes, before.numBytes, 'bytes leaked');
    });
  });

  describe('errors', () => {
    const mask = new CausalMask([32, 32]);
    const kernel = makeSplashMHA(mask, { saveResiduals: true });
    let good: tf.Tensor[];
    before(() => {
      good = inputs({ mask, q: [2, 32, 8], k: [2, 32, 8], v: [2, 32, 8] }, 120);
    });
    after(() => tf.dispose(good));

    /** The error the kernel itself throws for the same arguments as plain tensors. */
    function kernelError(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, seg?: unknown, sinks?: Tensor): Error {
      const t = (x: tf.Tensor) => tensor(x.dataSync() as Float32Array, x.shape, 'float32');
      try {
        kernel.forwardSync(t(q), t(k), t(v), seg as SegmentIds, sinks ? { sinks } : undefined);
      } catch (e) {
        return e as Error;
      }
      assert.fail('the kernel accepted the arguments');
    }

    it('shape and segment-id errors are the kernel\'s own RangeError / TypeError, message and all', () => {
      const before = tf.memory().numTensors;
      const [q, k, v] = good;
      const wrongSeq = tf.zeros([2, 16, 8]);
      const fewHeads = tf.zeros([3, 32, 8]);
      const bad: [string, tf.Tensor[], unknown, ErrorConstructor][] = [
        ['q length vs mask', [wrongSeq, k, v], undefined, RangeError],
        ['kv heads not dividing', [q, fewHeads, fewHeads], undefined, RangeError],
        ['segment ids too short', [q, k, v], { q: new Int32Array(31), kv: new Int32Array(32) }, RangeError],
        ['segment ids not Int32Array', [q, k, v], { q: [1, 2], kv: new Int32Array(32) }, TypeError],
      ];
      for (const [what, [a, b, c], seg, cls] of bad) {
        const want = kernelError(a, b, c, seg);
        assert.ok(want instanceof cls, `${what}: the kernel throws ${cls.name}`);
        assert.throws(() => splashAttention(kernel, a, b, c, { segmentIds: seg as SegmentIds }),
          (e: Error) => e.constructor === want.constructor && e.message === want.message, what);
      }
      // Sinks of the wrong length: the kernel's RangeError, under the op's own name for them.
      const threeSinks = tf.zeros([3]);
      const sinksWant = kernelError(q, k, v, undefined, tensor(new Float32Array(3), [3], 'float32'));
      assert.equal(sinksWant.message, 'opts.sinks.shape: expected [2] (one logit per query head), got [3]');
      assert.throws(() => splashAttention(kernel, q, k, v, { sinks: threeSinks }),
        (e: Error) => e instanceof RangeError && e.message === sinksWant.message, 'sinks of the wrong length');
      tf.dispose([wrongSeq, fewHeads, threeSinks]);
      assert.equal(tf.memory().numTensors, before, 'a failed call leaked tensors');
      assert.equal(splashAttention(kernel, q, k, v).shape.join(), '2,32,8', 'the op still works after errors');
    });

    it('rejects bad arguments of its own with TypeErrors naming them', () => {
      const [q, k, v] = good;
      const i32 = tf.zeros([2, 32, 8], 'int32');
      const cases: [string, () => unknown, RegExp][] = [
        ['not a kernel', () => splashAttention({} as SplashAttentionKernel, q, k, v), /^kernel: expected a SplashAttentionKernel/],
        ['kernel without residuals', () => splashAttention(makeSplashMHA(mask), q, k, v), /^kernel: .*saveResiduals: true/],
        ['q not a tensor', () => splashAttention(kernel, new Float32Array(512) as never, k, v), /^q: expected a tf\.Tensor.*got Float32Array$/],
        ['int32 k', () => splashAttention(kernel, q, i32, v), /^k\.dtype: expected 'float32'.*got 'int32'/],
        ['opts not an object', () => splashAttention(kernel, q, k, v, 3 as never), /^opts: expected an object, got number 3/],
        ['unknown option', () => splashAttention(kernel, q, k, v, { segmentIDs: {} } as never), /^opts\.segmentIDs: unknown option/],
        ['sinks not a tensor', () => splashAttention(kernel, q, k, v, { sinks: [0, 0] as never }), /^opts\.sinks: expected a tf\.Tensor.*got Array\(2\)$/],
        ['int32 sinks', () => splashAttention(kernel, q, k, v, { sinks: tf.zeros([2], 'int32') }), /^opts\.sinks\.dtype: expected 'float32'.*got 'int32'$/],
        ['computeDtype', () => splashAttention(kernel, q, k, v, { computeDtype: 'float16' } as never),
          /^opts\.computeDtype: expected 'float32' or 'bfloat16', got string 'float16'/],
      ];
      for (const [what, call, msg] of cases) assert.throws(call, (e: Error) => e instanceof TypeError && msg.test(e.message), what);
      i32.dispose();
    });
  });
});
