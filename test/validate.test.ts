import assert from 'node:assert/strict';
import { CausalMask, FullMask, MultiHeadMask, fromFloat32, makeSplashMHA, makeSplashMQA, QKVLayout, tensor, type Tensor } from '../lib/index';
import { randomNormal } from '../lib/random';

const t = (shape: number[], dtype: 'float32' | 'bfloat16' = 'float32', seed = 1): Tensor =>
  fromFloat32(randomNormal(shape.reduce((a, b) => a * b, 1), seed), shape, dtype);

/** Asserts the error class and that the message names the argument and both values. */
function throwsNaming(fn: () => unknown, cls: typeof TypeError | typeof RangeError, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    for (const p of parts) {
      const ok = typeof p === 'string' ? (e as Error).message.includes(p) : p.test((e as Error).message);
      assert.ok(ok, `message ${JSON.stringify((e as Error).message)} lacks ${String(p)}`);
    }
    return true;
  });
}

describe('validation: kernel options', () => {
  const mask = new CausalMask([16, 16]);
  const cases: [string, unknown, typeof TypeError | typeof RangeError, ...string[]][] = [
    ['unknown backend', { backend: 'tpu' }, TypeError, 'backend', 'tpu'],
    ['non-integer block size', { blockSizes: { blockQ: 12.5 } }, RangeError, 'blockSizes.blockQ', '12.5'],
    ['zero block size', { blockSizes: { blockKv: 0 } }, RangeError, 'blockSizes.blockKv', '0'],
    ['NaN block size', { blockSizes: { blockQDkv: NaN } }, RangeError, 'blockSizes.blockQDkv', 'NaN'],
    ['string block size', { blockSizes: { blockKvDkv: '64' } }, TypeError, 'blockSizes.blockKvDkv', '64'],
    ['blockKvCompute not dividing blockKv', { blockSizes: { blockKv: 16, blockKvCompute: 6 } }, RangeError, 'blockSizes.blockKvCompute', '16', '6'],
    ['blockKvDkvCompute not dividing blockKvDkv', { blockSizes: { blockKvDkv: 16, blockKvDkvCompute: 5 } }, RangeError, 'blockSizes.blockKvDkvCompute', '5'],
    ['blockQDq with the fused backward', { blockSizes: { useFusedBwdKernel: true, blockQDq: 8 } }, RangeError, 'blockSizes.blockQDq', '8'],
    ['blockKvDq with the fused backward', { blockSizes: { useFusedBwdKernel: true, blockKvDq: 8 } }, RangeError, 'blockSizes.blockKvDq', '8'],
    ['unknown layout', { blockSizes: { kLayout: 3 } }, TypeError, 'blockSizes.kLayout', '3'],
    ['non-boolean useFusedBwdKernel', { blockSizes: { useFusedBwdKernel: 1 } }, TypeError, 'blockSizes.useFusedBwdKernel'],
    ['NaN maskValue', { maskValue: NaN }, RangeError, 'maskValue', 'NaN'],
    ['string maskValue', { maskValue: '-1e9' }, TypeError, 'maskValue'],
    ['negative soft cap', { attnLogitsSoftCap: -1 }, RangeError, 'attnLogitsSoftCap', '-1'],
    ['non-integer headShards', { headShards: 1.5 }, RangeError, 'headShards', '1.5'],
    ['zero qSeqShards', { qSeqShards: 0 }, RangeError, 'qSeqShards', '0'],
    ['non-boolean saveResiduals', { saveResiduals: 'yes' }, TypeError, 'saveResiduals'],
  ];
  for (const [what, opts, cls, ...parts] of cases) {
    it(`${what} → ${cls.name}`, () => throwsNaming(() => makeSplashMHA(mask, opts as never), cls, ...parts));
  }
  it('a mask that is not a Mask → TypeError naming mask', () => {
    throwsNaming(() => makeSplashMHA({ shape: [4, 4] } as never), TypeError, 'mask');
  });
  it('accepts block sizes larger than the sequence (one ragged block) and every layout', () => {
    const k = makeSplashMHA(mask, {
      backend: 'reference',
      blockSizes: { blockQ: 64, blockKv: 32, blockKvCompute: 16, qLayout: QKVLayout.SEQ_MINOR, kLayout: QKVLayout.SEQ_MINOR },
    });
    assert.equal(k.fwdMaskInfo.qBlocks, 1);
  });
  it('non-object options and zero or negative counts are refused by the option check itself', () => {
    for (const bad of [null, 5, [1]]) throwsNaming(() => makeSplashMHA(mask, bad as never), TypeError, /^opts: expected an object, got /);
    throwsNaming(() => makeSplashMHA(mask, { blockSizes: [64] } as never), TypeError, /^blockSizes: expected an object, got Array\(1\)$/);
    // The JS backend clamps a shard count below 1 and processMask has its own block check: only these messages
    // show that checkOptions itself refused the zero.
    throwsNaming(() => makeSplashMHA(mask, { headShards: 0 }), RangeError, /^headShards: expected a positive integer, got 0$/);
    throwsNaming(() => makeSplashMHA(mask, { headShards: -2 }), RangeError, /^headShards: expected a positive integer, got -2$/);
    throwsNaming(() => makeSplashMHA(mask, { blockSizes: { blockKv: 0 } }), RangeError, /^blockSizes\.blockKv: expected a positive integer, got 0$/);
  });
  it('soft cap: null is none; a string is a TypeError; zero and Infinity are RangeErrors', () => {
    assert.equal(makeSplashMHA(mask, { backend: 'reference', attnLogitsSoftCap: null }).backend, 'reference');
    assert.equal(makeSplashMHA(mask, { backend: 'reference', attnLogitsSoftCap: 30 }).backend, 'reference');
    throwsNaming(() => makeSplashMHA(mask, { attnLogitsSoftCap: '5' as never }), TypeError, /^attnLogitsSoftCap: expected a positive number or null, got string '5'$/);
    for (const bad of [0, Infinity]) {
      throwsNaming(() => makeSplashMHA(mask, { attnLogitsSoftCap: bad }), RangeError, `attnLogitsSoftCap: expected a positive finite number or null, got ${bad}`);
    }
  });
  it('accepts explicit HEAD_DIM_MINOR layouts, dq block sizes with the split backward and a finite maskValue', () => {
    const k = makeSplashMHA(mask, {
      backend: 'reference',
      maskValue: -1e4,
      blockSizes: {
        qLayout: QKVLayout.HEAD_DIM_MINOR, kLayout: QKVLayout.HEAD_DIM_MINOR, vLayout: QKVLayout.HEAD_DIM_MINOR,
        useFusedBwdKernel: false, blockQ: 16, blockKv: 16, blockQDq: 8, blockKvDq: 4,
      },
    });
    assert.deepEqual([k.dqMaskInfo?.blockQ, k.dqMaskInfo?.blockKv], [8, 4]);
    assert.ok(['cuda', 'rocm', 'cpu', 'js'].includes(makeSplashMHA(mask).backend), 'no options at all: every default');
  });
});

