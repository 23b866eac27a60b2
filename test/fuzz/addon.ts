// The N-API boundary fuzzer: seeded random calls straight into the native addon — well-formed ones and
// ones spoiled by up to three mutations (wrong kinds of values, lying lengths, detached buffers, huge,
// negative, fractional or NaN sizes, foreign handles, overlapping outputs, corrupt schedules), through
// every CPU entry point, prepareSchedule and the GPU planning exports. The contract under test: every
// call returns a sound result or throws (rejects) a TypeError or RangeError; nothing crashes, and the
// ASan build (npm run test:asan) sees no bad memory access. A failure names the seed and iteration.

import assert from 'node:assert/strict';

import { CausalMask, FullMask, LocalMask, makeRandomMask, type Mask } from '../../lib/mask';
import { processMask, type MaskInfo } from '../../lib/mask-info';
import { seededRandom } from '../../lib/random';

/** What the fuzzer calls; every entry point is optional so that an older build fails clearly. */
export type FuzzedAddon = Record<string, ((...args: unknown[]) => unknown) | undefined>;

type Rand = () => number;
const int = (r: Rand, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

const BAD_SCALARS: readonly unknown[] = [
  undefined, null, '3', {}, [], true, NaN, Infinity, -Infinity, -1, 0, 1.5, 2 ** 31, 2 ** 53, 1e300, -(2 ** 40), 10n,
];

function detached(n: number): Float32Array {
  const a = new Float32Array(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
}

function badArray(r: Rand, like: ArrayLike<number> & { length: number }): unknown {
  const n = like.length;
  switch (int(r, 0, 7)) {
    case 0: return new Float64Array(n);
    case 1: return new Int32Array(n);
    case 2: return new Float32Array(Math.max(0, n - int(r, 1, 3)));
    case 3: return detached(n);
    case 4: return Array.from({ length: n }, () => 0.5);
    case 5: return new Uint8Array(n);
    case 6: return pick(r, BAD_SCALARS);
    default: return new BigInt64Array(1);
  }
}

interface Tensor4 { data: Float32Array | Uint16Array; dtype: number; strides: number[] }

function randomMask(r: Rand, q: number, kv: number): Mask {
  switch (int(r, 0, 3)) {
    case 0: return new FullMask([q, kv]);
    case 1: return new CausalMask([q, kv], int(r, -4, 4));
    case 2: return new LocalMask([q, kv], [int(r, 0, 8), r() < 0.5 ? null : int(r, 0, 8)]);
    default: return makeRandomMask([q, kv], 0.5, int(r, 0, 1e6));
  }
}

/** A well-formed CPU call (forward or backward), its schedules' MaskInfos, and its output names. */
function validCall(r: Rand, addon: FuzzedAddon, backward: boolean) {
  const batch = int(r, 1, 2), kvHeads = int(r, 1, 3), heads = kvHeads * int(r, 1, 2);
  const qSeq = int(r, 1, 40), kvSeq = int(r, 1, 40), d = int(r, 1, 16), dv = int(r, 1, 16);
  const dtype = int(r, 0, 2);
  const tensor = (h: number, s: number, dim: number, f32 = false): Tensor4 => {
    const n = batch * h * s * dim;
    const data = dtype === 0 || f32 ? Float32Array.from({ length: n }, () => r() - 0.5)
      : Uint16Array.from({ length: n }, () => 0x3c00 + int(r, -512, 512));  // small values in bf16 and f16 alike
    return { data, dtype: f32 ? 0 : dtype, strides: [h * s * dim, s * dim, dim, 1] };
  };
  const mask = randomMask(r, qSeq, kvSeq);
  const block = (len: number) => int(r, 1, len + 4);
  const [bq, bkv] = [block(qSeq), block(kvSeq)];
  const infos: Record<string, MaskInfo> = {};
  const call: Record<string, unknown> = {
    batch, heads, kvHeads, qSeq, kvSeq, headDim: d, headDimV: dv,
    q: tensor(heads, qSeq, d), k: tensor(kvHeads, kvSeq, d), v: tensor(kvHeads, kvSeq, dv),
    segmentIdsQ: null, segmentIdsKv: null, maskValue: pick(r, [-1e30, -3, -Infinity]), softCap: pick(r, [0, 0, 5]),
    numThreads: int(r, 0, 3), headShards: int(r, 1, 3), blockKvCompute: bkv, blockKvDkvCompute: bkv,
  };
  if (r() < 0.3) {
    call.segmentIdsQ = Int32Array.from({ length: batch * qSeq }, (_, i) => Math.floor((i % qSeq) / 7));
    call.segmentIdsKv = Int32Array.from({ length: batch * kvSeq }, (_, i) => Math.floor((i % kvSeq) / 7));
  }
  if (!backward) {
    infos.fwdSchedule = processMask(mask, [bq, bkv]);
    call.saveLse = r() < 0.8;
    call.out = tensor(heads, qSeq, dv);
    call.lse = tensor(heads, qSeq, 1, true);
  } else {
    const fused = r() < 0.5;
    call.fusedBwd = fused;
    infos.dkvSchedule = processMask(mask, [bq, bkv], { isDkv: true });
    if (!fused) infos.dqSchedule = processMask(mask, [bq, bkv]);
    call.out = tensor(heads, qSeq, dv);
    call.lse = tensor(heads, qSeq, 1, true);
    call.dout = tensor(heads, qSeq, dv);
    call.dq = tensor(heads, qSeq, d);
    call.dk = tensor(kvHeads, kvSeq, d);
    call.dv = tensor(kvHeads, kvSeq, dv);
  }
  for (const [key, info] of Object.entries(infos)) call[key] = entry(addon, 'prepareSchedule')(info);
  const outputs = backward ? ['dq', 'dk', 'dv'] : ['out', 'lse'];
  return { call, infos, outputs };
}

/** One random mutation of a call. */
function spoilCall(r: Rand, call: Record<string, unknown>, addon: FuzzedAddon): void {
  const keys = Object.keys(call);
  const key = pick(r, keys);
  const value = call[key];
  if (value !== null && typeof value === 'object' && 'data' in (value as object)) {
    const t = { ...(value as Tensor4) };
    switch (int(r, 0, 4)) {
      case 0: t.data = badArray(r, ArrayBuffer.isView(t.data) ? t.data : new Float32Array(4)) as Float32Array; break;
      case 1: t.strides = (Array.isArray(t.strides) ? t.strides : [1, 1, 1, 1]).map((s) => (r() < 0.5 ? s : pick(r, [-1, 2 ** 52, 2 ** 60, NaN, 0, s + 1]))); break;
      case 2: t.dtype = pick(r, [3, -1, '0', NaN, 1, 2]) as number; break;
      case 3: t.strides = pick(r, [[1, 2, 3], null, 'x', [0, 0, 0, 0]]) as number[]; break;
      default: t.data = ((call[pick(r, ['q', 'k', 'v', 'out'])] as Tensor4 | undefined)?.data ?? t.data); break;  // aliasing
    }
    call[key] = t;
  } else if (key.endsWith('Schedule')) {
    call[key] = pick(r, [entry(addon, 'cancelToken')(), {}, undefined, entry(addon, 'prepareSchedule')(processMask(new FullMask([3, 3]), [2, 2]))]);
  } else if (key.startsWith('segmentIds')) {
    call[key] = pick(r, [new Int32Array(int(r, 0, 5)), new Float32Array(4), null, 'ids']);
  } else {
    call[key] = pick(r, BAD_SCALARS);
  }
}

/** One random mutation of a MaskInfo (for prepareSchedule and gpuCheckSchedule). */
function spoilInfo(r: Rand, info: MaskInfo): Record<string, unknown> {
  const o: Record<string, unknown> = { ...info };
  const arrays = ['headSchedule', 'rowPtr', 'colIdx', 'colKind', 'colMaskRef', 'programs', 'programPtr', 'qShardBounds', 'partialMaskBlocks'];
  const scalars = ['heads', 'qBlocks', 'kvBlocks', 'blockQ', 'blockKv', 'numSchedules', 'rowsPerSchedule', 'isDkv'];
  if (r() < 0.6) {
    const key = pick(r, arrays);
    const a = o[key] as Int32Array | Uint8Array | null;
    if (a === null || a.length === 0 || r() < 0.3) {
      o[key] = badArray(r, a ?? new Int32Array(2));
    } else {
      const copy = a.slice();
      copy[int(r, 0, copy.length - 1)] = pick(r, [-1, 2 ** 31 - 1, -(2 ** 31), 255, 3, 7, 99, copy.length]);
      o[key] = copy;
    }
  } else {
    o[pick(r, scalars)] = pick(r, BAD_SCALARS);
  }
  return o;
}

/** How the fuzzed calls ended. */
export interface FuzzStats { returned: number; typeErrors: number; rangeErrors: number; runtimeErrors: number }

/** Calls `fn`; a sound outcome is a return (awaited for promises) or a TypeError / RangeError. GPU device
 *  calls may also fail with a runtime Error (no device here). */
async function expectSound(stats: FuzzStats, what: string, fn: () => unknown, runtimeErrorsAllowed = false): Promise<void> {
  try {
    await fn();
    stats.returned++;
  } catch (e) {
    if (e instanceof TypeError) stats.typeErrors++;
    else if (e instanceof RangeError) stats.rangeErrors++;
    else if (runtimeErrorsAllowed && e instanceof Error) stats.runtimeErrors++;
    else assert.fail(`${what}: threw ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`);
  }
}

/** The entry point `name`, which must exist. */
function entry(addon: FuzzedAddon, name: string): (...args: unknown[]) => unknown {
  const fn = addon[name];
  if (typeof fn !== 'function') throw new Error(`the addon has no ${name} (a stale build?)`);
  return fn;
}

const NO_NAN = (a: ArrayLike<number>) => Array.prototype.every.call(a, (x: number) => !Number.isNaN(x));

/** Runs `count` fuzzed calls from `seed`; throws on the first unsound outcome. */
export async function fuzzAddon(addon: FuzzedAddon, seed: number, count: number): Promise<FuzzStats> {
  const r = seededRandom(seed);
  const stats: FuzzStats = { returned: 0, typeErrors: 0, rangeErrors: 0, runtimeErrors: 0 };
  const call = (name: string) => entry(addon, name);
  for (let i = 0; i < count; i++) {
    const where = `addon fuzz (seed ${seed}, iteration ${i})`;
    const target = r();
    if (target < 0.6) {
      // CPU kernels: well-formed (results checked) or spoiled.
      const backward = r() < 0.4;
      const { call: args, outputs } = validCall(r, addon, backward);
      const mutations = r() < 0.25 ? 0 : int(r, 1, 3);
      for (let m = 0; m < mutations; m++) spoilCall(r, args, addon);
      const name = (backward ? 'backward' : 'forward') + (r() < 0.5 ? 'Sync' : '');
      if (r() < 0.05) {
        await expectSound(stats, `${where} ${name}(not an object)`, () => call(name)(pick(r, [undefined, null, 3, 'call'])));
        continue;
      }
      let threw = false;
      await expectSound(stats, `${where} ${name} with ${mutations} mutations`, async () => {
        try {
          return await call(name)(args);
        } catch (e) {
          threw = true;
          throw e;
        }
      });
      if (mutations === 0) {
        assert.ok(!threw, `${where}: a well-formed ${name} call threw`);
        for (const o of outputs) {
          const data = (args[o] as Tensor4).data;
          if (o === 'lse' && !args.saveLse) continue;
          if (data instanceof Float32Array) assert.ok(NO_NAN(data), `${where}: ${name} wrote NaN into ${o}`);
        }
      }
    } else if (target < 0.8) {
      const info = processMask(randomMask(r, int(r, 1, 40), int(r, 1, 40)), [int(r, 1, 12), int(r, 1, 12)], { isDkv: r() < 0.5 });
      const spoiled = spoilInfo(r, info);
      await expectSound(stats, `${where} prepareSchedule`, () => call('prepareSchedule')(spoiled));
      await expectSound(stats, `${where} gpuCheckSchedule`, () => call('gpuCheckSchedule')(spoiled));
    } else {
      const n = () => pick(r, [int(r, 0, 40), ...BAD_SCALARS]);
      const small = () => int(r, 1, 9);
      switch (int(r, 0, 5)) {
        case 0: await expectSound(stats, `${where} gpuPackMaskBits`, () => call('gpuPackMaskBits')(pick(r, [new Uint8Array(int(r, 0, 64)), new Int8Array(4), 'x']), n(), n())); break;
        case 1: await expectSound(stats, `${where} gpuSegmentRanges`, () => call('gpuSegmentRanges')(pick(r, [new Int32Array(int(r, 0, 40)), new Uint32Array(3)]), n(), n(), n())); break;
        case 2: await expectSound(stats, `${where} gpuWorkOrder`, () => call('gpuWorkOrder')(Int32Array.from({ length: int(r, 0, 12) }, () => int(r, -5, 20)), n(), n(), n(), n(), n(), n())); break;
        case 3: await expectSound(stats, `${where} gpuPlanForward`, () => call('gpuPlanForward')({
          dtype: int(r, 0, 3), headDim: n(), headDimV: n(), batch: small(), heads: small(), kvHeads: small(), qSeq: n(), kvSeq: n(),
          blockQ: n(), blockKv: n(), segments: r() < 0.5, maskValue: -1e30, force: pick(r, ['auto', 'simt', 'mma', 'x']),
          device: pick(r, [{ hip: false, ccMajor: int(r, 7, 9), ccMinor: 0, maxSmem: 101376, multiprocessors: 132 }, null, {}]),
        })); break;
        case 4: await expectSound(stats, `${where} gpuBufferInfo`, () => call('gpuBufferInfo')(pick(r, [call('cancelToken')(), {}, 1]))); break;
        default: await expectSound(stats, `${where} gpuToDevice`, () => call('gpuToDevice')(badArray(r, new Float32Array(4)), n()), true); break;
      }
    }
  }
  return stats;
}
