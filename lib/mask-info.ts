// MaskInfo: a mask cut into blocks, classified, deduplicated and turned into the
// schedules the kernels iterate. Computable masks are classified analytically per block and never
// materialised; partial blocks of dense masks are stored once per distinct content.

import { describeValue } from './describe-value';
import { Mask, MultiHeadMask } from './mask';

// Block classes (mask.ts's BlockClass), kept local so hot loops read no imported bindings.
const BLOCK_EMPTY = 0;
const BLOCK_PARTIAL = 1;
const BLOCK_FULL = 2;

/** Block counts of a {@link MaskInfo}, over all its heads. */
export interface MaskInfoStats {
  /** Blocks with no allowed element: the kernels never visit them. */
  empty: number;
  /** Blocks with some allowed elements: the kernels evaluate the mask on them. */
  partial: number;
  /** Blocks with every element allowed: the kernels run them with no mask arithmetic. */
  full: number;
  /** Distinct stored partial blocks (dense masks only; 0 when every mask is computable). */
  uniquePartial: number;
  /** (full + partial) / (heads · qBlocks · kvBlocks): the share of blocks the kernels visit, in [0, 1]. */
  density: number;
}

/**
 * A mask cut into blocks, as {@link processMask} returns it and the kernels consume it: each block's
 * class (empty, partial, full), the stored partial blocks of dense masks, the counts, and the
 * per-row schedules the kernels iterate. Draw one with {@link renderMaskInfo}.
 */
export interface MaskInfo {
  /** 1 for a plain 2-D mask (applied to every head), else the MultiHeadMask's head count. */
  heads: number;
  /** Blocks along q: ceil(qSeqLen / blockQ). */
  qBlocks: number;
  /** Blocks along kv: ceil(kvSeqLen / blockKv). */
  kvBlocks: number;
  /** Block height in query tokens. */
  blockQ: number;
  /** Block width in key tokens. */
  blockKv: number;
  /** Query sequence length in tokens (the last block row may be ragged). */
  qSeqLen: number;
  /** Key sequence length in tokens (the last block column may be ragged). */
  kvSeqLen: number;
  /** Whether the schedule runs over kv-blocks (the dk/dv pass) rather than q-blocks. */
  isDkv: boolean;
  /** Block classes, shape [heads, qBlocks, kvBlocks] (q-major, also for isDkv): 0 empty, 1 partial, 2 full. */
  blockMask: Uint8Array;
  /** [numPartial, blockQ, blockKv] stored (dense) partial blocks, zero-padded; null when none. */
  partialMaskBlocks: Uint8Array | null;
  /** Shape [heads, qBlocks, kvBlocks]: index into partialMaskBlocks, -1 where not a stored partial block. */
  maskNext: Int32Array;
  /** Block counts over all heads. */
  stats: MaskInfoStats;

  // ---- schedule consumed by the kernels --------------------------------------
  /** Number of distinct schedules (heads with identical masks share one). */
  numSchedules: number;
  /** [heads] → schedule index. */
  headSchedule: Int32Array;
  /**
   * CSR over rows. Rows are q-blocks when !isDkv, kv-blocks when isDkv.
   * Row r of schedule s is row index s * rowsPerSchedule + r; rowPtr has numSchedules*rows + 1 entries.
   */
  rowsPerSchedule: number;
  /** CSR row offsets into colIdx / colKind / colMaskRef, numSchedules · rowsPerSchedule + 1 entries. */
  rowPtr: Int32Array;
  /** [nnz] block index along the other axis (kv-block for fwd/dq, q-block for dkv), ascending. */
  colIdx: Int32Array;
  /** [nnz] 1 partial, 2 full. */
  colKind: Uint8Array;
  /** [nnz] index into partialMaskBlocks for stored partial blocks; -1 when the program is evaluated (or full). */
  colMaskRef: Int32Array;
  /** Postfix programs of the schedules, concatenated; programPtr has numSchedules + 1 entries. An empty
   *  program (ptr[s] == ptr[s+1]) means the schedule's partial blocks are all stored (dense masks). */
  programs: Int32Array;
  /** Offsets of each schedule's program in `programs`, numSchedules + 1 entries. */
  programPtr: Int32Array;
  /** q-block boundaries of the qSeqShards shards: [qSeqShards + 1], first 0, last qBlocks. */
  qShardBounds: Int32Array;
}

