// Masks: 2-D boolean functions of (q index, kv index), true = may attend.
// Computable masks (Full, Causal, Local, ChunkedCausal and Or/And of them) are described by a few
// integers and never materialise a matrix unless slice()/toDense() asks for one; DenseMask holds bits.
// Besides the public API each mask offers three hooks that MaskInfo uses: program() (a postfix
// program for the kernels), classifyBlock() (empty/partial/full for one block) and fillWindow().

import { MaskOp } from './mask-info';
import { seededRandom } from './random';

/** Classification of one block: 0 = no element true, 1 = some, 2 = every element true. */
export type BlockClass = 0 | 1 | 2;
const BLOCK_EMPTY = 0;
const BLOCK_PARTIAL = 1;
const BLOCK_FULL = 2;

/** Longest sequence a mask may have: programs and kernels index with 32-bit integers. */
const MAX_SEQ_LEN = 0x7fffffff;

// ---- argument checking -------------------------------------------------------------------------

/** Short description of a value for error messages. */
export function describeValue(x: unknown): string {
  if (x === null) return 'null';
  if (x === undefined) return 'undefined';
  if (Array.isArray(x)) return `Array(${x.length})`;
  if (ArrayBuffer.isView(x)) return x.constructor.name;
  if (typeof x === 'object') return (x as object).constructor?.name ?? 'object';
  if (typeof x === 'string') return `string '${x}'`;
  return `${typeof x} ${String(x)}`;
}

function checkShape2(shape: unknown): readonly [number, number] {
  if (!Array.isArray(shape)) {
    throw new TypeError(`shape: expected an array [q, kv] of two positive integers, got ${describeValue(shape)}`);
  }
  if (shape.length !== 2) {
    throw new RangeError(`shape: expected 2 dimensions [q, kv], got ${shape.length}`);
  }
  shape.forEach((d, i) => {
    if (typeof d !== 'number') {
      throw new TypeError(`shape[${i}]: expected a positive integer, got ${describeValue(d)}`);
    }
    if (!Number.isInteger(d) || d < 1 || d > MAX_SEQ_LEN) {
      throw new RangeError(`shape[${i}]: expected an integer in [1, ${MAX_SEQ_LEN}], got ${d}`);
    }
  });
  return Object.freeze([shape[0], shape[1]] as [number, number]);
}

function checkInteger(x: unknown, name: string): number {
  if (typeof x !== 'number') throw new TypeError(`${name}: expected an integer, got ${describeValue(x)}`);
  if (!Number.isInteger(x)) throw new RangeError(`${name}: expected an integer, got ${x}`);
  return x;
}

