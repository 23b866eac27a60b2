// Attention sinks and the softmax scale on every backend, against the float64 reference (which computes
// both itself; the other backends merge sinks in as a key-less part and scale inside their kernels), on
// a seeded grid crossing sinks × scale × soft cap × masks × GQA/MQA × segment ids × dtypes × split/fused.
// Also: strict option names, scale and sinks validation, and the GPU backends' refusal of a scale.
import assert from 'node:assert/strict';

import {
  backends, CausalMask, LocalMask, makeSplashMHA, makeSplashMQA, MultiHeadMask, tensor,
  type DType, type Mask, type SegmentIds, type SplashOptions, type Tensor,
} from '../lib/index';
import { seededRandom } from '../lib/random';
import { assertClose } from './support/compare';
import { cycler, randTensor, randomMask } from './support/grid';

const BACKENDS = (['js', 'cpu'] as const).filter((b) => backends().find((s) => s.name === b)?.available);

interface Case {
  dtype: DType; mask: 'causal' | 'local' | 'random' | 'multihead'; heads: [number, number]; seg: boolean;
  softCap: number | null; scale: number; sinks: boolean; fused: boolean; seed: number;
}

function cases(count: number, seed: number): Case[] {
  const rand = seededRandom(seed);
  const next = {
    dtype: cycler(['float32', 'bfloat16'] as DType[], rand),
    mask: cycler(['causal', 'local', 'random', 'multihead'] as const, rand),
    heads: cycler([[4, 4], [4, 2], [4, 0]] as [number, number][], rand), // 0 kv heads: MQA
    seg: cycler([false, true], rand),
    softCap: cycler([null, 5], rand),
    scale: cycler([1, 0.125, 0.6], rand),
    sinks: cycler([true, true, false], rand),
    fused: cycler([false, true], rand),
  };
  return Array.from({ length: count }, (_, i) => ({
    dtype: next.dtype(), mask: next.mask(), heads: next.heads(), seg: next.seg(), softCap: next.softCap(),
    scale: next.scale(), sinks: next.sinks(), fused: next.fused(), seed: 1000 + i,
  }));
}

function maskOf(kind: Case['mask'], heads: number, sq: number, skv: number, seed: number): Mask | MultiHeadMask {
  switch (kind) {
    case 'causal': return new CausalMask([sq, skv]);
    case 'local': return new LocalMask([sq, skv], [24, 8]);
    case 'random': return randomMask(sq, skv, 0.5, seed);
    default: return new MultiHeadMask(Array.from({ length: heads }, (_, h) =>
      h % 2 === 0 ? new CausalMask([sq, skv]) : new LocalMask([sq, skv], [16, 0])));
  }
}

/** Forward (with residuals) and backward of one case, sinks passed per call. */
function runCase(c: Case, opts: SplashOptions) {
  const [h, hkv] = c.heads;
  const [sq, skv, d] = [96, 80, 64];
  const mqa = hkv === 0;
  const q = randTensor([h, sq, d], c.seed, c.dtype, 0.5);
  const k = randTensor(mqa ? [skv, d] : [hkv, skv, d], c.seed + 1, c.dtype);
  const v = randTensor(mqa ? [skv, d] : [hkv, skv, d], c.seed + 2, c.dtype);
  const dout = randTensor([h, sq, d], c.seed + 3, c.dtype);
  const seg: SegmentIds | undefined = c.seg
    ? { q: Int32Array.from({ length: sq }, (_, i) => (i < 40 ? 0 : 1)), kv: Int32Array.from({ length: skv }, (_, j) => (j < 30 ? 0 : 1)) }
    : undefined;
  const sinks = c.sinks ? tensor(Float32Array.from({ length: h }, (_, i) => [-1, 0.5, 2, -3][i % 4]), [h], 'float32') : undefined;
  const mask = maskOf(c.mask, h, sq, skv, c.seed + 4);
  const all: SplashOptions = { ...opts, scale: c.scale, attnLogitsSoftCap: c.softCap, saveResiduals: true };
  const kernel = mqa ? makeSplashMQA(mask, all as SplashOptions & { saveResiduals: true }) : makeSplashMHA(mask, all as SplashOptions & { saveResiduals: true });
  const res = kernel.forwardSync(q, k, v, seg, { sinks });
  const grads = kernel.backwardSync({ q, k, v, segmentIds: seg, ...res, dout, sinks });
  return { res, grads };
}

