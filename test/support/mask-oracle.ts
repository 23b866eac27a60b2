// The oracle for processMask: random masks of every kind (Or/And trees, multi-head), block shapes that
// divide, do not divide or exceed the sequence, and checkInfo, which compares a MaskInfo with a
// brute-force block classification of toDense(). Shared by the MaskInfo tests and the mask fuzzer.

import assert from 'node:assert/strict';
import {
  CausalMask, ChunkedCausalMask, DenseMask, FullMask, LocalMask, LogicalAnd, LogicalOr, Mask, makeRandomMask,
} from '../../lib/mask';
import type { MaskInfo } from '../../lib/mask-info';

export function randInt(random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}

export function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)];
}

// ---- random masks ------------------------------------------------------------------------------

/** A dense mask that is random, all-true/false, or a small random tile repeated (so blocks repeat). */
export function randomDense(random: () => number, [qLen, kvLen]: [number, number]): DenseMask {
  const kind = randInt(random, 0, 3);
  if (kind < 2) return makeRandomMask([qLen, kvLen], pick(random, [0, 0.05, 0.5, 0.95, 1]), randInt(random, 0, 1e6));
  const period = randInt(random, 1, 8);
  const tile = makeRandomMask([period, period], 0.5, randInt(random, 0, 1e6)).toDense();
  const data = new Uint8Array(qLen * kvLen);
  for (let q = 0; q < qLen; q++) for (let kv = 0; kv < kvLen; kv++) data[q * kvLen + kv] = tile[(q % period) * period + (kv % period)];
  return new DenseMask(data, [qLen, kvLen]);
}

export function randomLeaf(random: () => number, shape: [number, number], allowDense: boolean): Mask {
  const span = Math.max(...shape);
  const bound = () => (random() < 0.2 ? null : randInt(random, -3, span));
  switch (randInt(random, 0, allowDense ? 4 : 3)) {
    case 0: return new FullMask(shape);
    case 1: return new CausalMask(shape, randInt(random, -span, span));
    case 2: return new LocalMask(shape, [bound(), bound()], randInt(random, -8, 8));
    case 3: return new ChunkedCausalMask(shape, randInt(random, 1, span + 2));
    default: return randomDense(random, shape);
  }
}

/** An Or/And tree of the given depth; the right branch may be shallower. */
export function randomTree(random: () => number, shape: [number, number], depth: number, allowDense: boolean): Mask {
  if (depth === 0) return randomLeaf(random, shape, allowDense);
  const left = randomTree(random, shape, depth - 1, allowDense);
  const right = randomTree(random, shape, randInt(random, 0, depth - 1), allowDense);
  return random() < 0.5 ? left.or(right) : left.and(right);
}

export function randomShape(random: () => number): [number, number] {
  return [randInt(random, 1, 70), randInt(random, 1, 70)];
}

/** Block sizes that divide, do not divide, or exceed the sequence. */
export function randomBlockShape(random: () => number, [qLen, kvLen]: [number, number]): [number, number] {
  const one = (len: number) => pick(random, [1, randInt(random, 1, 16), randInt(random, 1, len), len, len + randInt(random, 1, 9)]);
  return [one(qLen), one(kvLen)];
}

// ---- brute force from toDense ------------------------------------------------------------------

interface BruteBlock {
  kind: number;
  /** zero-padded [blockQ, blockKv] content */
  content: Uint8Array;
}

function bruteForceBlocks(mask: Mask, [blockQ, blockKv]: [number, number]): BruteBlock[] {
  const [qLen, kvLen] = mask.shape;
  const dense = mask.toDense();
  const blocks: BruteBlock[] = [];
  for (let q0 = 0; q0 < qLen; q0 += blockQ) {
    for (let kv0 = 0; kv0 < kvLen; kv0 += blockKv) {
      const content = new Uint8Array(blockQ * blockKv);
      let ones = 0;
      let real = 0;
      for (let q = q0; q < Math.min(q0 + blockQ, qLen); q++) {
        for (let kv = kv0; kv < Math.min(kv0 + blockKv, kvLen); kv++) {
          content[(q - q0) * blockKv + kv - kv0] = dense[q * kvLen + kv];
          ones += dense[q * kvLen + kv];
          real++;
        }
      }
      blocks.push({ kind: ones === 0 ? 0 : ones === real ? 2 : 1, content });
    }
  }
  return blocks;
}

const key = (a: ArrayLike<number>) => Array.from(a).join('');

