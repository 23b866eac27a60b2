// What users hand the kernels, and every check of it: kernel options (their types, defaults and the
// block sizes they resolve to), per-call options, and the tensors and segment ids of each call.
// Messages name the argument, the expected value and the actual one; types → TypeError, numbers →
// RangeError.

import { describeValue } from './describe-value';
import { isDType, shapeSize, type DType, type Tensor } from './tensor';

// ---- kernel options ----------------------------------------------------------------------------

/**
 * How the kernel keeps q, k or v in memory while it computes (BlockSizes.qLayout and friends). The
 * tensors you pass and get back are always row-major with the head dim last; only the working copy
 * changes. The cpu backend honours it; the js backend keeps the working copies its kernels read fastest
 * whatever it says, and the GPU and reference backends ignore it. Any other value is a TypeError naming
 * the field.
 */
export enum QKVLayout {
  /** The head dim is contiguous: `[seq, dim]`, as the API's tensors. The default. */
  HEAD_DIM_MINOR = 1,
  /** The sequence is contiguous: `[dim, seq]`, a transposed working copy. */
  SEQ_MINOR = 2,
}

/** Every name SplashOptions.backend takes. */
export const BACKEND_NAMES = ['auto', 'cuda', 'rocm', 'cpu', 'js', 'reference'] as const;
/** A backend name, or 'auto'. */
export type BackendName = (typeof BACKEND_NAMES)[number];

/**
 * Block sizes in tokens, as splash's BlockSizes. Every field is optional: an unset size is the backend's
 * default (128 on every backend today) or the forward size it follows, as each field says. Block
 * sizes larger than a sequence are allowed (one ragged block). Sizes are positive integers
 * (TypeError when not a number, RangeError otherwise, naming `blockSizes.<field>`); an unknown field is
 * a TypeError.
 */
export interface BlockSizes {
  /** Query rows per block in the forward. Default: the backend's. */
  blockQ?: number;
  /** Keys per block in the forward. Default: the backend's. */
  blockKv?: number;
  /** Keys per compute step inside a forward block; must divide blockKv (RangeError). Default blockKv. */
  blockKvCompute?: number;
  /** Query rows per block in the dk/dv pass. Default blockQ. */
  blockQDkv?: number;
  /** Keys per block in the dk/dv pass. Default blockKv. */
  blockKvDkv?: number;
  /** Keys per compute step inside a dk/dv block; must divide blockKvDkv (RangeError). Default blockKvDkv. */
  blockKvDkvCompute?: number;
  /** Query rows per block in the dq pass of the split backward. Default blockQ. RangeError with useFusedBwdKernel. */
  blockQDq?: number;
  /** Keys per block in the dq pass of the split backward. Default blockKv. RangeError with useFusedBwdKernel. */
  blockKvDq?: number;
  /**
   * true: one backward pass computes dq, dk and dv (on a GPU, dq is summed atomically and may differ
   * in the last bits run to run). Default false: separate dq and dk/dv passes. TypeError when not a boolean.
   */
  useFusedBwdKernel?: boolean;
  /** Layout q is kept in while the kernel computes; the API's shapes never change. Default HEAD_DIM_MINOR. */
  qLayout?: QKVLayout;
  /** Layout k is kept in while the kernel computes; the API's shapes never change. Default HEAD_DIM_MINOR. */
  kLayout?: QKVLayout;
  /** Layout v is kept in while the kernel computes; the API's shapes never change. Default HEAD_DIM_MINOR. */
  vLayout?: QKVLayout;
}

/**
 * Options of {@link makeSplashMHA} and {@link makeSplashMQA}, fixed for the kernel's life. Every field
 * is optional. An unknown key is a TypeError naming it (`opts.<key>`): a typo never changes the math.
 */