const label = (c: Case) => `${c.dtype} ${c.mask} H${c.heads[0]}/${c.heads[1] || 'MQA'}${c.seg ? ' seg' : ''} cap=${c.softCap} ` +
  `scale=${c.scale}${c.sinks ? ' sinks' : ''} ${c.fused ? 'fused' : 'split'}`;

for (const backend of BACKENDS) {
  describe(`sinks and scale on the '${backend}' backend match the reference`, function () {
    this.timeout(60_000);
    for (const c of cases(16, backend === 'js' ? 5 : 6)) {
      it(label(c), () => {
        const got = runCase(c, { backend, blockSizes: { blockQ: 32, blockKv: 32, useFusedBwdKernel: c.fused } });
        const want = runCase(c, { backend: 'reference' });
        // The backend suites' tolerances: f32 kernels vs float64; bf16 inputs and outputs.
        const tol = c.dtype === 'float32' ? { fwd: 1e-5, grad: 1e-4 } : { fwd: 1e-2, grad: 3e-2 };
        assertClose(got.res.out, want.res.out, tol.fwd, 'out');
        assertClose(got.res.logsumexp, want.res.logsumexp, tol.fwd, 'logsumexp');
        for (const g of ['dq', 'dk', 'dv'] as const) assertClose(got.grads[g], want.grads[g], tol.grad, g);
        if (c.sinks) {
          assert.ok(got.grads.dsinks && want.grads.dsinks, 'dsinks returned');
          assertClose(got.grads.dsinks!, want.grads.dsinks!, tol.grad, 'dsinks');
        } else {
          assert.equal(got.grads.dsinks, undefined, 'no dsinks without sinks');
        }
      });
    }
  });
}

describe('sinks, scale and option names are checked', () => {
  const q = randTensor([2, 16, 8], 1, 'float32');
  it('an unknown option in SplashOptions, BlockSizes or CallOptions is a TypeError naming it', async () => {
    const mask = new CausalMask([16, 16]);
    assert.throws(() => makeSplashMHA(mask, { scal: 0.3 } as never), (e: unknown) => e instanceof TypeError && /^opts\.scal: unknown option/.test(e.message));
    assert.throws(() => makeSplashMHA(mask, { blockSizes: { blockQQ: 8 } } as never), (e: unknown) => e instanceof TypeError && /^blockSizes\.blockQQ/.test(e.message));
    const kernel = makeSplashMHA(mask, { backend: 'js' });
    assert.throws(() => kernel.forwardSync(q, q, q, undefined, { sink: q } as never), (e: unknown) => e instanceof TypeError && /^opts\.sink:/.test(e.message));
  });

  it('scale must be a positive finite number; sinks a float32 [H] tensor without NaN', () => {
    const mask = new CausalMask([16, 16]);
    for (const bad of [0, -1, NaN, Infinity]) assert.throws(() => makeSplashMHA(mask, { scale: bad }), RangeError);
    assert.throws(() => makeSplashMHA(mask, { scale: '1' as never }), TypeError);
    const kernel = makeSplashMHA(mask, { backend: 'js' });
    assert.throws(() => kernel.forwardSync(q, q, q, undefined, { sinks: tensor(new Float32Array(3), [3]) }), (e: unknown) => e instanceof RangeError && /opts\.sinks\.shape: expected \[2\]/.test(e.message));
    assert.throws(() => kernel.forwardSync(q, q, q, undefined, { sinks: tensor(Float32Array.from([0, NaN]), [2]) }), (e: unknown) => e instanceof RangeError && /opts\.sinks\[1\]/.test(e.message));
    assert.throws(() => kernel.forwardSync(q, q, q, undefined, { sinks: randTensor([2], 3, 'bfloat16') }), (e: unknown) => e instanceof TypeError && /opts\.sinks\.dtype/.test(e.message));
  });

  for (const backend of ['cuda', 'rocm'] as const) {
    const available = backends().find((b) => b.name === backend)?.available === true;
    (available ? it : it.skip)(`the '${backend}' backend refuses a scale it would ignore (RangeError)`, () => {
      const kernel = makeSplashMHA(new CausalMask([16, 16]), { backend, scale: 0.5 });
      const x = randTensor([2, 16, 64], 4, 'bfloat16');
      assert.throws(() => kernel.forwardSync(x, x, x), (e: unknown) => e instanceof RangeError && /^scale:/.test(e.message));
    });
  }
});
