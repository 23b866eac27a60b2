// What API.md promises of every backend, checked on each one against the reference: segment ids with a
// finite maskValue, a backward that follows the residuals it is given, rejections (never synchronous
// throws) from every async method, inputs left untouched and outputs that are fresh arrays.
import assert from 'node:assert/strict';

import {
  backends, CausalMask, FullMask, LocalMask, makeSplashMHA, toFloat32, tensor,
  type SegmentIds, type SplashOptions, type Tensor,
} from '../lib/index';
import { assertClose, run, type Problem } from './support/compare';
import { randTensor, randomMask } from './support/grid';

const BACKENDS = (['js', 'cpu'] as const).filter((b) => backends().find((s) => s.name === b)?.available);

/** Two documents per row, split at different points in q and kv. */
function twoDocs(sq: number, skv: number): SegmentIds {
  const q = Int32Array.from({ length: sq }, (_, i) => (i < Math.floor(sq * 0.45) ? 1 : 2));
  const kv = Int32Array.from({ length: skv }, (_, j) => (j < Math.floor(skv * 0.55) ? 1 : 2));
  return { q, kv };
}

function problem(mask: Problem['mask'], sq: number, skv: number, seed: number, seg?: SegmentIds): Problem {
  return {
    q: randTensor([2, sq, 32], seed, 'float32', 0.3),
    k: randTensor([2, skv, 32], seed + 1, 'float32'),
    v: randTensor([2, skv, 32], seed + 2, 'float32'),
    dout: randTensor([2, sq, 32], seed + 3, 'float32'),
    seg, mask, mqa: false,
  };
}

function checkAgainstReference(p: Problem, opts: SplashOptions, what: string): void {
  const got = run(p, opts);
  const want = run(p, { ...opts, backend: 'reference' });
  // f32 kernels against the float64 reference on O(1) data (the backend suites' f32 tolerance).
  for (const [name, a, b] of [['out', got.res.out, want.res.out], ['logsumexp', got.res.logsumexp, want.res.logsumexp],
    ['dq', got.grads.dq, want.grads.dq], ['dk', got.grads.dk, want.grads.dk], ['dv', got.grads.dv, want.grads.dv]] as const) {
    assertClose(a, b, 1e-4, `${what}: ${name}`);
  }
}

const copyOf = (t: Tensor): Float32Array => Float32Array.from(toFloat32(t));

