// Masks: 2-D boolean functions of (q index, kv index), true = may attend.
// Computable masks (Full, Causal, Local, ChunkedCausal and Or/And of them) are described by a few
// integers and never materialise a matrix unless slice()/toDense() asks for one; DenseMask holds bits.
// Besides the public API each mask offers three hooks that MaskInfo uses: program() (a postfix
// program for the kernels), classifyBlock() (empty/partial/full for one block) and fillWindow().

import { describeValue } from './describe-value';
import { MaskOp } from './mask-program';
import { seededRandom } from './random';

/** Classification of one block: 0 = no element true, 1 = some, 2 = every element true.
 *  @internal */
export type BlockClass = 0 | 1 | 2;
const BLOCK_EMPTY = 0;
const BLOCK_PARTIAL = 1;
const BLOCK_FULL = 2;

/** Longest sequence a mask may have: programs and kernels index with 32-bit integers. */
const MAX_SEQ_LEN = 0x7fffffff;

// ---- argument checking -------------------------------------------------------------------------

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

/**
 * A 2-D attention mask: a boolean function of (q index, kv index), `true` where the query may attend
 * to the key. The base class of every mask; combine masks with {@link Mask.or} and {@link Mask.and}.
 *
 * Computable masks ({@link FullMask}, {@link CausalMask}, {@link LocalMask}, {@link ChunkedCausalMask}
 * and or/and of them) are described by a few integers and never hold a matrix; {@link DenseMask}
 * holds one byte per element.
 *
 * @example
 * ```ts
 * import { CausalMask, LocalMask } from 'splash-attention';
 *
 * const mask = new CausalMask([4096, 4096]).and(new LocalMask([4096, 4096], [512, 0]));
 * mask.slice(0, 4, 0, 4); // Uint8Array [1,0,0,0, 1,1,0,0, 1,1,1,0, 1,1,1,1]
 * ```
 */
export abstract class Mask {
  /** `[q, kv]`: the query and key sequence lengths in tokens (integers in [1, 2^31 - 1]). */
  readonly shape: readonly [number, number];
  private compiled: Int32Array | null | undefined;

  protected constructor(shape: unknown) {
    this.shape = checkShape2(shape);
  }

  /**
   * The half-open window [q0, q1) × [kv0, kv1) as a fresh row-major Uint8Array of 0/1
   * (length (q1 − q0) · (kv1 − kv0)); only the window is materialised.
   * @throws TypeError when a bound is not a number; RangeError when it is not an integer or the
   *   window is not inside the shape (0 ≤ q0 ≤ q1 ≤ q, 0 ≤ kv0 ≤ kv1 ≤ kv).
   */
  slice(q0: number, q1: number, kv0: number, kv1: number): Uint8Array {
    const [qLen, kvLen] = this.shape;
    checkRange(q0, q1, qLen, 'q0', 'q1');
    checkRange(kv0, kv1, kvLen, 'kv0', 'kv1');
    const width = kv1 - kv0;
    const out = new Uint8Array((q1 - q0) * width);
    if (out.length > 0) this.fillWindow(q0, q1, kv0, kv1, out, 0, width);
    return out;
  }

  /** The whole mask as a fresh row-major Uint8Array [q, kv] of 0/1 (q · kv bytes: mind large shapes). */
  toDense(): Uint8Array {
    return this.slice(0, this.shape[0], 0, this.shape[1]);
  }

  /**
   * Elementwise or: true where this mask or `other` is true.
   * @throws TypeError when `other` is not a Mask; RangeError when its shape differs.
   */
  or(other: Mask): LogicalOr {
    return new LogicalOr(this, other);
  }

  /**
   * Elementwise and: true where both this mask and `other` are true.
   * @throws TypeError when `other` is not a Mask; RangeError when its shape differs.
   */
  and(other: Mask): LogicalAnd {
    return new LogicalAnd(this, other);
  }

  /** Postfix program (MaskOp opcodes and arguments) computing this mask, or null when a DenseMask
   *  is involved. Cached; callers must not modify it. Equal programs mean equal masks.
   *  @internal */
  program(): Int32Array | null {
    if (this.compiled === undefined) this.compiled = this.compile();
    return this.compiled;
  }