export interface SplashOptions {
  /** Block sizes in tokens; see {@link BlockSizes}. Default: the backend's own choice. */
  blockSizes?: BlockSizes;
  /** true: forward returns `{ out, logsumexp }`, as a backward needs. Default false: out alone. A boolean. */
  saveResiduals?: boolean;
  /**
   * The logit given to masked elements inside visited blocks. Default -2.381976426469702e38
   * (-0.7 × float32 max, splash's). Only the default gives the same result for every block size. NaN is
   * a RangeError.
   */
  maskValue?: number;
  /** Soft cap: logits = cap · tanh(logits / cap), before masking. A positive finite number; default null (none). */
  attnLogitsSoftCap?: number | null;
  /**
   * Where the kernel runs: 'cuda', 'rocm', 'cpu' (native addon), 'js' (pure JavaScript) or 'reference'
   * (a float64 oracle, slow). Default 'auto': cuda, then rocm, then cpu, then js. A name that is not in
   * this list is a TypeError; a named backend that is unavailable here is an Error saying why.
   */
  backend?: BackendName;
  /** Split the heads into this many groups of work (threads or devices). Default 1; results never change. */
  headShards?: number;
  /**
   * Split the q-blocks into this many contiguous shards, each with its own schedule: an integer from 1
   * to the number of q-blocks (RangeError otherwise). Default 1; results never change.
   */
  qSeqShards?: number;
  /**
   * logits = scale · q·kᵀ, before the soft cap; dq and dk carry the factor. A positive finite number
   * (RangeError otherwise). Default 1, as splash: callers scale q. Pass `1 / Math.sqrt(D)` for
   * FlashAttention's convention. The GPU backends take only 1 so far (their calls reject others).
   */
  scale?: number;
}

const OPTION_KEYS = ['blockSizes', 'saveResiduals', 'maskValue', 'attnLogitsSoftCap', 'backend', 'headShards', 'qSeqShards', 'scale'] as const;

/** -0.7 × float32 max, splash's DEFAULT_MASK_VALUE. */
export const DEFAULT_MASK_VALUE = -0.7 * 3.4028234663852886e38;

const BLOCK_FIELDS = [
  'blockQ', 'blockKv', 'blockKvCompute', 'blockQDkv', 'blockKvDkv', 'blockKvDkvCompute', 'blockQDq', 'blockKvDq',
] as const;
const LAYOUT_FIELDS = ['qLayout', 'kLayout', 'vLayout'] as const;

/** An unknown key is a TypeError naming it: a typo must never silently change the math. */
function rejectUnknownKeys(o: Record<string, unknown>, name: string, known: readonly string[]): void {
  for (const key of Object.keys(o)) {
    if (!known.includes(key)) throw new TypeError(`${name}.${key}: unknown option (expected one of ${known.join(', ')})`);
  }
}

/** Returns `x` when it is a positive integer; TypeError (not a number) or RangeError naming `name`. */
export function checkPositiveInteger(x: unknown, name: string): number {
  if (typeof x !== 'number') throw new TypeError(`${name}: expected a positive integer, got ${describeValue(x)}`);
  if (!Number.isInteger(x) || x <= 0) throw new RangeError(`${name}: expected a positive integer, got ${x}`);
  return x;
}

function checkObject(x: unknown, name: string): Record<string, unknown> {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) {
    throw new TypeError(`${name}: expected an object, got ${describeValue(x)}`);
  }
  return x as Record<string, unknown>;
}

/** SplashOptions after checkOptions: every default filled in. */
export interface CheckedOptions {
  blockSizes: BlockSizes;
  saveResiduals: boolean;
  maskValue: number;
  attnLogitsSoftCap: number | null;
  backend: BackendName;
  headShards: number;
  qSeqShards: number;
  scale: number;
}