/** Options of {@link processMask}. */
export interface ProcessMaskOptions {
  /** Build the schedule per kv-block (for the dk/dv pass) instead of per q-block. Default false. */
  isDkv?: boolean;
  /** Split the q-blocks into this many contiguous shards with their own schedules (1 to qBlocks;
   *  default 1). Results never depend on it. */
  qSeqShards?: number;
}


// ---- processMask -------------------------------------------------------------------------------

/**
 * Cuts `mask` into blocks of `blockShape` tokens (the last ones ragged), classifies each block as
 * empty, partial or full, stores the partial blocks of dense masks once per distinct content, and
 * builds the kernels' schedules. Computable masks are classified analytically: a 131072² causal mask
 * takes milliseconds and O(blocks) memory. Kernels call this for you; call it to inspect or draw a
 * mask's sparsity.
 *
 * @param mask - a 2-D mask (heads = 1) or a MultiHeadMask (one mask per head).
 * @param blockShape - `[blockQ, blockKv]` in tokens, positive integers (larger than the sequence is allowed).
 * @param opts - see {@link ProcessMaskOptions}.
 * @throws TypeError when `mask` is not a Mask or MultiHeadMask, `blockShape` is not an array of
 *   numbers, or an option has the wrong type; RangeError when a block size is not a positive integer
 *   or `qSeqShards` is outside [1, qBlocks].
 * @example
 * ```ts
 * import { CausalMask, processMask } from 'splash-attention';
 *
 * const info = processMask(new CausalMask([2048, 2048]), [128, 128]);
 * info.stats; // { empty: 120, partial: 16, full: 120, uniquePartial: 0, density: 0.53125 }
 * ```
 */
export function processMask(
  mask: Mask | MultiHeadMask,
  blockShape: [number, number],
  opts: ProcessMaskOptions = {},
): MaskInfo {
  const headMasks = headMasksOf(mask);
  const [blockQ, blockKv] = checkBlockShape(blockShape);
  const isDkv = checkOptions(opts);
  const [qSeqLen, kvSeqLen] = headMasks[0].shape;
  const grid: BlockGrid = {
    blockQ, blockKv, qSeqLen, kvSeqLen,
    qBlocks: Math.ceil(qSeqLen / blockQ),
    kvBlocks: Math.ceil(kvSeqLen / blockKv),
  };
  const qShardBounds = shardBounds(opts.qSeqShards, grid.qBlocks);
  const heads = headMasks.length;
  const blocksPerHead = grid.qBlocks * grid.kvBlocks;
  const blockMask = new Uint8Array(heads * blocksPerHead);
  const maskNext = new Int32Array(heads * blocksPerHead).fill(-1);
  const store = new PartialBlockStore(blockQ * blockKv);
  const { headSchedule, scheduleHeads, schedulePrograms } = classifyHeads(headMasks, grid, blockMask, maskNext, store);
  const csr = buildSchedules(grid, isDkv, scheduleHeads, blockMask, maskNext);
  const { programs, programPtr } = concatPrograms(schedulePrograms);
  return {
    heads,
    qBlocks: grid.qBlocks,
    kvBlocks: grid.kvBlocks,
    blockQ,
    blockKv,
    qSeqLen,
    kvSeqLen,
    isDkv,
    blockMask,
    partialMaskBlocks: store.blocks(),
    maskNext,
    stats: countBlocks(blockMask, store.count),
    numSchedules: scheduleHeads.length,
    headSchedule,
    rowsPerSchedule: isDkv ? grid.kvBlocks : grid.qBlocks,
    ...csr,
    programs,
    programPtr,
    qShardBounds,
  };
}

interface BlockGrid {
  blockQ: number;
  blockKv: number;
  qSeqLen: number;
  kvSeqLen: number;
  qBlocks: number;
  kvBlocks: number;
}