  /** Element (q, kv); no bounds check.
   *  @internal */
  abstract get(q: number, kv: number): boolean;

  /** Classifies the non-empty block [q0, q1) × [kv0, kv1) (inside the shape; no checks).
   *  @internal */
  abstract classifyBlock(q0: number, q1: number, kv0: number, kv1: number): BlockClass;

  /** Writes the window [q0, q1) × [kv0, kv1) as 0/1 into out, row r at offset + r * stride
   *  (inside the shape; no checks). Every element of the window is written, nothing else.
   *  @internal */
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
 *  reaching outside the shape). All four built-in computable masks have this form.
 *  @internal */
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

/**
 * Every (q, kv) pair allowed: plain dense attention, as blocks the kernels run with no mask arithmetic.
 * @example
 * ```ts
 * const kernel = makeSplashMHA(new FullMask([1024, 1024]));
 * ```
 */
export class FullMask extends RowIntervalMask {
  /**
   * @param shape - `[q, kv]` sequence lengths in tokens.
   * @throws TypeError when `shape` is not an array of numbers; RangeError when it does not hold two
   *   integers in [1, 2^31 − 1].
   */
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

/**
 * Causal attention: (q, kv) allowed where `q + offset >= kv`. With `offset` 0 a query sees itself and
 * every earlier key; a positive offset lets queries see that many keys ahead (a query block appended
 * after `offset` cached keys), a negative one hides the nearest keys.
 * @example
 * ```ts
 * new CausalMask([4, 4]).toDense();      // 1000 1100 1110 1111
 * new CausalMask([2, 6], 4).toDense();   // 111110 111111: 2 new queries after 4 cached keys
 * ```
 */
export class CausalMask extends RowIntervalMask {
  /** The diagonal's shift in tokens (default 0), as given. */
  readonly offset: number;
  /** offset clamped to the shape: the same mask, in 32 bits. */
  private readonly shift: number;

  /**
   * @param shape - `[q, kv]` sequence lengths in tokens.
   * @param offset - shift of the diagonal in tokens (default 0); any integer.
   * @throws TypeError when `shape` or `offset` has the wrong type; RangeError when `shape` is out of
   *   range or `offset` is not an integer.
   */
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
 * Sliding-window (local) attention: (q, kv) allowed where
 * `(left == null || q + offset - left <= kv) && (right == null || q + offset + right >= kv)`, i.e. a
 * query sees `left` keys back and `right` keys ahead of position q + offset; `null` leaves a side
 * unbounded. Blocks outside the band are skipped, so the cost grows with the window, not with S².
 * @example
 * ```ts
 * new LocalMask([8192, 8192], [512, 0]);     // itself and the 512 keys before it
 * new LocalMask([8192, 8192], [null, 0]);    // the same as a CausalMask
 * ```
 */
export class LocalMask extends RowIntervalMask {
  /** `[left, right]` in tokens as given; `null` for an unbounded side. */
  readonly windowSize: readonly [number | null, number | null];
  /** Shift of the window's centre in tokens (default 0), as given. */
  readonly offset: number;
  private readonly lower: number | null;
  private readonly upper: number | null;

  /**
   * @param shape - `[q, kv]` sequence lengths in tokens.
   * @param windowSize - `[left, right]`: keys visible before and after the (shifted) diagonal, in
   *   tokens; `null` for an unbounded side. Negative values are allowed and narrow the band.
   * @param offset - shift of the window's centre in tokens (default 0).
   * @throws TypeError when `windowSize` is not an array or an entry is neither an integer nor null;
   *   RangeError when it does not have 2 entries or an entry or `offset` is not an integer.
   */
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

/**
 * Chunked causal attention: the sequence is cut into chunks of
 * `chunkSize` tokens and (q, kv) is allowed where both fall in the same chunk and `q >= kv`, i.e.
 * `floor(q / chunkSize) == floor(kv / chunkSize) && q >= kv`.
 * @example
 * ```ts
 * new ChunkedCausalMask([8192, 8192], 1024); // eight independent causal chunks
 * ```
 */
export class ChunkedCausalMask extends RowIntervalMask {
  /** Chunk length in tokens, as given. */
  readonly chunkSize: number;
  /** chunkSize capped at max(q, kv): larger chunks give the same mask. */
  private readonly chunk: number;