/** Checks a kernel's options and fills in the defaults; errors name the option. */
export function checkOptions(opts: unknown): CheckedOptions {
  const o = opts === undefined ? {} : checkObject(opts, 'opts');
  rejectUnknownKeys(o, 'opts', OPTION_KEYS);
  const bs = o.blockSizes === undefined ? {} : checkObject(o.blockSizes, 'blockSizes');
  rejectUnknownKeys(bs, 'blockSizes', [...BLOCK_FIELDS, ...LAYOUT_FIELDS, 'useFusedBwdKernel']);
  const blockSizes: BlockSizes = {};
  for (const f of BLOCK_FIELDS) {
    if (bs[f] !== undefined) blockSizes[f] = checkPositiveInteger(bs[f], `blockSizes.${f}`);
  }
  for (const f of LAYOUT_FIELDS) {
    const v = bs[f];
    if (v === undefined) continue;
    if (v !== QKVLayout.HEAD_DIM_MINOR && v !== QKVLayout.SEQ_MINOR) {
      throw new TypeError(`blockSizes.${f}: expected QKVLayout.HEAD_DIM_MINOR (1) or QKVLayout.SEQ_MINOR (2), got ${describeValue(v)}`);
    }
    blockSizes[f] = v;
  }
  if (bs.useFusedBwdKernel !== undefined) {
    if (typeof bs.useFusedBwdKernel !== 'boolean') {
      throw new TypeError(`blockSizes.useFusedBwdKernel: expected a boolean, got ${describeValue(bs.useFusedBwdKernel)}`);
    }
    blockSizes.useFusedBwdKernel = bs.useFusedBwdKernel;
    if (bs.useFusedBwdKernel) {
      for (const f of ['blockQDq', 'blockKvDq'] as const) {
        if (bs[f] !== undefined) {
          throw new RangeError(`blockSizes.${f}: expected unset with useFusedBwdKernel (the fused backward has no dq pass), got ${bs[f]}`);
        }
      }
    }
  }
  if (o.saveResiduals !== undefined && typeof o.saveResiduals !== 'boolean') {
    throw new TypeError(`saveResiduals: expected a boolean, got ${describeValue(o.saveResiduals)}`);
  }
  let maskValue = DEFAULT_MASK_VALUE;
  if (o.maskValue !== undefined) {
    if (typeof o.maskValue !== 'number') throw new TypeError(`maskValue: expected a number, got ${describeValue(o.maskValue)}`);
    if (Number.isNaN(o.maskValue)) throw new RangeError('maskValue: expected a number that is not NaN, got NaN');
    maskValue = o.maskValue;
  }
  let softCap: number | null = null;
  if (o.attnLogitsSoftCap !== undefined && o.attnLogitsSoftCap !== null) {
    if (typeof o.attnLogitsSoftCap !== 'number') {
      throw new TypeError(`attnLogitsSoftCap: expected a positive number or null, got ${describeValue(o.attnLogitsSoftCap)}`);
    }
    if (!(o.attnLogitsSoftCap > 0) || !Number.isFinite(o.attnLogitsSoftCap)) {
      throw new RangeError(`attnLogitsSoftCap: expected a positive finite number or null, got ${o.attnLogitsSoftCap}`);
    }
    softCap = o.attnLogitsSoftCap;
  }
  let scale = 1;
  if (o.scale !== undefined) {
    if (typeof o.scale !== 'number') throw new TypeError(`scale: expected a positive number, got ${describeValue(o.scale)}`);
    if (!(o.scale > 0) || !Number.isFinite(o.scale)) throw new RangeError(`scale: expected a positive finite number, got ${o.scale}`);
    scale = o.scale;
  }
  const backend = o.backend ?? 'auto';
  if (!(BACKEND_NAMES as readonly unknown[]).includes(backend)) {
    throw new TypeError(`backend: expected one of ${BACKEND_NAMES.join(', ')}, got ${describeValue(backend)}`);
  }
  return {
    blockSizes,
    saveResiduals: (o.saveResiduals as boolean | undefined) ?? false,
    maskValue,
    attnLogitsSoftCap: softCap,
    backend: backend as BackendName,
    headShards: o.headShards === undefined ? 1 : checkPositiveInteger(o.headShards, 'headShards'),
    qSeqShards: o.qSeqShards === undefined ? 1 : checkPositiveInteger(o.qSeqShards, 'qSeqShards'),
    scale,
  };
}

/** Block sizes with every default filled in (see API.md BlockSizes). */
export interface ResolvedBlockSizes {
  blockQ: number;
  blockKv: number;
  blockKvCompute: number;
  blockQDkv: number;
  blockKvDkv: number;
  blockKvDkvCompute: number;
  /** Split backward only; null for the fused backward. */
  blockQDq: number | null;
  blockKvDq: number | null;
  useFusedBwdKernel: boolean;
  qLayout: QKVLayout;
  kLayout: QKVLayout;
  vLayout: QKVLayout;
}

/** Fills every unset block size from the backend's default (`defaultBlockSize`) or the field it derives
 *  from, and checks that the compute blocks divide their blocks. */