function checkMask(x: unknown, name: string): Mask {
  if (!(x instanceof Mask)) throw new TypeError(`${name}: expected a Mask, got ${describeValue(x)}`);
  return x;
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Clamps a program argument to ±max(q, kv): beyond that every comparison q + t >= kv (or
 *  q - t <= kv) is already constant, and clamping keeps programs within 32 bits. */
function clampToShape(t: number, shape: readonly [number, number]): number {
  const bound = Math.max(shape[0], shape[1]);
  return Math.min(bound, Math.max(-bound, t));
}

// ---- the base class ----------------------------------------------------------------------------

export abstract class Mask {
  readonly shape: readonly [number, number];
  private compiled: Int32Array | null | undefined;

  protected constructor(shape: unknown) {
    this.shape = checkShape2(shape);
  }

  /** The half-open window [q0, q1) × [kv0, kv1), row-major, values 0/1. */
  slice(q0: number, q1: number, kv0: number, kv1: number): Uint8Array {
    const [qLen, kvLen] = this.shape;
    checkRange(q0, q1, qLen, 'q0', 'q1');
    checkRange(kv0, kv1, kvLen, 'kv0', 'kv1');
    const width = kv1 - kv0;
    const out = new Uint8Array((q1 - q0) * width);
    if (out.length > 0) this.fillWindow(q0, q1, kv0, kv1, out, 0, width);
    return out;
  }

  /** The whole mask, row-major [q, kv], values 0/1. */
  toDense(): Uint8Array {
    return this.slice(0, this.shape[0], 0, this.shape[1]);
  }

  or(other: Mask): LogicalOr {
    return new LogicalOr(this, other);
  }

  and(other: Mask): LogicalAnd {
    return new LogicalAnd(this, other);
  }

  /** Postfix program (MaskOp opcodes and arguments) computing this mask, or null when a DenseMask
   *  is involved. Cached; callers must not modify it. Equal programs mean equal masks. */
  program(): Int32Array | null {
    if (this.compiled === undefined) this.compiled = this.compile();
    return this.compiled;
  }

  /** Element (q, kv); no bounds check. */
  abstract get(q: number, kv: number): boolean;

  /** Classifies the non-empty block [q0, q1) × [kv0, kv1) (inside the shape; no checks). */
  abstract classifyBlock(q0: number, q1: number, kv0: number, kv1: number): BlockClass;

  /** Writes the window [q0, q1) × [kv0, kv1) as 0/1 into out, row r at offset + r * stride
   *  (inside the shape; no checks). Every element of the window is written, nothing else. */
  abstract fillWindow(q0: number, q1: number, kv0: number, kv1: number, out: Uint8Array, offset: number, stride: number): void;

  protected abstract compile(): Int32Array | null;
}

function checkRange(lo: unknown, hi: unknown, len: number, loName: string, hiName: string): void {
  const a = checkInteger(lo, loName);
  const b = checkInteger(hi, hiName);
  if (a < 0 || a > len) throw new RangeError(`${loName}: expected an integer in [0, ${len}], got ${a}`);
  if (b < a || b > len) throw new RangeError(`${hiName}: expected an integer in [${a}, ${len}], got ${b}`);
}

// ---- computable masks: one interval of kv per row ----------------------------------------------

/** Masks whose row q is the single kv interval [rowFirst(q), rowLast(q)] (possibly empty or
 *  reaching outside the shape). All four built-in computable masks have this form. */
export abstract class RowIntervalMask extends Mask {
  protected abstract rowFirst(q: number): number;
  protected abstract rowLast(q: number): number;

  get(q: number, kv: number): boolean {
    return this.rowFirst(q) <= kv && kv <= this.rowLast(q);
  }

  fillWindow(q0: number, q1: number, kv0: number, kv1: number, out: Uint8Array, offset: number, stride: number): void {
    const width = kv1 - kv0;
    for (let q = q0; q < q1; q++) {
      const row = offset + (q - q0) * stride;
      out.fill(0, row, row + width);
      const first = Math.max(kv0, this.rowFirst(q));
      const last = Math.min(kv1 - 1, this.rowLast(q));
      if (first <= last) out.fill(1, row + first - kv0, row + last - kv0 + 1);
    }
  }
}

export class FullMask extends RowIntervalMask {
  constructor(shape: readonly [number, number]) {
    super(shape);
  }

  protected rowFirst(): number {
    return 0;
  }

  protected rowLast(): number {
    return this.shape[1] - 1;
  }

  classifyBlock(): BlockClass {
    return BLOCK_FULL;
  }

  protected compile(): Int32Array {
    return Int32Array.of(MaskOp.FULL);
  }
}

/** True where q + offset >= kv. */
export class CausalMask extends RowIntervalMask {
  readonly offset: number;
  /** offset clamped to the shape: the same mask, in 32 bits. */
  private readonly shift: number;

  constructor(shape: readonly [number, number], offset = 0) {
    super(shape);
    this.offset = checkInteger(offset, 'offset');
    this.shift = clampToShape(offset, this.shape);
  }

  protected rowFirst(): number {
    return 0;
  }

  protected rowLast(q: number): number {
    return q + this.shift;
  }

  classifyBlock(q0: number, q1: number, kv0: number, kv1: number): BlockClass {
    if (kv1 - 1 <= q0 + this.shift) return BLOCK_FULL; // the block's top-right corner is allowed
    if (kv0 > q1 - 1 + this.shift) return BLOCK_EMPTY; // its bottom-left corner is not
    return BLOCK_PARTIAL;
  }

  protected compile(): Int32Array {
    return Int32Array.of(MaskOp.CAUSAL, this.shift);
  }
}

/**
 * True where (left == null || q + offset - left <= kv) && (right == null || q + offset + right >= kv).
 * Internally row q allows kv in [q - lower, q + upper] with lower = left - offset, upper = right + offset.
 */
export class LocalMask extends RowIntervalMask {
  readonly windowSize: readonly [number | null, number | null];
  readonly offset: number;
  private readonly lower: number | null;
  private readonly upper: number | null;

  constructor(
    shape: readonly [number, number],
    windowSize: readonly [number | null, number | null],
    offset = 0,
  ) {
    super(shape);
    if (!Array.isArray(windowSize)) {
      throw new TypeError(`windowSize: expected an array [left, right] of integers or null, got ${describeValue(windowSize)}`);
    }
    if (windowSize.length !== 2) {
      throw new RangeError(`windowSize: expected 2 entries [left, right], got ${windowSize.length}`);
    }
    const left = windowSize[0] == null ? null : checkInteger(windowSize[0], 'windowSize[0]');
    const right = windowSize[1] == null ? null : checkInteger(windowSize[1], 'windowSize[1]');
    this.windowSize = Object.freeze([left, right] as [number | null, number | null]);
    this.offset = checkInteger(offset, 'offset');
    this.lower = left === null ? null : clampToShape(left - offset, this.shape);
    this.upper = right === null ? null : clampToShape(right + offset, this.shape);
  }

  protected rowFirst(q: number): number {
    return this.lower === null ? 0 : q - this.lower;
  }

  protected rowLast(q: number): number {
    return this.upper === null ? this.shape[1] - 1 : q + this.upper;
  }

  classifyBlock(q0: number, q1: number, kv0: number, kv1: number): BlockClass {
    const { lower, upper } = this;
    // Both row bounds grow with q, so the block is full when its first row's upper bound and its
    // last row's lower bound both cover the block's kv range.
    const leftHolds = lower === null || kv0 >= q1 - 1 - lower;
    const rightHolds = upper === null || kv1 - 1 <= q0 + upper;
    if (leftHolds && rightHolds) return BLOCK_FULL;
    // A row q meets the block when q - lower <= kv1 - 1 and q + upper >= kv0 (and its window is
    // not inverted); those rows form one interval of q.
    if (lower !== null && upper !== null && lower + upper < 0) return BLOCK_EMPTY;
    const firstRow = Math.max(q0, upper === null ? q0 : kv0 - upper);
    const lastRow = Math.min(q1 - 1, lower === null ? q1 - 1 : kv1 - 1 + lower);
    return firstRow <= lastRow ? BLOCK_PARTIAL : BLOCK_EMPTY;
  }

  protected compile(): Int32Array {
    const { lower, upper } = this;
    // The offset is folded into the bounds, so structurally equal windows compile identically.
    return Int32Array.of(MaskOp.LOCAL, lower === null ? 0 : 1, lower ?? 0, upper === null ? 0 : 1, upper ?? 0, 0);
  }
}

/** True where floor(q / chunkSize) == floor(kv / chunkSize) && q >= kv. */
export class ChunkedCausalMask extends RowIntervalMask {
  readonly chunkSize: number;
  /** chunkSize capped at max(q, kv): larger chunks give the same mask. */
  private readonly chunk: number;

  constructor(shape: readonly [number, number], chunkSize: number) {
    super(shape);
    this.chunkSize = checkInteger(chunkSize, 'chunkSize');
    if (chunkSize <= 0) throw new RangeError(`chunkSize: expected a positive integer, got ${chunkSize}`);
    this.chunk = Math.min(chunkSize, Math.max(this.shape[0], this.shape[1]));
  }

  protected rowFirst(q: number): number {
    return q - (q % this.chunk);
  }

  protected rowLast(q: number): number {
    return q;
  }

  classifyBlock(q0: number, q1: number, kv0: number, kv1: number): BlockClass {
    const c = this.chunk;
    const qChunk0 = Math.floor(q0 / c);
    const qChunk1 = Math.floor((q1 - 1) / c);
    const kvChunk0 = Math.floor(kv0 / c);
    const kvChunk1 = Math.floor((kv1 - 1) / c);
    // Full: everything inside one chunk and the top-right corner on or below the diagonal.
    if (qChunk0 === qChunk1 && kvChunk0 === kvChunk1 && qChunk0 === kvChunk0 && kv1 - 1 <= q0) return BLOCK_FULL;
    // Non-empty iff some chunk holds both q and kv of the block and the bottom-left corner is on or
    // below the diagonal (take the last q and the first kv of that shared chunk).
    const sharesChunk = Math.max(qChunk0, kvChunk0) <= Math.min(qChunk1, kvChunk1);
    return sharesChunk && kv0 <= q1 - 1 ? BLOCK_PARTIAL : BLOCK_EMPTY;
  }

  protected compile(): Int32Array {
    return Int32Array.of(MaskOp.CHUNKED, this.chunk);
  }
}

// ---- dense masks -------------------------------------------------------------------------------

/** An explicit boolean matrix; data[q * kvLen + kv] != 0 means true. The data is copied. */
export class DenseMask extends Mask {
  private readonly bits: Uint8Array;

  constructor(data: Uint8Array | readonly (readonly boolean[])[], shape: readonly [number, number]) {
    super(shape);
    const [qLen, kvLen] = this.shape;
    this.bits = new Uint8Array(qLen * kvLen);
    if (data instanceof Uint8Array) {
      if (data.length !== qLen * kvLen) {
        throw new RangeError(`data: expected length ${qLen * kvLen} (shape ${formatShape(this.shape)}), got ${data.length}`);
      }
      for (let i = 0; i < data.length; i++) this.bits[i] = data[i] !== 0 ? 1 : 0;
    } else if (Array.isArray(data)) {
      copyNestedRows(data, this.bits, qLen, kvLen);
    } else {
      throw new TypeError(`data: expected a Uint8Array or boolean[][], got ${describeValue(data)}`);
    }
  }

  get(q: number, kv: number): boolean {
    return this.bits[q * this.shape[1] + kv] !== 0;
  }

  classifyBlock(q0: number, q1: number, kv0: number, kv1: number): BlockClass {
    const kvLen = this.shape[1];
    let sawTrue = false;
    let sawFalse = false;
    for (let q = q0; q < q1; q++) {
      const row = q * kvLen;
      for (let i = row + kv0; i < row + kv1; i++) {
        if (this.bits[i] !== 0) sawTrue = true;
        else sawFalse = true;
        if (sawTrue && sawFalse) return BLOCK_PARTIAL;
      }
    }
    return sawTrue ? BLOCK_FULL : BLOCK_EMPTY;
  }

  fillWindow(q0: number, q1: number, kv0: number, kv1: number, out: Uint8Array, offset: number, stride: number): void {
    const kvLen = this.shape[1];
    for (let q = q0; q < q1; q++) {
      out.set(this.bits.subarray(q * kvLen + kv0, q * kvLen + kv1), offset + (q - q0) * stride);
    }
  }

  protected compile(): null {
    return null;
  }
}

function copyNestedRows(data: readonly unknown[], bits: Uint8Array, qLen: number, kvLen: number): void {
  if (data.length !== qLen) throw new RangeError(`data: expected ${qLen} rows, got ${data.length}`);
  for (let q = 0; q < qLen; q++) {
    const row = data[q];
    if (!Array.isArray(row)) throw new TypeError(`data[${q}]: expected an array of booleans, got ${describeValue(row)}`);
    if (row.length !== kvLen) throw new RangeError(`data[${q}]: expected length ${kvLen}, got ${row.length}`);
    for (let kv = 0; kv < kvLen; kv++) {
      const x: unknown = row[kv];
      if (typeof x !== 'boolean' && typeof x !== 'number') {
        throw new TypeError(`data[${q}][${kv}]: expected a boolean, got ${describeValue(x)}`);
      }
      bits[q * kvLen + kv] = x ? 1 : 0;
    }
  }
}

// ---- combinations ------------------------------------------------------------------------------

/** Common part of LogicalOr and LogicalAnd. */
export abstract class BinaryMask extends Mask {
  readonly left: Mask;
  readonly right: Mask;

  protected constructor(left: Mask, right: Mask) {
    const a = checkMask(left, 'mask');
    const b = checkMask(right, 'other');
    if (a.shape[0] !== b.shape[0] || a.shape[1] !== b.shape[1]) {
      throw new RangeError(`other: expected a mask of shape ${formatShape(a.shape)}, got shape ${formatShape(b.shape)}`);
    }
    super(a.shape);
    this.left = a;
    this.right = b;
  }

  /** Exact classification when the operands alone do not decide the block: row by row (each row
   *  classified through the operands again), then element by element inside undecided rows. */
  protected classifyExactly(q0: number, q1: number, kv0: number, kv1: number): BlockClass {
    if (q1 - q0 === 1) {
      let sawTrue = false;
      let sawFalse = false;
      for (let kv = kv0; kv < kv1; kv++) {
        if (this.get(q0, kv)) sawTrue = true;
        else sawFalse = true;
        if (sawTrue && sawFalse) return BLOCK_PARTIAL;
      }
      return sawTrue ? BLOCK_FULL : BLOCK_EMPTY;
    }
    let sawFull = false;
    let sawEmpty = false;
    for (let q = q0; q < q1; q++) {
      const row = this.classifyBlock(q, q + 1, kv0, kv1);
      if (row === BLOCK_PARTIAL) return BLOCK_PARTIAL;
      if (row === BLOCK_FULL) sawFull = true;
      else sawEmpty = true;
      if (sawFull && sawEmpty) return BLOCK_PARTIAL;
    }
    return sawFull ? BLOCK_FULL : BLOCK_EMPTY;
  }

  /** Runs fillWindow of both operands and merges the right one into out with `merge`. */
  protected fillBoth(
    q0: number, q1: number, kv0: number, kv1: number, out: Uint8Array, offset: number, stride: number,
    merge: (a: number, b: number) => number,
  ): void {
    const width = kv1 - kv0;
    this.left.fillWindow(q0, q1, kv0, kv1, out, offset, stride);
    const other = new Uint8Array((q1 - q0) * width);
    this.right.fillWindow(q0, q1, kv0, kv1, other, 0, width);
    for (let r = 0; r < q1 - q0; r++) {
      const o = offset + r * stride;
      for (let c = 0; c < width; c++) out[o + c] = merge(out[o + c], other[r * width + c]);
    }
  }

  protected compileWith(op: MaskOp): Int32Array | null {
    const a = this.left.program();
    const b = this.right.program();
    if (a === null || b === null) return null;
    const program = new Int32Array(a.length + b.length + 1);
    program.set(a, 0);
    program.set(b, a.length);
    program[a.length + b.length] = op;
    return program;
  }
}

export class LogicalOr extends BinaryMask {
  constructor(mask: Mask, other: Mask) {
    super(mask, other);
  }

  get(q: number, kv: number): boolean {
    return this.left.get(q, kv) || this.right.get(q, kv);
  }

  classifyBlock(q0: number, q1: number, kv0: number, kv1: number): BlockClass {
    const a = this.left.classifyBlock(q0, q1, kv0, kv1);
    if (a === BLOCK_FULL) return BLOCK_FULL;
    const b = this.right.classifyBlock(q0, q1, kv0, kv1);
    if (b === BLOCK_FULL || a === BLOCK_EMPTY) return b;
    if (b === BLOCK_EMPTY) return a;
    return this.classifyExactly(q0, q1, kv0, kv1); // both partial: their union may still be full
  }

  fillWindow(q0: number, q1: number, kv0: number, kv1: number, out: Uint8Array, offset: number, stride: number): void {
    this.fillBoth(q0, q1, kv0, kv1, out, offset, stride, (a, b) => a | b);
  }

  protected compile(): Int32Array | null {
    return this.compileWith(MaskOp.OR);
  }
}

export class LogicalAnd extends BinaryMask {
  constructor(mask: Mask, other: Mask) {
    super(mask, other);
  }

  get(q: number, kv: number): boolean {
    return this.left.get(q, kv) && this.right.get(q, kv);
  }

  classifyBlock(q0: number, q1: number, kv0: number, kv1: number): BlockClass {
    const a = this.left.classifyBlock(q0, q1, kv0, kv1);
    if (a === BLOCK_EMPTY) return BLOCK_EMPTY;
    const b = this.right.classifyBlock(q0, q1, kv0, kv1);
    if (b === BLOCK_EMPTY || a === BLOCK_FULL) return b;
    if (b === BLOCK_FULL) return a;
    return this.classifyExactly(q0, q1, kv0, kv1); // both partial: their intersection may be empty
  }

  fillWindow(q0: number, q1: number, kv0: number, kv1: number, out: Uint8Array, offset: number, stride: number): void {
    this.fillBoth(q0, q1, kv0, kv1, out, offset, stride, (a, b) => a & b);
  }

  protected compile(): Int32Array | null {
    return this.compileWith(MaskOp.AND);
  }
}

// ---- several heads -----------------------------------------------------------------------------

/** One 2-D mask per query head; shape [heads, q, kv]. */
export class MultiHeadMask {
  readonly masks: readonly Mask[];
  readonly shape: readonly [number, number, number];

  constructor(masks: readonly Mask[]) {
    if (!Array.isArray(masks)) throw new TypeError(`masks: expected an array of Masks, got ${describeValue(masks)}`);
    if (masks.length === 0) throw new RangeError('masks: expected at least 1 mask, got 0');
    masks.forEach((m, i) => checkMask(m, `masks[${i}]`));
    const [qLen, kvLen] = masks[0].shape;
    masks.forEach((m, i) => {
      if (m.shape[0] !== qLen || m.shape[1] !== kvLen) {
        throw new RangeError(`masks[${i}]: expected shape ${formatShape(masks[0].shape)} like masks[0], got ${formatShape(m.shape)}`);
      }
    });
    this.masks = Object.freeze([...masks]);
    this.shape = Object.freeze([masks.length, qLen, kvLen] as [number, number, number]);
  }
}

// ---- random masks for tests and benchmarks -----------------------------------------------------

/** Each entry is false with probability `sparsity` (as JAX's make_random_mask); deterministic per seed. */
export function makeRandomMask(shape: readonly [number, number], sparsity: number, seed: number): DenseMask {
  const [qLen, kvLen] = checkShape2(shape);
  if (typeof sparsity !== 'number') throw new TypeError(`sparsity: expected a number in [0, 1], got ${describeValue(sparsity)}`);
  if (!(sparsity >= 0 && sparsity <= 1)) throw new RangeError(`sparsity: expected a number in [0, 1], got ${sparsity}`);
  checkInteger(seed, 'seed');
  // Fold the high bits of large seeds in, so distinct safe-integer seeds give distinct streams.
  const random = seededRandom((seed ^ Math.floor(seed / 4294967296)) >>> 0);
  const data = new Uint8Array(qLen * kvLen);
  for (let i = 0; i < data.length; i++) data[i] = random() >= sparsity ? 1 : 0;
  return new DenseMask(data, [qLen, kvLen]);
}