describe('validation: call arguments', () => {
  const H = 4;
  const S = 8;
  const D = 4;
  const kernel = makeSplashMHA(new CausalMask([S, S]), { backend: 'reference' });
  const mqa = makeSplashMQA(new CausalMask([S, S]), { backend: 'reference' });
  const q = t([H, S, D]);
  const k = t([2, S, D], 'float32', 2);
  const v = t([2, S, D], 'float32', 3);
  const call = (a: unknown, b: unknown, c: unknown, seg?: unknown) => kernel.forwardSync(a as Tensor, b as Tensor, c as Tensor, seg as never);

  it('q not a Tensor → TypeError naming q', () => throwsNaming(() => call('q', k, v), TypeError, 'q', 'string'));
  it('Float64Array data → TypeError naming the array type', () =>
    throwsNaming(() => call({ data: new Float64Array(H * S * D), shape: [H, S, D], dtype: 'float32' }, k, v), TypeError, 'q.data', 'Float32Array', 'Float64Array'));
  it('unknown dtype → TypeError', () => throwsNaming(() => call({ ...q, dtype: 'float64' }, k, v), TypeError, 'q.dtype', 'float64'));
  it('data length ≠ shape product → RangeError', () =>
    throwsNaming(() => call({ ...q, shape: [H, S, D + 1] }, k, v), RangeError, 'q.data', String(H * S * (D + 1)), String(H * S * D)));
  it('non-integer dimension → RangeError', () => throwsNaming(() => call({ ...q, shape: [H, S, 0.5] }, k, v), RangeError, 'q.shape[2]', '0.5'));
  it('wrong rank → RangeError naming q.shape', () => throwsNaming(() => call(t([S, D]), k, v), RangeError, 'q.shape', '[8, 4]'));
  it('head count not divisible by kv heads → RangeError', () =>
    throwsNaming(() => call(q, t([3, S, D]), t([3, S, D])), RangeError, 'k.shape', '4', '3'));
  it('k and v head counts differ → RangeError', () => throwsNaming(() => call(q, k, t([1, S, D])), RangeError, 'v.shape', '2', '1'));
  it('head dim of k ≠ q → RangeError', () => throwsNaming(() => call(q, t([2, S, D + 2]), v), RangeError, 'k.shape', 'head dim', '4', '6'));
  it('k and v sequence lengths differ → RangeError', () => throwsNaming(() => call(q, k, t([2, S - 1, D])), RangeError, 'v.shape', '8', '7'));
  it('q sequence length ≠ mask → RangeError', () => throwsNaming(() => call(t([H, S + 1, D]), k, v), RangeError, 'q.shape', 'mask', '8', '9'));
  it('kv sequence length ≠ mask → RangeError', () =>
    throwsNaming(() => call(q, t([2, S + 2, D]), t([2, S + 2, D])), RangeError, 'k.shape', 'mask', '8', '10'));
  it('dtype mismatch between q and k → TypeError', () => throwsNaming(() => call(q, t([2, S, D], 'bfloat16'), v), TypeError, 'k.dtype', 'float32', 'bfloat16'));
  it('batch sizes differ → RangeError', () =>
    throwsNaming(() => call(t([2, H, S, D]), t([3, 2, S, D]), t([3, 2, S, D])), RangeError, 'k.shape', 'batch', '2', '3'));
  it('multi-head mask head count ≠ q heads → RangeError', () => {
    const mh = makeSplashMHA(new MultiHeadMask([new FullMask([S, S]), new FullMask([S, S])]), { backend: 'reference' });
    throwsNaming(() => mh.forwardSync(q, k, v), RangeError, 'q.shape', 'head count', '2', '4');
  });
  it('MQA k with a head dimension → RangeError naming k', () => throwsNaming(() => mqa.forwardSync(q, k, v), RangeError, 'k.shape', 'rank 2'));
  it('segment ids of the wrong length → RangeError', () =>
    throwsNaming(() => call(q, k, v, { q: new Int32Array(S - 1), kv: new Int32Array(S) }), RangeError, 'segmentIds.q', '8', '7'));
  it('segment ids of the wrong type → TypeError', () =>
    throwsNaming(() => call(q, k, v, { q: new Float32Array(S), kv: new Int32Array(S) }), TypeError, 'segmentIds.q', 'Int32Array', 'Float32Array'));
  it('null segment ids mean none; segmentIds.kv is checked like segmentIds.q', () => {
    assert.deepEqual(call(q, k, v, null), call(q, k, v));
    throwsNaming(() => call(q, k, v, { q: new Int32Array(S), kv: new Uint32Array(S) }), TypeError, /^segmentIds\.kv: expected Int32Array, got Uint32Array$/);
    throwsNaming(() => call(q, k, v, { q: new Int32Array(S), kv: new Int32Array(S + 1) }), RangeError,
      /^segmentIds\.kv: expected length 8 \(batch 1 × Skv 8\), got 9$/);
  });
  it('a Tensor whose shape is not an array of positive integers, or null → named errors', () => {
    throwsNaming(() => call(null, k, v), TypeError, /^q: expected a Tensor, got null$/);
    throwsNaming(() => call({ ...q, shape: 'HSD' }, k, v), TypeError, /^q\.shape: expected an array, got string 'HSD'$/);
    throwsNaming(() => call({ ...q, shape: [H, '8', D] }, k, v), TypeError, /^q\.shape\[1\]: expected a positive integer, got string '8'$/);
    throwsNaming(() => call({ data: new Float32Array(0), shape: [H, 0, D], dtype: 'float32' }, k, v), RangeError,
      /^q\.shape\[1\]: expected a positive integer, got 0$/);
  });
  it('v\'s dtype is checked against q\'s like k\'s', () =>
    throwsNaming(() => call(q, k, t([2, S, D], 'bfloat16', 3)), TypeError, /^v\.dtype: expected 'float32' \(q's dtype\), got 'bfloat16'$/));
  it('async forward rejects with the same error', async () => {
    await assert.rejects(kernel.forward(q, t([3, S, D]), t([3, S, D])), RangeError);
  });
  it('backward: wrong dout shape, lse dtype and out dtype are reported by name', () => {
    const k2 = makeSplashMHA(new CausalMask([S, S]), { backend: 'reference', saveResiduals: true });
    const { out, logsumexp } = k2.forwardSync(q, k, v);
    throwsNaming(() => k2.backwardSync({ q, k, v, out, logsumexp, dout: t([H, S, D + 1]) }), RangeError, 'dout.shape', '[4, 8, 4]', '[4, 8, 5]');
    throwsNaming(() => k2.backwardSync({ q, k, v, out, logsumexp: t([H, S], 'bfloat16'), dout: out }), TypeError, 'logsumexp.dtype', 'float32');
    throwsNaming(() => k2.backwardSync({ q, k, v, out: t([H, S, D], 'bfloat16'), logsumexp, dout: out }), TypeError, 'out.dtype');
    // A dout of lower rank whose dims match the expected shape's first ones is still the wrong shape.
    throwsNaming(() => k2.backwardSync({ q, k, v, out, logsumexp, dout: t([H, S]) }), RangeError, /^dout\.shape: expected \[4, 8, 4\], got \[4, 8\]$/);
  });
  it('inputs are never modified', () => {
    const qCopy = q.data.slice();
    kernel.forwardSync(q, k, v);
    assert.deepEqual(q.data, qCopy);
    assert.ok(tensor(q.data.slice(), q.shape));
  });
});
