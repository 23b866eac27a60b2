// mergeAttention and the split-KV / context-parallel recipe of docs/context-parallel.md: attention over
// key shards, merged, equals attention over all keys, forward and backward (each shard's backward with
// the merged residuals), for 1-4 shards, causal / local masks and segment ids, a sink in one shard.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import {
  backends, CausalMask, LocalMask, makeSplashMHA, mergeAttention, tensor, toFloat32,
  type Mask, type SegmentIds, type Tensor,
} from '../lib/index';
import { assertClose } from './support/compare';
import { randTensor } from './support/grid';

const ROOT = path.resolve(__dirname, '..');
const BACKENDS = (['js', 'cpu'] as const).filter((b) => backends().find((s) => s.name === b)?.available);

/** Keys [k0, k1) of a [H, S, D] tensor. */
function keys(t: Tensor, k0: number, k1: number): Tensor {
  const [h, s, d] = t.shape;
  const x = toFloat32(t);
  const part = new Float32Array(h * (k1 - k0) * d);
  for (let i = 0; i < h; i++) part.set(x.subarray((i * s + k0) * d, (i * s + k1) * d), i * (k1 - k0) * d);
  return tensor(part, [h, k1 - k0, d], 'float32');
}

type MaskFor = (k0: number, k1: number) => Mask;

describe('context parallelism: key shards merged with mergeAttention', function () {
  this.timeout(60_000);
  const [H, S, D] = [2, 160, 32];
  const q = randTensor([H, S, D], 1, 'float32', 0.5);
  const k = randTensor([H, S, D], 2, 'float32');
  const v = randTensor([H, S, D], 3, 'float32');
  const dout = randTensor([H, S, D], 4, 'float32');
  const seg: SegmentIds = { q: Int32Array.from({ length: S }, (_, i) => Math.floor(i / 50)), kv: Int32Array.from({ length: S }, (_, j) => Math.floor(j / 50)) };
  const sinks = tensor(Float32Array.from([0.3, -0.8]), [H]);
  const masks: [string, MaskFor, boolean][] = [
    ['causal', (k0, k1) => new CausalMask([S, k1 - k0], -k0), false],
    ['local [30, 10]', (k0, k1) => new LocalMask([S, k1 - k0], [30, 10], -k0), false],
    ['causal + segment ids', (k0, k1) => new CausalMask([S, k1 - k0], -k0), true],
  ];

  for (const backend of BACKENDS) {
    for (const [name, maskFor, withSeg] of masks) {
      for (const cuts of [[0, S], [0, 64, S], [0, 40, 100, S], [0, 16, 60, 130, S]]) {
        it(`${backend}, ${name}, ${cuts.length - 1} shard(s) at ${cuts.join('/')}: forward and backward equal the whole`, () => {
          const opts = { backend, saveResiduals: true as const, blockSizes: { blockQ: 32, blockKv: 32 } };
          const shards = cuts.slice(0, -1).map((k0, i) => {
            const k1 = cuts[i + 1];
            const kernel = makeSplashMHA(maskFor(k0, k1), opts);
            const segmentIds = withSeg ? { q: seg.q, kv: seg.kv.slice(k0, k1) } : undefined;
            const own = i === 0 ? sinks : undefined;
            const sk = keys(k, k0, k1);
            const sv = keys(v, k0, k1);
            return { kernel, k0, k1, k: sk, v: sv, segmentIds, sinks: own, ...kernel.forwardSync(q, sk, sv, segmentIds, { sinks: own }) };
          });
          const merged = mergeAttention(shards);
          const whole = makeSplashMHA(maskFor(0, S), opts);
          const segWhole = withSeg ? seg : undefined;
          const ref = whole.forwardSync(q, k, v, segWhole, { sinks });
          // f32 kernels and merges: rounding only (the backend suites' f32 forward tolerance).
          assertClose(merged.out, ref.out, 1e-5, 'out');
          assertClose(merged.logsumexp, ref.logsumexp, 1e-5, 'logsumexp');

          const refGrads = whole.backwardSync({ q, k, v, segmentIds: segWhole, ...ref, dout, sinks });
          const grads = shards.map((s) => s.kernel.backwardSync({
            q, k: s.k, v: s.v, segmentIds: s.segmentIds, out: merged.out, logsumexp: merged.logsumexp, dout, sinks: s.sinks,
          }));
          const dq = grads.map((g) => toFloat32(g.dq)).reduce((a, b) => a.map((x, i) => x + b[i]));
          assertClose(tensor(dq, q.shape), refGrads.dq, 1e-4, 'dq (sum of the shards\' shares)'); // f32 gradients
          shards.forEach((s, i) => {
            assertClose(grads[i].dk, keys(refGrads.dk, s.k0, s.k1), 1e-4, `dk of shard ${i}`);
            assertClose(grads[i].dv, keys(refGrads.dv, s.k0, s.k1), 1e-4, `dv of shard ${i}`);
          });
          assertClose(grads[0].dsinks!, refGrads.dsinks!, 1e-4, 'dsinks (shard 0 holds the sink)');
        });
      }
    }
  }
});

