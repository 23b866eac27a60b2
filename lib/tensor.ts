// Tensors: plain row-major typed arrays with a shape and a dtype, plus the
// bfloat16 / float16 bit conversions every backend shares.

import { describeValue } from './describe-value';

/** Element type of a {@link Tensor}: float32, or bfloat16 / float16 held as raw 16-bit patterns. */
export type DType = 'float32' | 'bfloat16' | 'float16';
/** Every DType, in a fixed order.
 *  @internal */
export const DTYPES: readonly DType[] = ['float32', 'bfloat16', 'float16'];

/**
 * A dense row-major tensor on the host: a typed array, a shape and a dtype. Build one with
 * {@link tensor} or {@link fromFloat32}; read it with {@link toFloat32}.
 */
export interface Tensor {
  /** The elements, row-major: a Float32Array for float32, a Uint16Array of raw bits for bfloat16 / float16. */
  data: Float32Array | Uint16Array;
  /** Dimensions, outermost first; the last one is contiguous. Their product is `data.length`. */
  shape: readonly number[];
  /** How `data` is to be read. */
  dtype: DType;
}

/** Whether `x` is one of the DType names.
 *  @internal */
export function isDType(x: unknown): x is DType {
  return typeof x === 'string' && (DTYPES as readonly string[]).includes(x);
}

/** Product of a shape's dimensions (1 for a scalar shape).
 *  @internal */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Checks that `shape` is an array of non-negative integers; errors name it `name`.
 *  @internal */
export function checkShape(shape: unknown, name = 'shape'): readonly number[] {
  if (!Array.isArray(shape)) {
    throw new TypeError(`${name}: expected an array of non-negative integers, got ${describeValue(shape)}`);
  }
  shape.forEach((d, i) => {
    if (typeof d !== 'number') {
      throw new TypeError(`${name}[${i}]: expected a non-negative integer, got ${describeValue(d)}`);
    }
    if (!Number.isInteger(d) || d < 0) {
      throw new RangeError(`${name}[${i}]: expected a non-negative integer, got ${d}`);
    }
  });
  return shape as number[];
}

/**
 * Builds a tensor around `data` (not copied, except a plain number array, which is converted),
 * checking that the array type fits the dtype and the length fits the shape.
 *
 * @param data - a Float32Array (float32), a Uint16Array of raw bfloat16 / float16 bits, or plain
 *   numbers (converted to `dtype`, rounding to nearest even).
 * @param shape - dimensions whose product is the element count.
 * @param dtype - default `'float32'` for a Float32Array or numbers; required for a Uint16Array.
 * @throws TypeError for an unknown dtype or an array type that does not fit it; RangeError when the
 *   length is not the product of `shape` or a dimension is not a non-negative integer.
 * @example
 * ```ts
 * const q = tensor(new Float32Array(2 * 128 * 64), [2, 128, 64]);
 * const b = tensor([0.5, -1, 2, 3], [2, 2], 'bfloat16');
 * ```
 */
export function tensor(
  data: Float32Array | Uint16Array | number[],
  shape: readonly number[],
  dtype?: DType,
): Tensor {
  const dims = checkShape(shape);
  if (dtype !== undefined && !isDType(dtype)) {
    throw new TypeError(`dtype: expected one of ${DTYPES.join(', ')}, got ${describeValue(dtype)}`);
  }
  let arr: Float32Array | Uint16Array;
  if (Array.isArray(data)) {
    const dt = dtype ?? 'float32';
    const f32 = Float32Array.from(data as number[]);
    arr = dt === 'float32' ? f32 : float32ToBits(f32, dt);
    dtype = dt;
  } else if (data instanceof Float32Array) {
    dtype ??= 'float32';
    if (dtype !== 'float32') {
      throw new TypeError(`data: a ${dtype} tensor holds a Uint16Array of raw bits, got Float32Array`);
    }
    arr = data;
  } else if (data instanceof Uint16Array) {
    if (dtype === undefined || dtype === 'float32') {
      throw new TypeError(
        `data: a Uint16Array needs dtype 'bfloat16' or 'float16', got ${dtype === undefined ? 'no dtype' : `'${dtype}'`}`,
      );
    }
    arr = data;
  } else {
    throw new TypeError(`data: expected Float32Array, Uint16Array or number[], got ${describeValue(data)}`);
  }
  const n = shapeSize(dims);
  if (arr.length !== n) {
    throw new RangeError(`data: expected length ${n} (product of shape [${dims.join(', ')}]), got ${arr.length}`);
  }
  return { data: arr, shape: Object.freeze(dims.slice()), dtype: dtype as DType };
}