export function resolveBlockSizes(bs: BlockSizes, defaultBlockSize: (seqLen: number) => number, qSeqLen: number,
  kvSeqLen: number): ResolvedBlockSizes {
  const blockQ = bs.blockQ ?? defaultBlockSize(qSeqLen);
  const blockKv = bs.blockKv ?? defaultBlockSize(kvSeqLen);
  const blockKvDkv = bs.blockKvDkv ?? blockKv;
  const fused = bs.useFusedBwdKernel ?? false;
  const resolved: ResolvedBlockSizes = {
    blockQ,
    blockKv,
    blockKvCompute: bs.blockKvCompute ?? blockKv,
    blockQDkv: bs.blockQDkv ?? blockQ,
    blockKvDkv,
    blockKvDkvCompute: bs.blockKvDkvCompute ?? blockKvDkv,
    blockQDq: fused ? null : bs.blockQDq ?? blockQ,
    blockKvDq: fused ? null : bs.blockKvDq ?? blockKv,
    useFusedBwdKernel: fused,
    qLayout: bs.qLayout ?? QKVLayout.HEAD_DIM_MINOR,
    kLayout: bs.kLayout ?? QKVLayout.HEAD_DIM_MINOR,
    vLayout: bs.vLayout ?? QKVLayout.HEAD_DIM_MINOR,
  };
  const divides = (inner: 'blockKvCompute' | 'blockKvDkvCompute', outer: 'blockKv' | 'blockKvDkv'): void => {
    if (resolved[outer] % resolved[inner] !== 0) {
      throw new RangeError(
        `blockSizes.${inner}: expected a divisor of blockSizes.${outer} (${resolved[outer]}), got ${resolved[inner]}`,
      );
    }
  };
  divides('blockKvCompute', 'blockKv');
  divides('blockKvDkvCompute', 'blockKvDkv');
  return resolved;
}

// ---- per-call options --------------------------------------------------------------------------

/**
 * Per-call options, the last argument of forward, forwardSync and vjp (backward takes the same fields
 * in its argument). An unknown key is a TypeError naming it.
 */
export interface CallOptions {
  /**
   * Aborts the call: it rejects with a DOMException named 'AbortError' and returns no partial result;
   * the kernel stays usable. Not allowed on forwardSync and backwardSync; both that and a value that
   * is not an AbortSignal are TypeErrors naming it (`opts.signal`, `backward.signal`).
   */
  signal?: AbortSignal;
  /**
   * Attention sinks: a host float32 Tensor `[H]`, one logit per query head that joins every row's
   * softmax denominator with no value behind it. Then logsumexp = log(Σ exp(logits) + exp(sink)), and a
   * row with no allowed key gets out = 0 and logsumexp = its sink logit. A DeviceTensor or another dtype is a
   * TypeError; another shape or a NaN is a RangeError (naming `opts.sinks` or `backward.sinks`).
   */
  sinks?: Tensor;
}

const CALL_OPTION_KEYS = ['signal', 'sinks'] as const;

/** Checks a call's options; `signalAllowed` is false for the *Sync calls, which cannot be aborted. */
export function checkCallOptions(opts: unknown, name: string, signalAllowed: boolean): CallOptions {
  if (opts === undefined) return {};
  const o = checkObject(opts, name);
  rejectUnknownKeys(o, name, CALL_OPTION_KEYS);
  const signal = o.signal;
  if (signal !== undefined) {
    if (!signalAllowed) {
      throw new TypeError(`${name}.signal: a synchronous call cannot be aborted; use the async variant`);
    }
    if (!(signal instanceof AbortSignal)) throw new TypeError(`${name}.signal: expected an AbortSignal, got ${describeValue(signal)}`);
  }
  return { signal: signal as AbortSignal | undefined, sinks: o.sinks === undefined ? undefined : checkTensor(o.sinks, `${name}.sinks`) };
}

// ---- call arguments ----------------------------------------------------------------------------

/**
 * Segment ids for packed sequences: a query attends a key only when their ids are equal (and the mask
 * allows it). Batch-major: entry b·Sq + i is query i of batch element b. A wrong array type is a
 * TypeError, a wrong length a RangeError, naming `segmentIds.q` or `segmentIds.kv`.
 */
export interface SegmentIds {
  /** One id per query: length B·Sq, or Sq without a batch dim. */
  q: Int32Array;
  /** One id per key: length B·Skv, or Skv without a batch dim. */
  kv: Int32Array;
}

/** Marks DeviceTensors (lib/backends/device.ts sets it), so that tensor checks accept them without
 *  importing the GPU modules. */
export const DEVICE_TENSOR_BRAND = Symbol.for('splash-attention.DeviceTensor');

