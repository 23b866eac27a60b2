// Server-grade behaviour of async calls: worker teardown mid-call, the libuv pool left free, abort,
// the in-flight limit, event-loop slices of the JS backend, detached inputs and allocation failures.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import {
  backends,
  CausalMask,
  FullMask,
  fromFloat32,
  makeSplashMHA,
  setConcurrency,
  toFloat32,
  type Tensor,
} from '../lib/index';
import { randomNormal } from '../lib/random';
import { assertClose } from './support/compare';
import { loopGaps } from './support/loop-gaps';

const cpuAvailable = backends().find((b) => b.name === 'cpu')?.available === true;
const rand = (shape: number[], seed: number): Tensor =>
  fromFloat32(randomNormal(shape.reduce((a, b) => a * b, 1), seed, 0.3), shape, 'float32');

/** q, k, v of [h, s, d] from seeds base, base + 1, base + 2. */
function qkv(h: number, s: number, d: number, base: number): [Tensor, Tensor, Tensor] {
  return [rand([h, s, d], base), rand([h, s, d], base + 1), rand([h, s, d], base + 2)];
}

function isAbortError(e: unknown): boolean {
  return e instanceof DOMException && e.name === 'AbortError';
}

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

describe('reliability of async calls', function () {
  this.timeout(120_000);
  // The sanitizer run (SPLASH_TEST_SCALE=small) repeats the worker teardown 5 times instead of 20.
  const rounds = process.env.SPLASH_TEST_SCALE === 'small' ? 5 : 20;

  for (const backend of ['cpu', 'cuda', 'rocm'] as const) {
    const available = backends().find((b) => b.name === backend)?.available === true;
    // No GPU here: the GPU variants run where a device is present (skipped: no device).
    (available ? it : it.skip)(`${backend}: a worker terminated mid-forward and mid-backward leaves the process running, ${rounds} times`, async () => {
      const script = path.join(__dirname, 'support', 'kernel-worker.js');
      const [h, s, d] = [8, 2048, 128];
      const data = [1, 2, 3, 4, 5, 6].map((seed) => {
        const shared = new Float32Array(new SharedArrayBuffer(h * s * d * 4));
        shared.set(randomNormal(h * s * d, seed, 0.3));
        return shared;
      });
      for (let i = 0; i < rounds; i++) {
        const worker = new Worker(script, { workerData: { backend, heads: h, seq: s, dim: d, data } });
        await new Promise<void>((resolve, reject) => {
          worker.once('error', reject);
          worker.once('message', () => setTimeout(resolve, 30));
        });
        await worker.terminate();
      }
      // The parent still computes, correctly.
      const [q, k, v] = qkv(2, 96, 32, 10);
      const mask = new CausalMask([96, 96]);
      const out = (await makeSplashMHA(mask, { backend }).forward(q, k, v)) as Tensor;
      const ref = makeSplashMHA(mask, { backend: 'reference' }).forwardSync(q, k, v) as Tensor;
      assertClose(out, ref, 1e-5, `out after ${rounds} terminated workers`); // f32 kernels vs float64 reference
    });
  }

  (cpuAvailable ? it : it.skip)('leaves libuv\'s thread pool free: fs.stat answers in < 50 ms while 8 long forwards run', async () => {
    const [h, s, d] = [8, 2048, 128];
    const kernel = makeSplashMHA(new FullMask([s, s]), { backend: 'cpu' });
    const [q, k, v] = qkv(h, s, d, 20);
    await fs.promises.stat(__filename); // fs.promises' own first-use cost stays out of the figure
    let finished = 0;
    const start = performance.now();
    const calls = Array.from({ length: 8 }, () => kernel.forward(q, k, v).then(() => { finished++; }));
    await new Promise((r) => setTimeout(r, 20)); // every call queued or running
    const finishedAtStart = finished;
    // Five probes one after another, while the forwards still run: with kernels holding libuv's 4
    // threads, each would queue behind them. The median keeps one probe that a busy machine
    // descheduled (or a garbage collection) from deciding the test.
    const probes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await fs.promises.stat(__filename);
      probes.push(performance.now() - t0);
    }
    const finishedAtProbes = finished;
    await Promise.all(calls);
    const perForwardMs = (performance.now() - start) / 8;
    assert.ok(finishedAtStart < 8, 'the probes ran while forwards were still in flight');
    assert.ok(finishedAtProbes - finishedAtStart <= 1,
      `${finishedAtProbes - finishedAtStart} forwards finished while the probes waited (${finishedAtStart} before they started)`);
    const sorted = [...probes].sort((x, y) => x - y);
    const median = sorted[2];
    // Queued behind the forwards, a probe would wait for one to end: hundreds of ms here.
    assert.ok(median < 50,
      `fs.stat took ${probes.map((x) => x.toFixed(1)).join(', ')} ms (median ${median.toFixed(1)}) with 8 forwards in flight, each ${perForwardMs.toFixed(0)} ms of the calls' time`);
  });

  for (const backend of ['cpu', 'js'] as const) {
    const skip = backend === 'cpu' && !cpuAvailable;
    (skip ? it.skip : it)(`${backend}: an abort before the start rejects with AbortError and runs nothing`, async () => {
      const [q, k, v] = qkv(2, 64, 32, 30);
      const kernel = makeSplashMHA(new CausalMask([64, 64]), { backend });
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(kernel.forward(q, k, v, undefined, { signal: ac.signal }), isAbortError);
      await assert.rejects(kernel.vjp(q, k, v, undefined, { signal: ac.signal }), isAbortError);
      const dout = rand([2, 64, 32], 33);
      const { out, logsumexp } = makeSplashMHA(new CausalMask([64, 64]), { backend, saveResiduals: true }).forwardSync(q, k, v) as
        { out: Tensor; logsumexp: Tensor };
      await assert.rejects(kernel.backward({ q, k, v, out, logsumexp, dout, signal: ac.signal }), isAbortError);
    });

    (skip ? it.skip : it)(`${backend}: an abort during a long call rejects promptly, and the next call is correct`, async () => {
      const [h, s, d] = backend === 'cpu' ? [8, 4096, 128] : [4, 1024, 64];
      const mask = new FullMask([s, s]);
      const kernel = makeSplashMHA(mask, { backend });
      const [q, k, v] = qkv(h, s, d, 40);
      let t0 = performance.now();
      await kernel.forward(q, k, v);
      const wholeMs = performance.now() - t0;
      const ac = new AbortController();
      t0 = performance.now();
      const call = kernel.forward(q, k, v, undefined, { signal: ac.signal });
      setTimeout(() => ac.abort(), 20);
      await assert.rejects(call, isAbortError);
      const abortedMs = performance.now() - t0;
      // Stopping at the next block row (native) or slice (js) takes a few ms; running on would take the
      // whole call again.
      assert.ok(abortedMs < 20 + 0.5 * wholeMs, `the aborted call settled after ${abortedMs.toFixed(0)} ms; a whole call takes ${wholeMs.toFixed(0)} ms`);
      const [q2, k2, v2] = qkv(2, 96, 32, 50);
      const small = new CausalMask([96, 96]);
      const out = (await makeSplashMHA(small, { backend }).forward(q2, k2, v2)) as Tensor;
      const ref = makeSplashMHA(small, { backend: 'reference' }).forwardSync(q2, k2, v2) as Tensor;
      assertClose(out, ref, 1e-5, 'out after an aborted call'); // f32 kernels vs float64 reference
    });
  }

  (cpuAvailable ? it : it.skip)('cpu: async calls keep the event loop turning while their kernels run', () => {
    const script = path.join(__dirname, 'support', 'loop-stall.js');
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const { stallMs, syncMs, asyncMs } = JSON.parse(r.stdout) as { stallMs: number; syncMs: number; asyncMs: number };
    // Making a call costs the JS thread its input copies (tens of ms); the kernels run elsewhere. A kernel
    // on the JS thread would stall the loop for at least one synchronous forward's time. Half of that
    // leaves room for a busy machine without letting such a kernel through.
    assert.ok(stallMs < syncMs / 2,
      `the event loop stalled ${stallMs.toFixed(0)} ms during ${asyncMs.toFixed(0)} ms of two async calls; one sync call takes ${syncMs.toFixed(0)} ms`);
  });

  (cpuAvailable ? it : it.skip)('maxInFlight = 1 runs calls one at a time, in the order they were made', async () => {
    const long = makeSplashMHA(new FullMask([2048, 2048]), { backend: 'cpu' });
    const short = makeSplashMHA(new CausalMask([64, 64]), { backend: 'cpu' });
    const [ql, kl, vl] = qkv(8, 2048, 128, 60);
    const [qs, ks, vs] = qkv(1, 64, 32, 70);
    const order: string[] = [];
    const track = (name: string, p: Promise<unknown>) => p.then(() => { order.push(name); });
    const previous = setConcurrency({ maxInFlight: 1 });
    try {
      await Promise.all([
        track('long', long.forward(ql, kl, vl)),
        track('short', short.forward(qs, ks, vs)),
        track('long2', long.forward(ql, kl, vl)),
      ]);
    } finally {
      setConcurrency(previous);
    }
    assert.deepEqual(order, ['long', 'short', 'long2']);
    // Without the limit the short call overtakes the long one.
    order.length = 0;
    await Promise.all([track('long', long.forward(ql, kl, vl)), track('short', short.forward(qs, ks, vs))]);
    assert.deepEqual(order, ['short', 'long']);
  });

  it('a call waiting for a slot leaves the queue when aborted', async () => {
    const kernel = makeSplashMHA(new CausalMask([256, 256]), { backend: 'js' });
    const [q, k, v] = qkv(2, 256, 64, 80);
    const previous = setConcurrency({ maxInFlight: 1 });
    try {
      const first = kernel.forward(q, k, v);
      const ac = new AbortController();
      const waiting = kernel.forward(q, k, v, undefined, { signal: ac.signal });
      ac.abort();
      await assert.rejects(waiting, isAbortError);
      await first;
    } finally {
      setConcurrency(previous);
    }
  });

  it('setConcurrency rejects bad limits and unknown options', () => {
    assert.throws(() => setConcurrency({ maxInFlight: 0 }), (e: unknown) => e instanceof RangeError && /maxInFlight/.test(e.message));
    assert.throws(() => setConcurrency({ maxInFlight: 1.5 }), RangeError);
    assert.throws(() => setConcurrency({ maxInFlight: '2' as unknown as number }), TypeError);
    assert.throws(() => setConcurrency({ maxInflight: 2 } as unknown as { maxInFlight: number }), (e: unknown) => e instanceof TypeError && /maxInflight/.test(e.message));
  });

  it('call options: unknown keys and a signal on a sync call are TypeErrors', async () => {
    const kernel = makeSplashMHA(new CausalMask([64, 64]), { backend: 'js' });
    const [q, k, v] = qkv(1, 64, 32, 90);
    await assert.rejects(kernel.forward(q, k, v, undefined, { signl: 1 } as never), (e: unknown) => e instanceof TypeError && /opts\.signl/.test(e.message));
    assert.throws(() => kernel.forwardSync(q, k, v, undefined, { signal: new AbortController().signal }), (e: unknown) => e instanceof TypeError && /opts\.signal/.test(e.message));
    await assert.rejects(kernel.forward(q, k, v, undefined, { signal: 'stop' } as never), (e: unknown) => e instanceof TypeError && /AbortSignal/.test(e.message));
  });

  it('js: an async forward and backward never hold the event loop for long', async () => {
    const [h, s, d] = [4, 1024, 64];
    const kernel = makeSplashMHA(new CausalMask([s, s]), { backend: 'js', saveResiduals: true });
    const [q, k, v] = qkv(h, s, d, 100);
    const dout = rand([h, s, d], 103);
    let res: { out: Tensor; logsumexp: Tensor } | undefined;
    const fwdGaps = await loopGaps(async () => { res = (await kernel.forward(q, k, v)) as { out: Tensor; logsumexp: Tensor }; });
    const bwdGaps = await loopGaps(() => kernel.backward({ q, k, v, out: res!.out, logsumexp: res!.logsumexp, dout }));
    // A call done in one go turns the loop once. Slices of 4 ms plus one tile turn it dozens of times, and
    // a typical turn stays short even when a busy machine stretches a few of them.
    for (const [pass, gaps] of [['forward', fwdGaps], ['backward', bwdGaps]] as const) {
      assert.ok(gaps.length >= 10, `the ${pass} turned the loop ${gaps.length} times`);
      assert.ok(median(gaps) < 15, `the ${pass}'s median turn took ${median(gaps).toFixed(1)} ms`);
    }
    const sync = kernel.forwardSync(q, k, v) as { out: Tensor };
    assert.deepEqual(toFloat32(res!.out), toFloat32(sync.out), 'sliced and one-go forwards are bitwise equal');
  });

  (cpuAvailable ? it : it.skip)('an input whose buffer is transferred away during an async call does not change the result', async () => {
    const [h, s, d] = [4, 1024, 64];
    const kernel = makeSplashMHA(new FullMask([s, s]), { backend: 'cpu' });
    const [q, k, v] = qkv(h, s, d, 110);
    const expected = kernel.forwardSync(q, k, v) as Tensor;
    const call = kernel.forward(q, k, v);
    // Detaches the arrays: their memory now belongs to the clone, which is dropped at once.
    structuredClone([q.data.buffer, k.data.buffer, v.data.buffer], { transfer: [q.data.buffer, k.data.buffer, v.data.buffer] });
    assert.equal(q.data.length, 0, 'q is detached');
    const out = (await call) as Tensor;
    assert.deepEqual(toFloat32(out), toFloat32(expected));
  });

  (cpuAvailable ? it : it.skip)('an output too large to allocate is a RangeError naming it and its size', async () => {
    // out = [H, Sq, Dv] has 2^34 elements while q, k and v are small: one key, a long value row.
    const [h, s, dv] = [64, 4096, 65536];
    const q = rand([h, s, 1], 120);
    const k = rand([h, 1, 1], 121);
    const v = rand([h, 1, dv], 122);
    const kernel = makeSplashMHA(new FullMask([s, 1]), { backend: 'cpu' });
    await assert.rejects(kernel.forward(q, k, v), (e: unknown) => e instanceof RangeError && /^out: cannot allocate 68719476736 bytes/.test(e.message));
  });

  (cpuAvailable ? it : it.skip)('inputs on SharedArrayBuffers are read like any others', async () => {
    const [q, k, v] = qkv(2, 96, 32, 130).map((t) => {
      const shared = new Float32Array(new SharedArrayBuffer(t.data.byteLength));
      shared.set(t.data);
      return fromFloat32(shared, t.shape, 'float32');
    });
    const mask = new CausalMask([96, 96]);
    const out = (await makeSplashMHA(mask, { backend: 'cpu' }).forward(q, k, v)) as Tensor;
    const ref = makeSplashMHA(mask, { backend: 'reference' }).forwardSync(q, k, v) as Tensor;
    assertClose(out, ref, 1e-5, 'out from shared inputs'); // f32 kernels vs float64 reference
  });
});