function headMasksOf(mask: unknown): readonly Mask[] {
  if (mask instanceof MultiHeadMask) return mask.masks;
  if (mask instanceof Mask) return [mask];
  throw new TypeError(`mask: expected a Mask or MultiHeadMask, got ${describeValue(mask)}`);
}

function checkBlockShape(blockShape: unknown): [number, number] {
  if (!Array.isArray(blockShape)) {
    throw new TypeError(`blockShape: expected [blockQ, blockKv] of positive integers, got ${describeValue(blockShape)}`);
  }
  if (blockShape.length !== 2) throw new RangeError(`blockShape: expected 2 entries [blockQ, blockKv], got ${blockShape.length}`);
  blockShape.forEach((b, i) => {
    if (typeof b !== 'number') throw new TypeError(`blockShape[${i}]: expected a positive integer, got ${describeValue(b)}`);
    if (!Number.isInteger(b) || b < 1) throw new RangeError(`blockShape[${i}]: expected a positive integer, got ${b}`);
  });
  return [blockShape[0], blockShape[1]];
}

/** Checks opts and returns isDkv. */
function checkOptions(opts: unknown): boolean {
  if (typeof opts !== 'object' || opts === null) throw new TypeError(`opts: expected an object, got ${describeValue(opts)}`);
  const isDkv = (opts as ProcessMaskOptions).isDkv ?? false;
  if (typeof isDkv !== 'boolean') throw new TypeError(`opts.isDkv: expected a boolean, got ${describeValue(isDkv)}`);
  return isDkv;
}

/** qSeqShards contiguous, as even as possible ranges of q-blocks. */
function shardBounds(qSeqShards: unknown, qBlocks: number): Int32Array {
  const shards = qSeqShards ?? 1;
  if (typeof shards !== 'number') throw new TypeError(`qSeqShards: expected a positive integer, got ${describeValue(shards)}`);
  if (!Number.isInteger(shards) || shards < 1 || shards > qBlocks) {
    throw new RangeError(`qSeqShards: expected an integer in [1, ${qBlocks}] (the number of q-blocks), got ${shards}`);
  }
  const bounds = new Int32Array(shards + 1);
  for (let i = 0; i <= shards; i++) bounds[i] = Math.floor((i * qBlocks) / shards);
  return bounds;
}

// ---- classification and head sharing -----------------------------------------------------------

/**
 * Classifies every head into blockMask/maskNext. Heads share a schedule when they are the same
 * object, have equal programs, or (dense parts) have equal blockMask and maskNext; a head that
 * shares with an earlier one is copied rather than classified again.
 */
function classifyHeads(
  headMasks: readonly Mask[], grid: BlockGrid, blockMask: Uint8Array, maskNext: Int32Array, store: PartialBlockStore,
): { headSchedule: Int32Array; scheduleHeads: number[]; schedulePrograms: (Int32Array | null)[] } {
  const blocksPerHead = grid.qBlocks * grid.kvBlocks;
  const headSchedule = new Int32Array(headMasks.length);
  const scheduleHeads: number[] = []; // the first head of each schedule
  const schedulePrograms: (Int32Array | null)[] = [];
  const byObject = new Map<Mask, number>();
  const byProgram = new Map<string, number>();
  const denseByHash = new Map<number, number[]>();

  headMasks.forEach((mask, head) => {
    const base = head * blocksPerHead;
    const program = mask.program();
    const programKey = program === null ? null : program.join(',');
    let schedule = byObject.get(mask) ?? (programKey === null ? undefined : byProgram.get(programKey));
    if (schedule !== undefined) {
      const from = scheduleHeads[schedule] * blocksPerHead;
      blockMask.copyWithin(base, from, from + blocksPerHead);
      maskNext.copyWithin(base, from, from + blocksPerHead);
    } else {
      classifyHead(mask, grid, blockMask, maskNext, base, program === null ? store : null);
      if (programKey !== null) {
        schedule = scheduleHeads.length;
        byProgram.set(programKey, schedule);
      } else {
        const hash = hashHead(blockMask, maskNext, base, blocksPerHead);
        const sameHash = denseByHash.get(hash) ?? [];
        schedule = sameHash.find((s) => sameHead(blockMask, maskNext, scheduleHeads[s] * blocksPerHead, base, blocksPerHead));
        if (schedule === undefined) {
          schedule = scheduleHeads.length;
          sameHash.push(schedule);
          denseByHash.set(hash, sameHash);
        }
      }
      if (schedule === scheduleHeads.length) {
        scheduleHeads.push(head);
        schedulePrograms.push(program);
      }
    }
    byObject.set(mask, schedule);
    headSchedule[head] = schedule;
  });
  return { headSchedule, scheduleHeads, schedulePrograms };
}