/** Checks that x is a well-formed Tensor (or a DeviceTensor, valid by construction) and returns it. */
export function checkTensor(x: unknown, name: string): Tensor {
  if (x === null || typeof x !== 'object') throw new TypeError(`${name}: expected a Tensor, got ${describeValue(x)}`);
  if ((x as { [DEVICE_TENSOR_BRAND]?: unknown })[DEVICE_TENSOR_BRAND] === true) return x as Tensor;
  const t = x as Partial<Tensor>;
  if (!isDType(t.dtype)) {
    throw new TypeError(`${name}.dtype: expected 'float32', 'bfloat16' or 'float16', got ${describeValue(t.dtype)}`);
  }
  const want = t.dtype === 'float32' ? Float32Array : Uint16Array;
  if (!(t.data instanceof want)) {
    throw new TypeError(`${name}.data: expected ${want.name} for dtype ${t.dtype}, got ${describeValue(t.data)}`);
  }
  if (!Array.isArray(t.shape)) throw new TypeError(`${name}.shape: expected an array, got ${describeValue(t.shape)}`);
  t.shape.forEach((d, i) => {
    if (typeof d !== 'number') throw new TypeError(`${name}.shape[${i}]: expected a positive integer, got ${describeValue(d)}`);
    if (!Number.isInteger(d) || d <= 0) throw new RangeError(`${name}.shape[${i}]: expected a positive integer, got ${d}`);
  });
  const n = shapeSize(t.shape);
  if (t.data.length !== n) {
    throw new RangeError(`${name}.data: expected length ${n} (product of shape [${t.shape.join(', ')}]), got ${t.data.length}`);
  }
  return t as Tensor;
}

/** Sizes of one validated call. Tensors are [batch, heads, seq, dim] logically (batch = 1 without a batch dim). */
export interface CallShape {
  batch: number;
  hasBatch: boolean;
  heads: number;
  /** kv heads (1 for MQA). */
  kvHeads: number;
  qSeqLen: number;
  kvSeqLen: number;
  headDim: number;
  headDimV: number;
  dtype: DType;
}

/** Shapes of a forward's results for a call: out [.., H, Sq, Dv] and logsumexp [.., H, Sq]. */
export function forwardResultShapes(shape: CallShape): { out: number[]; logsumexp: number[] } {
  const rows = shape.hasBatch ? [shape.batch, shape.heads, shape.qSeqLen] : [shape.heads, shape.qSeqLen];
  return { out: [...rows, shape.headDimV], logsumexp: rows };
}