  /**
   * @param shape - `[q, kv]` sequence lengths in tokens.
   * @param chunkSize - chunk length in tokens, a positive integer.
   * @throws TypeError when `chunkSize` is not a number; RangeError when it is not a positive integer.
   */
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

/**
 * An explicit boolean matrix: (q, kv) allowed where `data[q * kvLen + kv] != 0`. The data is copied
 * (one byte per element). Its partial blocks are stored once per distinct content in the MaskInfo, so
 * prefer a computable mask where one describes the pattern.
 * @example
 * ```ts
 * new DenseMask([[true, false], [true, true]], [2, 2]);
 * new DenseMask(Uint8Array.of(1, 0, 1, 1), [2, 2]);   // the same mask
 * ```
 */
export class DenseMask extends Mask {
  private readonly bits: Uint8Array;

  /**
   * @param data - a row-major Uint8Array of q · kv entries (non-zero = allowed), or q rows of kv booleans.
   * @param shape - `[q, kv]` sequence lengths in tokens.
   * @throws TypeError when `data` is neither a Uint8Array nor an array of boolean rows; RangeError when
   *   its length or row count does not match `shape`.
   */
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

/** Common part of LogicalOr and LogicalAnd.
 *  @internal */
export abstract class BinaryMask extends Mask {
  /** The first operand. */
  readonly left: Mask;
  /** The second operand. */
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

/**
 * Elementwise or of two masks of the same shape; `a.or(b)` builds one. Or-ing computable masks keeps
 * the result computable.
 * @example
 * ```ts
 * // a 128-token window, or anything earlier in the same 1024-token chunk
 * const mask = new LocalMask([S, S], [128, 0]).or(new ChunkedCausalMask([S, S], 1024));
 * ```
 */
export class LogicalOr extends BinaryMask {
  /**
   * @throws TypeError when an operand is not a Mask (named `mask` or `other`); RangeError when the shapes differ.
   */
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

/**
 * Elementwise and of two masks of the same shape; `a.and(b)` builds one. And-ing computable masks
 * keeps the result computable.
 * @example
 * ```ts
 * const slidingCausal = new CausalMask([S, S]).and(new LocalMask([S, S], [1024, 0]));
 * ```
 */
export class LogicalAnd extends BinaryMask {
  /**
   * @throws TypeError when an operand is not a Mask (named `mask` or `other`); RangeError when the shapes differ.
   */
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

/**
 * One 2-D mask per query head, shape `[heads, q, kv]`. Heads with the same mask (the same object or
 * an equal computable mask) share one schedule in the MaskInfo.
 * @example
 * ```ts
 * const causal = new CausalMask([S, S]);
 * const heads = new MultiHeadMask([causal, causal, new LocalMask([S, S], [128, 0]), causal]);
 * ```
 */
export class MultiHeadMask {
  /** The per-head masks, frozen. */
  readonly masks: readonly Mask[];
  /** `[heads, q, kv]`. */
  readonly shape: readonly [number, number, number];

  /**
   * @param masks - at least one 2-D mask, all of the same shape.
   * @throws TypeError when `masks` is not an array of Masks; RangeError when it is empty or the shapes differ.
   */
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

/**
 * A seeded random dense mask for tests and benchmarks: each entry is false with probability
 * `sparsity` (as JAX's `make_random_mask`), the same for the same seed on every machine.
 * @param shape - `[q, kv]` sequence lengths in tokens.
 * @param sparsity - probability in [0, 1] that an entry is masked out.
 * @param seed - any safe integer.
 * @throws TypeError when an argument is not a number (or `shape` not an array); RangeError when
 *   `sparsity` is outside [0, 1], `seed` is not an integer or `shape` is out of range.
 * @example
 * ```ts
 * const mask = makeRandomMask([1024, 1024], 0.5, 7); // about half the pairs allowed
 * ```
 */
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