/** Classifies one head's blocks by their real extent; with a store, partial blocks are
 *  materialised zero-padded to [blockQ, blockKv] and their store index goes to maskNext. */
function classifyHead(
  mask: Mask, grid: BlockGrid, blockMask: Uint8Array, maskNext: Int32Array, base: number, store: PartialBlockStore | null,
): void {
  const { blockQ, blockKv, qSeqLen, kvSeqLen, qBlocks, kvBlocks } = grid;
  const scratch = store === null ? null : new Uint8Array(blockQ * blockKv);
  for (let qb = 0; qb < qBlocks; qb++) {
    const q0 = qb * blockQ;
    const q1 = Math.min(q0 + blockQ, qSeqLen);
    for (let kb = 0; kb < kvBlocks; kb++) {
      const kv0 = kb * blockKv;
      const kv1 = Math.min(kv0 + blockKv, kvSeqLen);
      const at = base + qb * kvBlocks + kb;
      const kind = mask.classifyBlock(q0, q1, kv0, kv1);
      blockMask[at] = kind;
      if (kind === BLOCK_PARTIAL && store !== null && scratch !== null) {
        if (q1 - q0 < blockQ || kv1 - kv0 < blockKv) scratch.fill(0); // ragged: keep the padding zero
        mask.fillWindow(q0, q1, kv0, kv1, scratch, 0, blockKv);
        maskNext[at] = store.add(scratch);
      }
    }
  }
}

function hashHead(blockMask: Uint8Array, maskNext: Int32Array, base: number, length: number): number {
  let h = 0x811c9dc5;
  for (let i = base; i < base + length; i++) {
    h = Math.imul(h ^ blockMask[i], 0x01000193);
    h = Math.imul(h ^ maskNext[i], 0x01000193);
  }
  return h >>> 0;
}

function sameHead(blockMask: Uint8Array, maskNext: Int32Array, a: number, b: number, length: number): boolean {
  for (let i = 0; i < length; i++) {
    if (blockMask[a + i] !== blockMask[b + i] || maskNext[a + i] !== maskNext[b + i]) return false;
  }
  return true;
}

/** Partial blocks of dense masks, each distinct content stored once (hash, then byte comparison). */
class PartialBlockStore {
  count = 0;
  private pool: Uint8Array;
  private readonly byHash = new Map<number, number[]>();

  constructor(private readonly blockSize: number) {
    this.pool = new Uint8Array(0);
  }

  /** Index of `block`'s content in the store, adding a copy when it is new. */
  add(block: Uint8Array): number {
    const hash = hashBytes(block);
    const sameHash = this.byHash.get(hash);
    if (sameHash !== undefined) {
      for (const index of sameHash) if (this.holds(index, block)) return index;
    }
    const needed = (this.count + 1) * this.blockSize;
    if (needed > this.pool.length) {
      const grown = new Uint8Array(Math.max(needed, this.pool.length * 2));
      grown.set(this.pool);
      this.pool = grown;
    }
    this.pool.set(block, this.count * this.blockSize);
    if (sameHash === undefined) this.byHash.set(hash, [this.count]);
    else sameHash.push(this.count);
    return this.count++;
  }

  /** The stored blocks [count, blockQ, blockKv], or null when there are none. */
  blocks(): Uint8Array | null {
    return this.count === 0 ? null : this.pool.slice(0, this.count * this.blockSize);
  }