describe('mergeAttention', () => {
  const part = (out: number[], lse: number[], rows = [1, lse.length]) => ({
    out: tensor(Float32Array.from(out), [...rows, out.length / lse.length], 'float32'),
    logsumexp: tensor(Float32Array.from(lse), rows, 'float32'),
  });

  it('weights each part by exp(lse_i - lse); rows empty in every part give out 0 and lse -Infinity', () => {
    const a = part([1, 2, 9, 9], [Math.log(1), -Infinity]);
    const b = part([3, 4, 9, 9], [Math.log(3), -Infinity]);
    const m = mergeAttention([a, b]);
    assert.deepEqual(Array.from(toFloat32(m.out)), [(1 * 1 + 3 * 3) / 4, (2 * 1 + 4 * 3) / 4, 0, 0]);
    assert.equal(toFloat32(m.logsumexp)[0], Math.fround(Math.log(4)));
    assert.equal(toFloat32(m.logsumexp)[1], -Infinity);
    // A part alone is itself, except that a row with no key gets out 0 whatever the part held there.
    assert.deepEqual(Array.from(toFloat32(mergeAttention([a]).out)), [1, 2, 0, 0]);
  });

  it('keeps the dtype of out; checks its arguments with errors naming parts[i]', () => {
    const half = { out: randTensor([1, 2, 4], 1, 'bfloat16'), logsumexp: tensor(new Float32Array(2), [1, 2]) };
    assert.equal(mergeAttention([half, half]).out.dtype, 'bfloat16');
    const a = part([1, 2], [0]);
    assert.throws(() => mergeAttention([]), RangeError);
    assert.throws(() => mergeAttention(a as never), TypeError);
    assert.throws(() => mergeAttention([a, { out: a.out }] as never), (e: unknown) => e instanceof TypeError && /parts\[1\]\.logsumexp/.test(e.message));
    assert.throws(() => mergeAttention([a, part([1, 2, 3], [0])]), (e: unknown) => e instanceof RangeError && /parts\[1\]\.out\.shape/.test(e.message));
    assert.throws(() => mergeAttention([a, half]), (e: unknown) => e instanceof TypeError && /parts\[1\]\.out\.dtype/.test(e.message));
    assert.throws(() => mergeAttention([{ out: a.out, logsumexp: tensor(new Float32Array(2), [1, 2]) }]), (e: unknown) => e instanceof RangeError && /parts\[0\]\.logsumexp\.shape/.test(e.message));
  });

  it('the recipe in docs/context-parallel.md runs as written', function () {
    this.timeout(60_000);
    const doc = readFileSync(path.join(ROOT, 'docs', 'context-parallel.md'), 'utf8');
    const code = /```js\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(code, 'the page has a js code block');
    // Inside the package, require('splash-attention') resolves to the package itself (the built dist/).
    const dir = path.join(ROOT, 'build');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'context-parallel-doc.js');
    writeFileSync(file, code);
    const r = spawnSync(process.execPath, [file], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /sharded attention equals the whole/);
  });
});
