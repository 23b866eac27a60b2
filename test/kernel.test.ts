import assert from 'node:assert/strict';
import {
  backends,
  CausalMask,
  DenseMask,
  FullMask,
  fromFloat32,
  makeSplashMHA,
  makeSplashMQA,
  toDevice,
  toFloat32,
  type Tensor,
} from '../lib/index';
import { randomNormal } from '../lib/random';

const t = (shape: number[], seed: number): Tensor =>
  fromFloat32(randomNormal(shape.reduce((a, b) => a * b, 1), seed), shape, 'float32');

/** Slices one batch entry out of a [B, ...] tensor. */
function batchEntry(x: Tensor, b: number): Tensor {
  const per = x.data.length / x.shape[0];
  return fromFloat32(toFloat32(x).slice(b * per, (b + 1) * per), x.shape.slice(1), x.dtype);
}

/** Repeats kv heads so that a GQA problem becomes plain MHA. */
function repeatHeads(x: Tensor, times: number): Tensor {
  const [h, s, d] = x.shape;
  const src = toFloat32(x);
  const out = new Float32Array(h * times * s * d);
  for (let i = 0; i < h * times; i++) out.set(src.subarray(Math.floor(i / times) * s * d, (Math.floor(i / times) + 1) * s * d), i * s * d);
  return fromFloat32(out, [h * times, s, d], x.dtype);
}