  private holds(index: number, block: Uint8Array): boolean {
    const start = index * this.blockSize;
    for (let i = 0; i < this.blockSize; i++) if (this.pool[start + i] !== block[i]) return false;
    return true;
  }
}

/** FNV-1a over 32-bit words where the length allows, bytes for the tail. */
function hashBytes(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  const words = bytes.byteOffset % 4 === 0 ? bytes.length >>> 2 : 0;
  if (words > 0) {
    const view = new Int32Array(bytes.buffer, bytes.byteOffset, words);
    for (let i = 0; i < words; i++) h = Math.imul(h ^ view[i], 0x01000193);
  }
  for (let i = words * 4; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

function countBlocks(blockMask: Uint8Array, uniquePartial: number): MaskInfoStats {
  let empty = 0;
  let partial = 0;
  let full = 0;
  for (let i = 0; i < blockMask.length; i++) {
    const kind = blockMask[i];
    if (kind === BLOCK_EMPTY) empty++;
    else if (kind === BLOCK_FULL) full++;
    else partial++;
  }
  return { empty, partial, full, uniquePartial, density: (full + partial) / blockMask.length };
}

// ---- schedules ---------------------------------------------------------------------------------

/** CSR of the active blocks of each schedule: rows are q-blocks (kv-blocks for dkv), entries the
 *  active blocks along the other axis, ascending. Built in two passes: count, then place. */
function buildSchedules(
  grid: BlockGrid, isDkv: boolean, scheduleHeads: readonly number[], blockMask: Uint8Array, maskNext: Int32Array,
): Pick<MaskInfo, 'rowPtr' | 'colIdx' | 'colKind' | 'colMaskRef'> {
  const { qBlocks, kvBlocks } = grid;
  const rows = isDkv ? kvBlocks : qBlocks;
  const rowPtr = new Int32Array(scheduleHeads.length * rows + 1);
  scheduleHeads.forEach((head, s) => {
    const base = head * qBlocks * kvBlocks;
    for (let qb = 0; qb < qBlocks; qb++) {
      for (let kb = 0; kb < kvBlocks; kb++) {
        if (blockMask[base + qb * kvBlocks + kb] !== BLOCK_EMPTY) rowPtr[s * rows + (isDkv ? kb : qb) + 1]++;
      }
    }
  });
  for (let r = 0; r < rows * scheduleHeads.length; r++) rowPtr[r + 1] += rowPtr[r];

  const nnz = rowPtr[rowPtr.length - 1];
  const colIdx = new Int32Array(nnz);
  const colKind = new Uint8Array(nnz);
  const colMaskRef = new Int32Array(nnz);
  const cursor = rowPtr.slice(0, rowPtr.length - 1);
  scheduleHeads.forEach((head, s) => {
    const base = head * qBlocks * kvBlocks;
    // q-major order visits each kv row's q-blocks ascending too, so dkv rows come out sorted.
    for (let qb = 0; qb < qBlocks; qb++) {
      for (let kb = 0; kb < kvBlocks; kb++) {
        const at = base + qb * kvBlocks + kb;
        if (blockMask[at] === BLOCK_EMPTY) continue;
        const entry = cursor[s * rows + (isDkv ? kb : qb)]++;
        colIdx[entry] = isDkv ? qb : kb;
        colKind[entry] = blockMask[at];
        colMaskRef[entry] = maskNext[at];
      }
    }
  });
  return { rowPtr, colIdx, colKind, colMaskRef };
}

function concatPrograms(schedulePrograms: readonly (Int32Array | null)[]): { programs: Int32Array; programPtr: Int32Array } {
  const programPtr = new Int32Array(schedulePrograms.length + 1);
  schedulePrograms.forEach((p, s) => {
    programPtr[s + 1] = programPtr[s] + (p === null ? 0 : p.length);
  });
  const programs = new Int32Array(programPtr[schedulePrograms.length]);
  schedulePrograms.forEach((p, s) => {
    if (p !== null) programs.set(p, programPtr[s]);
  });
  return { programs, programPtr };
}
