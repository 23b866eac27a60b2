// Attention sinks and the softmax scale on every backend, against the float64 reference (which computes
// both itself; js and cpu take the sinks in their forward and leave dsinks to the library, cuda and rocm
// take them in forward and backward kernels; all scale inside their kernels), on a seeded grid crossing
// sinks × scale × soft cap × masks × GQA/MQA × segment ids × dtypes × split/fused. Also: strict option
// names, scale and sinks validation, and the GPU backends on DeviceTensors (those skip without a device).
import assert from 'node:assert/strict';

import {
  backends, CausalMask, DeviceTensor, LocalMask, makeSplashMHA, makeSplashMQA, MultiHeadMask, tensor, toDevice,
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

/** One grid case on `backend` against the reference, with tolerances `tol` (relative norm). */
function checkCase(backend: string, c: Case, tol: { fwd: number; grad: number }): void {
  const got = runCase(c, { backend: backend as SplashOptions['backend'], blockSizes: { blockQ: 32, blockKv: 32, useFusedBwdKernel: c.fused } });
  const want = runCase(c, { backend: 'reference' });
  const at = `${backend} ${label(c)}`;
  assertClose(got.res.out, want.res.out, tol.fwd, `${at}: out`);
  assertClose(got.res.logsumexp, want.res.logsumexp, tol.fwd, `${at}: logsumexp`);
  for (const g of ['dq', 'dk', 'dv'] as const) assertClose(got.grads[g], want.grads[g], tol.grad, `${at}: ${g}`);
  if (c.sinks) {
    assert.ok(got.grads.dsinks && want.grads.dsinks, `${at}: dsinks returned`);
    assertClose(got.grads.dsinks!, want.grads.dsinks!, tol.grad, `${at}: dsinks`);
  } else {
    assert.equal(got.grads.dsinks, undefined, `${at}: no dsinks without sinks`);
  }
}

for (const backend of BACKENDS) {
  describe(`sinks and scale on the '${backend}' backend match the reference`, function () {
    this.timeout(60_000);
    for (const c of cases(16, backend === 'js' ? 5 : 6)) {
      it(label(c), () => {
        // The backend suites' tolerances: f32 kernels vs float64; bf16 inputs and outputs.
        checkCase(backend, c, c.dtype === 'float32' ? { fwd: 1e-5, grad: 1e-4 } : { fwd: 1e-2, grad: 3e-2 });
      });
    }
  });
}

// The GPU backends take the scale and the sinks in their kernels (forward and backward; dsinks reduced
// on the device), so DeviceTensors work with both too. Skipped where the backend has no device.
for (const backend of ['cuda', 'rocm'] as const) {
  const available = backends().find((b) => b.name === backend)?.available === true;
  describe(`sinks and scale on the '${backend}' backend`, function () {
    this.timeout(300_000);
    (available ? it : it.skip)('forward, backward and dsinks match the reference on the seeded grid', () => {
      // test/gpu.test.ts's device tolerances: f32 near exact; bf16 rounds P and dS for the tensor cores.
      for (const c of cases(16, backend === 'cuda' ? 7 : 8)) {
        checkCase(backend, c, c.dtype === 'float32' ? { fwd: 1e-5, grad: 1e-4 } : { fwd: 2e-2, grad: 3e-2 });
      }
    });

    (available ? it : it.skip)('DeviceTensors in, DeviceTensors out (dsinks too), bitwise equal to the host call', async () => {
      const [h, hkv, s, d] = [4, 2, 96, 64];
      const kernel = makeSplashMHA(new LocalMask([s, s], [40, 0]), { backend, scale: 0.125, attnLogitsSoftCap: 5, saveResiduals: true });
      const q = randTensor([h, s, d], 51, 'bfloat16');
      const k = randTensor([hkv, s, d], 52, 'bfloat16');
      const v = randTensor([hkv, s, d], 53, 'bfloat16');
      const dout = randTensor([h, s, d], 54, 'bfloat16');
      const sinks = tensor(Float32Array.from([0.5, -1, 2, -3]), [h], 'float32');
      const seg = { q: Int32Array.from({ length: s }, (_, i) => (i < 50 ? 0 : 1)), kv: Int32Array.from({ length: s }, (_, j) => (j < 50 ? 0 : 1)) };
      const host = kernel.forwardSync(q, k, v, seg, { sinks });
      const hostGrads = kernel.backwardSync({ q, k, v, segmentIds: seg, ...host, dout, sinks });
      // BackwardInputs is typed with host Tensors; the kernel takes DeviceTensors at run time (API.md)
      const dev = (x: Tensor) => toDevice(x, { backend }) as unknown as Tensor;
      const res = await kernel.forward(dev(q), dev(k), dev(v), seg, { sinks });
      assert.ok(res.out instanceof DeviceTensor && res.logsumexp instanceof DeviceTensor);
      assert.deepEqual((await (res.out as unknown as DeviceTensor).toHost()).data, host.out.data, 'out');
      assert.deepEqual((await (res.logsumexp as unknown as DeviceTensor).toHost()).data, host.logsumexp.data, 'logsumexp');
      const grads = await kernel.backward({ q: dev(q), k: dev(k), v: dev(v), segmentIds: seg, out: res.out, logsumexp: res.logsumexp, dout: dev(dout), sinks });
      for (const n of ['dq', 'dk', 'dv', 'dsinks'] as const) {
        const g = grads[n] as unknown as DeviceTensor;
        assert.ok(g instanceof DeviceTensor, n);
        assert.deepEqual((await g.toHost()).data, hostGrads[n]!.data, `${n}: the split backward and dsinks are deterministic`);
        g.dispose();
      }
      assert.deepEqual([...(grads.dsinks as unknown as DeviceTensor).shape], [h]);
      assert.equal((grads.dsinks as unknown as DeviceTensor).dtype, 'float32');
    });
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
});