function maxDiff(a: Tensor, b: Tensor): number {
  const x = toFloat32(a);
  const y = toFloat32(b);
  assert.equal(x.length, y.length);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

describe('kernel object (reference backend)', () => {
  const S = 12;
  const mask = new CausalMask([S, S]);

  it('forward, forwardSync and vjp agree bitwise; saveResiduals selects the result form', async () => {
    const q = t([2, S, 4], 1);
    const k = t([2, S, 4], 2);
    const v = t([2, S, 3], 3);
    const plain = makeSplashMHA(mask, { backend: 'reference' });
    const res = makeSplashMHA(mask, { backend: 'reference', saveResiduals: true });
    const o1 = await plain.forward(q, k, v);
    const o2 = plain.forwardSync(q, k, v);
    assert.deepEqual(o1.shape, [2, S, 3]);
    assert.deepEqual(o1.data, o2.data);
    const r = await res.forward(q, k, v);
    assert.deepEqual(r.out.data, o1.data);
    assert.deepEqual(r.logsumexp.shape, [2, S]);
    assert.equal(r.logsumexp.dtype, 'float32');
    const vjp = await plain.vjp(q, k, v);
    assert.deepEqual(vjp.logsumexp.data, r.logsumexp.data);
    const dout = t([2, S, 3], 4);
    const g1 = await vjp.backward(dout);
    const g2 = res.backwardSync({ q, k, v, out: r.out, logsumexp: r.logsumexp, dout });
    assert.deepEqual(g1.dq.data, g2.dq.data);
    assert.deepEqual(g1.dk.data, g2.dk.data);
    assert.deepEqual(g1.dv.data, g2.dv.data);
    assert.deepEqual(g1.dv.shape, v.shape);
  });

  it('GQA equals MHA on repeated kv heads, with dk/dv summed over each group', () => {
    const q = t([4, S, 4], 5);
    const k = t([2, S, 4], 6);
    const v = t([2, S, 4], 7);
    const dout = t([4, S, 4], 8);
    const kern = makeSplashMHA(mask, { backend: 'reference', saveResiduals: true });
    const gqa = kern.forwardSync(q, k, v);
    const kr = repeatHeads(k, 2);
    const vr = repeatHeads(v, 2);
    const mha = kern.forwardSync(q, kr, vr);
    // float32 outputs of the same float64 computation: identical up to the last rounding.
    assert.ok(maxDiff(gqa.out, mha.out) < 1e-6);
    const g = kern.backwardSync({ q, k, v, ...gqa, dout });
    const gm = kern.backwardSync({ q, k: kr, v: vr, ...mha, dout });
    const summed = (x: Tensor) => {
      const a = toFloat32(x);
      const per = a.length / 4;
      const out = new Float32Array(2 * per);
      for (let h = 0; h < 4; h++) for (let i = 0; i < per; i++) out[(h >> 1) * per + i] += a[h * per + i];
      return fromFloat32(out, k.shape, 'float32');
    };
    assert.ok(maxDiff(g.dk, summed(gm.dk)) < 1e-5); // a float32 sum of two float32 values
    assert.ok(maxDiff(g.dv, summed(gm.dv)) < 1e-5);
    assert.ok(maxDiff(g.dq, gm.dq) < 1e-6);
  });

  it('MQA (k, v without a head dim) equals MHA with one kv head', () => {
    const q = t([3, S, 4], 9);
    const k = t([S, 4], 10);
    const v = t([S, 4], 11);
    const a = makeSplashMQA(mask, { backend: 'reference' }).forwardSync(q, k, v);
    const b = makeSplashMHA(mask, { backend: 'reference' }).forwardSync(q, { ...k, shape: [1, S, 4] }, { ...v, shape: [1, S, 4] });
    assert.deepEqual(a.data, b.data);
  });

  it('a batch dimension computes each entry independently, with batch-major segment ids', () => {
    const q = t([2, 2, S, 4], 12);
    const k = t([2, 2, S, 4], 13);
    const v = t([2, 2, S, 4], 14);
    const segQ = Int32Array.from({ length: 2 * S }, (_, i) => (i % S < 5 ? 0 : 1) + (i >= S ? 7 : 0));
    const kern = makeSplashMHA(new FullMask([S, S]), { backend: 'reference' });
    const out = kern.forwardSync(q, k, v, { q: segQ, kv: segQ });
    assert.deepEqual(out.shape, [2, 2, S, 4]);
    for (let b = 0; b < 2; b++) {
      const seg = segQ.slice(b * S, (b + 1) * S);
      const one = kern.forwardSync(batchEntry(q, b), batchEntry(k, b), batchEntry(v, b), { q: seg, kv: seg });
      assert.deepEqual(batchEntry(out, b).data, one.data);
    }
  });

  it('segment ids are and-ed with the mask', () => {
    const q = t([1, S, 4], 15);
    const k = t([1, S, 4], 16);
    const v = t([1, S, 4], 17);
    const seg = Int32Array.from({ length: S }, (_, i) => (i < 6 ? 0 : 1));
    const dense = new Uint8Array(S * S);
    for (let i = 0; i < S; i++) for (let j = 0; j <= i; j++) dense[i * S + j] = seg[i] === seg[j] ? 1 : 0;
    const viaSeg = makeSplashMHA(mask, { backend: 'reference' }).forwardSync(q, k, v, { q: seg, kv: seg });
    const viaMask = makeSplashMHA(new DenseMask(dense, [S, S]), { backend: 'reference' }).forwardSync(q, k, v);
    assert.deepEqual(viaSeg.data, viaMask.data);
  });

  it('bf16 inputs give bf16 outputs and float32 logsumexp', () => {
    const mk = (seed: number) => fromFloat32(randomNormal(2 * S * 4, seed), [2, S, 4], 'bfloat16');
    const r = makeSplashMHA(mask, { backend: 'reference', saveResiduals: true }).forwardSync(mk(1), mk(2), mk(3));
    assert.equal(r.out.dtype, 'bfloat16');
    assert.ok(r.out.data instanceof Uint16Array);
    assert.equal(r.logsumexp.dtype, 'float32');
  });
});

describe('backends()', () => {
  it('lists all five names; js and reference are always available; unavailable ones say why', () => {
    const list = backends();
    assert.deepEqual(list.map((b) => b.name).sort(), ['cpu', 'cuda', 'js', 'reference', 'rocm']);
    for (const b of list) {
      if (b.name === 'js' || b.name === 'reference') assert.equal(b.available, true);
      if (!b.available) assert.ok(typeof b.reason === 'string' && b.reason.length > 0, `${b.name} has no reason`);
    }
  });
  it('asking by name for an unavailable backend throws Error with the reason', () => {
    for (const b of backends().filter((x) => !x.available)) {
      assert.throws(() => makeSplashMHA(new CausalMask([8, 8]), { backend: b.name as never }), (e: Error) =>
        e.constructor === Error && e.message.includes(b.name) && e.message.includes(b.reason as string));
    }
  });
  it('toDevice without a GPU backend throws Error saying why', function () {
    if (backends().find((b) => b.name === 'cuda')?.available) this.skip();
    assert.throws(() => toDevice(t([2, 2], 1)), (e: Error) => e.constructor === Error && /cuda/.test(e.message));
  });
});