function fmt(shape: readonly (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}

function checkRank(t: Tensor, name: string, ranks: readonly number[], what: string): void {
  if (!ranks.includes(t.shape.length)) {
    throw new RangeError(`${name}.shape: expected rank ${ranks.join(' or ')} (${what}), got ${fmt(t.shape)}`);
  }
}

function checkDim(name: string, what: string, expected: number, actual: number, shape: readonly number[]): void {
  if (expected !== actual) {
    throw new RangeError(`${name}.shape: expected ${what} ${expected}, got ${actual} in ${fmt(shape)}`);
  }
}

function checkSameDType(t: Tensor, name: string, dtype: DType): void {
  if (t.dtype !== dtype) throw new TypeError(`${name}.dtype: expected '${dtype}' (q's dtype), got '${t.dtype}'`);
}

/** A checked call's sizes, and its segment ids (null when not given). */
export interface CheckedCall {
  shape: CallShape;
  segQ: Int32Array | null;
  segKv: Int32Array | null;
}

/**
 * Checks q, k, v (and segment ids) against each other and the mask; returns the call's sizes.
 * maskHeads is 1 for a plain 2-D mask (applies to every head).
 */
export function checkCall(
  isMqa: boolean,
  maskShape: readonly [number, number],
  maskHeads: number,
  qIn: unknown,
  kIn: unknown,
  vIn: unknown,
  segIn: unknown,
): CheckedCall {
  const q = checkTensor(qIn, 'q');
  const k = checkTensor(kIn, 'k');
  const v = checkTensor(vIn, 'v');
  checkRank(q, 'q', [3, 4], '[H, Sq, D] or [B, H, Sq, D]');
  const hasBatch = q.shape.length === 4;
  const kvRank = (isMqa ? 2 : 3) + (hasBatch ? 1 : 0);
  const kvWhat = isMqa ? (hasBatch ? '[B, Skv, D] like q\'s batch' : '[Skv, D] for MQA') : hasBatch ? '[B, Hkv, Skv, D] like q' : '[Hkv, Skv, D] like q';
  checkRank(k, 'k', [kvRank], kvWhat);
  checkRank(v, 'v', [kvRank], kvWhat.replace(/D\]/, 'Dv]'));
  checkSameDType(k, 'k', q.dtype);
  checkSameDType(v, 'v', q.dtype);
  const batch = hasBatch ? q.shape[0] : 1;
  const [heads, qSeqLen, headDim] = q.shape.slice(-3);
  const kvHeads = isMqa ? 1 : k.shape[k.shape.length - 3];
  const [kvSeqLen, kDim] = k.shape.slice(-2);
  const [vSeqLen, headDimV] = v.shape.slice(-2);
  if (hasBatch) {
    checkDim('k', 'batch size (q\'s)', batch, k.shape[0], k.shape);
    checkDim('v', 'batch size (q\'s)', batch, v.shape[0], v.shape);
  }
  if (!isMqa) {
    if (heads % kvHeads !== 0) {
      throw new RangeError(`k.shape: expected a kv head count that divides q's ${heads} heads, got ${kvHeads} in ${fmt(k.shape)}`);
    }
    checkDim('v', 'kv head count (k\'s)', kvHeads, v.shape[v.shape.length - 3], v.shape);
  }
  checkDim('k', 'head dim (q\'s)', headDim, kDim, k.shape);
  checkDim('v', 'sequence length (k\'s)', kvSeqLen, vSeqLen, v.shape);
  checkDim('q', 'sequence length (the mask\'s)', maskShape[0], qSeqLen, q.shape);
  checkDim('k', 'sequence length (the mask\'s)', maskShape[1], kvSeqLen, k.shape);
  if (maskHeads !== 1) checkDim('q', 'head count (the mask\'s)', maskHeads, heads, q.shape);

  let segQ: Int32Array | null = null;
  let segKv: Int32Array | null = null;
  if (segIn !== undefined && segIn !== null) {
    const seg = checkObject(segIn, 'segmentIds');
    if (!(seg.q instanceof Int32Array)) throw new TypeError(`segmentIds.q: expected Int32Array, got ${describeValue(seg.q)}`);
    if (!(seg.kv instanceof Int32Array)) throw new TypeError(`segmentIds.kv: expected Int32Array, got ${describeValue(seg.kv)}`);
    if (seg.q.length !== batch * qSeqLen) {
      throw new RangeError(`segmentIds.q: expected length ${batch * qSeqLen} (batch ${batch} × Sq ${qSeqLen}), got ${seg.q.length}`);
    }
    if (seg.kv.length !== batch * kvSeqLen) {
      throw new RangeError(`segmentIds.kv: expected length ${batch * kvSeqLen} (batch ${batch} × Skv ${kvSeqLen}), got ${seg.kv.length}`);
    }
    segQ = seg.q;
    segKv = seg.kv;
  }
  return {
    shape: { batch, hasBatch, heads, kvHeads, qSeqLen, kvSeqLen, headDim, headDimV, dtype: q.dtype },
    segQ,
    segKv,
  };
}

/** Checks the backward's residuals and cotangent against the call's sizes. */
export function checkBackwardExtras(shape: CallShape, outIn: unknown, lseIn: unknown, doutIn: unknown):
  { out: Tensor; logsumexp: Tensor; dout: Tensor } {
  const want = forwardResultShapes(shape);
  const check = (x: unknown, name: string, want: number[], dtype: DType): Tensor => {
    const t = checkTensor(x, name);
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new RangeError(`${name}.shape: expected ${fmt(want)}, got ${fmt(t.shape)}`);
    }
    if (t.dtype !== dtype) throw new TypeError(`${name}.dtype: expected '${dtype}', got '${t.dtype}'`);
    return t;
  };
  return {
    out: check(outIn, 'out', want.out, shape.dtype),
    logsumexp: check(lseIn, 'logsumexp', want.logsumexp, 'float32'),
    dout: check(doutIn, 'dout', want.out, shape.dtype),
  };
}

/** The sinks of a call with `heads` query heads: a float32 host Tensor of shape [heads] with no NaN. */
export function checkSinks(sinks: Tensor, heads: number, name: string): Float32Array {
  if (!ArrayBuffer.isView(sinks.data)) throw new TypeError(`${name}: expected a host Tensor (sinks cannot be DeviceTensors)`);
  if (sinks.dtype !== 'float32') throw new TypeError(`${name}.dtype: expected 'float32', got '${sinks.dtype}'`);
  if (sinks.shape.length !== 1 || sinks.shape[0] !== heads) {
    throw new RangeError(`${name}.shape: expected [${heads}] (one logit per query head), got [${sinks.shape.join(', ')}]`);
  }
  const data = sinks.data as Float32Array;
  const nan = data.findIndex((x) => Number.isNaN(x));
  if (nan >= 0) throw new RangeError(`${name}[${nan}]: expected a number, got NaN`);
  return data;
}