/** Checks every documented property of `info` for these head masks. */
export function checkInfo(info: MaskInfo, headMasks: readonly Mask[], blockShape: [number, number], isDkv: boolean): void {
  const [blockQ, blockKv] = blockShape;
  const [qLen, kvLen] = headMasks[0].shape;
  const qBlocks = Math.ceil(qLen / blockQ);
  const kvBlocks = Math.ceil(kvLen / blockKv);
  const perHead = qBlocks * kvBlocks;
  assert.deepEqual(
    [info.heads, info.qBlocks, info.kvBlocks, info.blockQ, info.blockKv, info.qSeqLen, info.kvSeqLen, info.isDkv],
    [headMasks.length, qBlocks, kvBlocks, blockQ, blockKv, qLen, kvLen, isDkv],
  );
  assert.equal(info.blockMask.length, headMasks.length * perHead);
  assert.equal(info.maskNext.length, headMasks.length * perHead);

  const counts = [0, 0, 0];
  const distinctStored = new Set<string>();
  const anyDense = headMasks.some((m) => m.program() === null);
  headMasks.forEach((mask, h) => {
    const hasDense = mask.program() === null;
    bruteForceBlocks(mask, blockShape).forEach((expected, b) => {
      const at = h * perHead + b;
      assert.equal(info.blockMask[at], expected.kind, `head ${h} block ${b}`);
      counts[expected.kind]++;
      if (expected.kind === 1 && hasDense) {
        const index = info.maskNext[at];
        assert.ok(info.partialMaskBlocks !== null && index >= 0, `head ${h} block ${b}: stored partial block expected`);
        const stored = info.partialMaskBlocks.subarray(index * blockQ * blockKv, (index + 1) * blockQ * blockKv);
        assert.deepEqual(stored, expected.content, `head ${h} block ${b}: stored content`);
        distinctStored.add(key(expected.content));
      } else {
        assert.equal(info.maskNext[at], -1, `head ${h} block ${b}: maskNext`);
      }
    });
  });
  const [empty, partial, full] = counts;
  assert.deepEqual(info.stats, {
    empty, partial, full, uniquePartial: distinctStored.size, density: (full + partial) / (headMasks.length * perHead),
  });
  if (!anyDense) assert.equal(info.partialMaskBlocks, null);
  else assert.equal(info.partialMaskBlocks?.length ?? 0, distinctStored.size * blockQ * blockKv);

  checkSharing(info, headMasks);
  checkSchedules(info);
}

/** Heads share a schedule exactly when they are equal: same program, or (dense parts) same blockMask and maskNext. */
function checkSharing(info: MaskInfo, headMasks: readonly Mask[]): void {
  const perHead = info.qBlocks * info.kvBlocks;
  const headKey = (h: number) => {
    const program = headMasks[h].program();
    if (program !== null) return `program ${key(program)}`;
    const seg = (a: Uint8Array | Int32Array) => Array.from(a.subarray(h * perHead, (h + 1) * perHead)).join(',');
    return `dense ${seg(info.blockMask)} ${seg(info.maskNext)}`;
  };
  const scheduleOfKey = new Map<string, number>();
  headMasks.forEach((mask, h) => {
    const s = info.headSchedule[h];
    assert.ok(s >= 0 && s < info.numSchedules);
    const k = headKey(h);
    if (!scheduleOfKey.has(k)) scheduleOfKey.set(k, s);
    assert.equal(s, scheduleOfKey.get(k), `head ${h} should share the schedule of its equal heads`);
    const program = mask.program();
    const stored = info.programs.subarray(info.programPtr[s], info.programPtr[s + 1]);
    assert.deepEqual(stored, program ?? new Int32Array(0), `head ${h}: schedule program`);
  });
  assert.equal(info.numSchedules, scheduleOfKey.size, 'one schedule per distinct head');
  assert.equal(new Set(scheduleOfKey.values()).size, scheduleOfKey.size, 'distinct heads get distinct schedules');
}

/** The CSR of every head's schedule lists exactly its active blocks, ascending, with kinds and refs. */
function checkSchedules(info: MaskInfo): void {
  const { qBlocks, kvBlocks, isDkv } = info;
  const rows = isDkv ? kvBlocks : qBlocks;
  assert.equal(info.rowsPerSchedule, rows);
  assert.equal(info.rowPtr.length, info.numSchedules * rows + 1);
  assert.equal(info.rowPtr[0], 0);
  for (let h = 0; h < info.heads; h++) {
    const s = info.headSchedule[h];
    for (let r = 0; r < rows; r++) {
      const expected: [number, number, number][] = [];
      for (let c = 0; c < (isDkv ? qBlocks : kvBlocks); c++) {
        const at = h * qBlocks * kvBlocks + (isDkv ? c * kvBlocks + r : r * kvBlocks + c);
        if (info.blockMask[at] !== 0) expected.push([c, info.blockMask[at], info.maskNext[at]]);
      }
      const begin = info.rowPtr[s * rows + r];
      const end = info.rowPtr[s * rows + r + 1];
      const actual: [number, number, number][] = [];
      for (let i = begin; i < end; i++) actual.push([info.colIdx[i], info.colKind[i], info.colMaskRef[i]]);
      assert.deepEqual(actual, expected, `head ${h} ${isDkv ? 'kv' : 'q'}-row ${r}`);
    }
  }
  assert.equal(info.colIdx.length, info.rowPtr[info.rowPtr.length - 1]);
}


/** A new object equal to computable `m`, built through the public constructors. */
export function rebuild(m: Mask): Mask {
  if (m instanceof FullMask) return new FullMask(m.shape);
  if (m instanceof CausalMask) return new CausalMask(m.shape, m.offset);
  if (m instanceof LocalMask) return new LocalMask(m.shape, m.windowSize, m.offset);
  if (m instanceof ChunkedCausalMask) return new ChunkedCausalMask(m.shape, m.chunkSize);
  if (m instanceof LogicalOr) return rebuild(m.left).or(rebuild(m.right));
  if (m instanceof LogicalAnd) return rebuild(m.left).and(rebuild(m.right));
  throw new Error(`rebuild: not a computable mask: ${m.constructor.name}`);
}