for (const backend of BACKENDS) {
  describe(`the call contract on the '${backend}' backend`, () => {
    for (const maskValue of [-3, -50, -1e4]) {
      // A finite maskValue enters the softmax wherever a visited block masks a key, so the blocked kernels
      // equal the dense reference only when no block is skipped: masks whose every block is partial or
      // full (asserted), while the segment ids make keys of other documents masked inside them.
      it(`segment ids with maskValue ${maskValue}: full and partial masks, split and fused backward`, () => {
        const [sq, skv] = [96, 80];
        const seg = twoDocs(sq, skv);
        const masks: [string, Problem['mask']][] = [
          ['full', new FullMask([sq, skv])],
          ['causal, offset 40', new CausalMask([sq, skv], 40)],
          ['local', new LocalMask([sq, skv], [48, 40])],
          ['random', randomMask(sq, skv, 0.3, 7)],
        ];
        for (const [name, mask] of masks) {
          for (const fused of [false, true]) {
            const p = problem(mask, sq, skv, 11, seg);
            const opts: SplashOptions = { backend, maskValue, blockSizes: { blockQ: 32, blockKv: 32, useFusedBwdKernel: fused } };
            const kernel = makeSplashMHA(mask, opts);
            assert.equal(kernel.fwdMaskInfo.stats.empty + kernel.dkvMaskInfo.stats.empty, 0, `${name}: no empty block`);
            checkAgainstReference(p, opts, `${name} ${fused ? 'fused' : 'split'}`);
          }
        }
      });
    }

    it('maskValue -Infinity: a row whose first visited block masks every key still attends to later ones', () => {
      // Queries from 43 on are in the second document, whose keys start at 44: their first 32-key block is
      // all masked, so the running max is still -Infinity after it and must not become NaN.
      const [sq, skv] = [96, 80];
      const seg = twoDocs(sq, skv);
      for (const mask of [new FullMask([sq, skv]), new CausalMask([sq, skv], 40)]) {
        for (const fused of [false, true]) {
          const opts: SplashOptions = { backend, maskValue: -Infinity, blockSizes: { blockQ: 32, blockKv: 32, useFusedBwdKernel: fused } };
          checkAgainstReference(problem(mask, sq, skv, 13, seg), opts, `${mask.constructor.name} ${fused ? 'fused' : 'split'}`);
        }
      }
    });

    it('backward uses the residuals it is given (di from the given out), never recomputed ones', () => {
      const p = problem(new CausalMask([64, 64]), 64, 64, 21);
      const kernel = makeSplashMHA(p.mask, { backend, saveResiduals: true, blockSizes: { blockQ: 32, blockKv: 32 } });
      const ref = makeSplashMHA(p.mask, { backend: 'reference', saveResiduals: true });
      const { out, logsumexp } = kernel.forwardSync(p.q, p.k, p.v);
      const scaled = tensor(toFloat32(out).map((x) => 1.25 * x), out.shape, 'float32');
      const shifted = tensor(toFloat32(logsumexp).map((x) => x + 0.5), logsumexp.shape, 'float32');
      const args = { q: p.q, k: p.k, v: p.v, dout: p.dout };
      const honest = kernel.backwardSync({ ...args, out, logsumexp });
      for (const [what, res] of [['out x 1.25', { out: scaled, logsumexp }], ['logsumexp + 0.5', { out, logsumexp: shifted }]] as const) {
        const got = kernel.backwardSync({ ...args, ...res });
        const want = ref.backwardSync({ ...args, ...res });
        for (const g of ['dq', 'dk', 'dv'] as const) {
          if (what === 'out x 1.25' && g === 'dv') continue; // dv does not depend on di
          assertClose(got[g], want[g], 1e-4, `${what}: ${g}`); // f32 vs float64, as above
          const moved = Math.max(...toFloat32(got[g]).map((x, i) => Math.abs(x - toFloat32(honest[g])[i])));
          assert.ok(moved > 1e-3, `${what}: ${g} did not follow the altered residuals (max change ${moved})`);
        }
      }
    });

    it('every async method rejects (never throws synchronously) on bad input', async () => {
      const p = problem(new CausalMask([32, 32]), 32, 32, 31);
      const kernel = makeSplashMHA(p.mask, { backend, saveResiduals: true });
      const bad = randTensor([2, 31, 32], 1, 'float32');
      const calls: [string, () => Promise<unknown>][] = [
        ['forward', () => kernel.forward(bad, p.k, p.v)],
        ['backward', () => kernel.backward({ q: p.q, k: p.k, v: p.v, out: bad, logsumexp: bad, dout: p.dout })],
        ['backward(null)', () => kernel.backward(null as never)],
        ['vjp', () => kernel.vjp(p.q, bad, p.v)],
      ];
      for (const [what, call] of calls) {
        let promise: Promise<unknown> | undefined;
        assert.doesNotThrow(() => { promise = call(); }, `${what} threw synchronously`);
        await assert.rejects(promise!, (e: unknown) => e instanceof RangeError || e instanceof TypeError, what);
      }
      const { backward } = await kernel.vjp(p.q, p.k, p.v);
      let promise: Promise<unknown> | undefined;
      assert.doesNotThrow(() => { promise = backward(bad); }, 'the vjp backward threw synchronously');
      await assert.rejects(promise!, RangeError);
    });

    it('inputs are never modified and every output is a fresh array (forward, backward, sync and async)', async () => {
      const p = problem(new CausalMask([48, 48]), 48, 48, 41, twoDocs(48, 48));
      const kernel = makeSplashMHA(p.mask, { backend, saveResiduals: true, blockSizes: { blockQ: 16, blockKv: 16 } });
      const inputs = { q: p.q, k: p.k, v: p.v, dout: p.dout };
      const before = Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, copyOf(t)]));
      const segBefore = [Int32Array.from(p.seg!.q), Int32Array.from(p.seg!.kv)];
      const a = kernel.forwardSync(p.q, p.k, p.v, p.seg);
      const b = await kernel.forward(p.q, p.k, p.v, p.seg);
      const resBefore = [copyOf(a.out), copyOf(a.logsumexp)];
      const g1 = kernel.backwardSync({ ...inputs, segmentIds: p.seg, ...a });
      const g2 = await kernel.backward({ ...inputs, segmentIds: p.seg, ...a });
      for (const [k, t] of Object.entries(inputs)) assert.deepEqual(toFloat32(t), before[k], `${k} was modified`);
      assert.deepEqual([p.seg!.q, p.seg!.kv], segBefore, 'segment ids were modified');
      assert.deepEqual([toFloat32(a.out), toFloat32(a.logsumexp)], resBefore, 'the residuals given to backward were modified');
      const inputBuffers = [p.q, p.k, p.v, p.dout].map((t) => t.data.buffer);
      const outputs = [a.out, a.logsumexp, b.out, b.logsumexp, g1.dq, g1.dk, g1.dv, g2.dq, g2.dk, g2.dv];
      const buffers = new Set(outputs.map((t) => t.data.buffer));
      assert.equal(buffers.size, outputs.length, 'two outputs share an array buffer');
      for (const t of outputs) assert.ok(!inputBuffers.includes(t.data.buffer), 'an output aliases an input');
    });
  });
}