// ---- bit conversions -------------------------------------------------------

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** The bfloat16 bit pattern nearest to `x` (round to nearest even; NaN stays a quiet NaN).
 *  @internal */
export function float32ToBfloat16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) {
    // NaN: keep the sign and the top payload bits, force a quiet NaN so it cannot round to Inf.
    return ((bits >>> 16) | 0x0040) & 0xffff;
  }
  // Round to nearest, ties to even, on the 16 dropped bits.
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** The value of a bfloat16 bit pattern.
 *  @internal */
export function bfloat16BitsToFloat32(h: number): number {
  u32Scratch[0] = (h & 0xffff) << 16;
  return f32Scratch[0];
}

/** The float16 bit pattern nearest to `x` (round to nearest even, subnormals and overflow to Inf included).
 *  @internal */
export function float32ToFloat16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x007fffff;
  if (exp === 0xff) {
    // Inf stays Inf; NaN keeps its top payload bits and stays a (quiet) NaN.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const e = exp - 127 + 15; // re-biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // overflow → Inf
  if (e <= 0) {
    // Subnormal (or zero) in half precision: shift the full significand into place, then round.
    if (e < -10) return sign; // below half the smallest subnormal → ±0
    mant |= 0x00800000;
    const shift = 14 - e; // 14..24
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && (h & 1) === 1)) h += 1;
    return sign | h; // a carry into the exponent field gives the smallest normal, as it should
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1; // may carry into Inf, correctly
  return sign | h;
}

/** The value of a float16 bit pattern.
 *  @internal */
export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) {
    if (mant === 0) return sign * Infinity;
    // Keep sign and payload: build the float32 NaN bit pattern directly.
    u32Scratch[0] = ((h & 0x8000) << 16) | 0x7f800000 | (mant << 13);
    return f32Scratch[0];
  }
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function float32ToBits(values: Float32Array, dtype: 'bfloat16' | 'float16'): Uint16Array {
  const out = new Uint16Array(values.length);
  const conv = dtype === 'bfloat16' ? float32ToBfloat16Bits : float32ToFloat16Bits;
  for (let i = 0; i < values.length; i++) out[i] = conv(values[i]);
  return out;
}

/**
 * Converts float32 values to a new tensor of `dtype` (bfloat16 / float16 round to nearest even).
 * Always copies: the tensor never shares `values`.
 * @throws TypeError when `values` is not a Float32Array or `dtype` is unknown; RangeError when the
 *   length does not match `shape`.
 * @example
 * ```ts
 * const k = fromFloat32(Float32Array.from({ length: 8 * 64 }, Math.random), [8, 64], 'bfloat16');
 * ```
 */
export function fromFloat32(values: Float32Array, shape: readonly number[], dtype: DType): Tensor {
  if (!(values instanceof Float32Array)) {
    throw new TypeError(`values: expected Float32Array, got ${describeValue(values)}`);
  }
  if (!isDType(dtype)) throw new TypeError(`dtype: expected one of ${DTYPES.join(', ')}, got ${describeValue(dtype)}`);
  const data = dtype === 'float32' ? values.slice() : float32ToBits(values, dtype);
  return tensor(data, shape, dtype);
}

/**
 * Decodes a tensor's elements to a fresh Float32Array (a copy also for float32).
 * @throws TypeError when `t` is not a Tensor or its array type does not fit its dtype.
 * @example
 * ```ts
 * const values = toFloat32(out); // Float32Array, row-major as out.shape
 * ```
 */
export function toFloat32(t: Tensor): Float32Array {
  if (t === null || typeof t !== 'object' || !isDType(t.dtype)) {
    throw new TypeError(`t: expected a Tensor, got ${describeValue(t)}`);
  }
  if (t.dtype === 'float32') {
    if (!(t.data instanceof Float32Array)) throw new TypeError(`t.data: expected Float32Array, got ${describeValue(t.data)}`);
    return t.data.slice();
  }
  if (!(t.data instanceof Uint16Array)) throw new TypeError(`t.data: expected Uint16Array, got ${describeValue(t.data)}`);
  const out = new Float32Array(t.data.length);
  const conv = t.dtype === 'bfloat16' ? bfloat16BitsToFloat32 : float16BitsToFloat32;
  for (let i = 0; i < out.length; i++) out[i] = conv(t.data[i]);
  return out;
}

