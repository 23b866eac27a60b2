// The kernel object: a mask and options fixed once (MaskInfo built here), then
// forward / backward / vjp calls that validate and hand one plan to a backend.

import type { Backend, ForwardArgs, KernelConfig } from './backends/backend';
import { rejectDeviceTensors, type DeviceTensor } from './backends/device';
import { resolveBackend } from './backends/registry';
import { Mask, MultiHeadMask } from './mask';
import { processMask, type MaskInfo } from './mask-info';
import type { Tensor } from './tensor';
import { describeValue } from './describe-value';
import { runInFlight } from './call-queue';
import { sinkGradient, withSinks } from './merge';
import {
  checkBackwardExtras, checkCall, checkCallOptions, checkOptions, checkSinks, resolveBlockSizes, type CallOptions,
  type CallShape, type SegmentIds, type SplashOptions,
} from './validate';

/**
 * A forward result with its residuals: what `forward` returns when the kernel was made with
 * `saveResiduals: true`, and what {@link SplashAttentionKernel.backward} takes back.
 */
export interface ForwardWithResiduals {
  /** The attention output, `[.., H, Sq, Dv]` in q's dtype. */
  out: Tensor;
  /**
   * Natural-log softmax denominator per query row, `[.., H, Sq]` float32 (max + log(sum)). A row with
   * no allowed key has -Infinity, or the head's sink logit when the call had sinks.
   */
  logsumexp: Tensor;
}

/**
 * What a backward returns: one gradient per input, each in its input's shape and dtype. For MQA and
 * grouped-query kernels, dk and dv are summed over the query heads that share each kv head.
 */
export interface Gradients {
  /** Gradient of q: q's shape and dtype. */
  dq: Tensor;
  /** Gradient of k: k's shape and dtype. */
  dk: Tensor;
  /** Gradient of v: v's shape and dtype. */
  dv: Tensor;
  /** [H] float32, summed over batch and rows: only when the call had sinks (a DeviceTensor, as the
   *  other gradients, when a GPU backend ran on DeviceTensors). */
  dsinks?: Tensor;
}

/**
 * The argument of {@link SplashAttentionKernel.backward} and {@link SplashAttentionKernel.backwardSync}:
 * the forward's inputs, its residuals and the cotangent of its output. The residuals are used as
 * given (di = rowsum(out · dout)); the forward is never run again.
 */
export interface BackwardInputs {
  /** The forward's q. */
  q: Tensor;
  /** The forward's k. */
  k: Tensor;
  /** The forward's v. */
  v: Tensor;
  /** The forward's segment ids, if it had any. */
  segmentIds?: SegmentIds;
  /** The forward's output: `[.., H, Sq, Dv]` in q's dtype. */
  out: Tensor;
  /** The forward's logsumexp: `[.., H, Sq]` float32. */
  logsumexp: Tensor;
  /** Gradient of the loss with respect to `out`: out's shape and dtype. */
  dout: Tensor;
  /** Aborts the call (async backward only; backwardSync throws TypeError naming `backward.signal`). */
  signal?: AbortSignal;
  /** The sinks the forward had ([H] float32); the result then holds dsinks. */
  sinks?: Tensor;
}

/**
 * What {@link SplashAttentionKernel.vjp} resolves to: the forward's output and logsumexp, and a
 * backward bound to the same inputs.
 */
export interface VjpResult extends ForwardWithResiduals {
  /**
   * The backward of the vjp's forward, for the cotangent `dout` (out's shape and dtype). Only
   * `opts.signal` is read here: without opts it uses the vjp's signal; the sinks are always the vjp's.
   * Rejects like {@link SplashAttentionKernel.backward}.
   */
  backward(dout: Tensor, opts?: CallOptions): Promise<Gradients>;
}

/**
 * A splash attention kernel: a mask and options fixed once, then any number of forward and backward
 * calls. Make one with {@link makeSplashMHA} or {@link makeSplashMQA}; the block maps are built then.
 *
 * Semantics are MaxText splash attention's: logits = scale · q·kᵀ (scale 1 by default: no 1/√d, callers
 * scale q), then the soft cap, then the mask and the segment ids; fp32 accumulation. A query row with no
 * allowed key gives out = 0, logsumexp = -Infinity and zero gradients.
 *
 * Every call checks its arguments first. A wrong JavaScript type or an unknown name is a TypeError, a
 * size that does not fit is a RangeError; the message names the argument (`q`, `k.shape`,
 * `segmentIds.kv`, `opts.sinks`, …). Async calls reject with the same errors.
 */
export class SplashAttentionKernel {
  /** The backend that runs the calls: 'cuda', 'rocm', 'cpu', 'js' or 'reference' ('auto' resolved). */
  readonly backend: string;
  /** The mask cut into `[blockQ, blockKv]` blocks: the forward's schedule. */
  readonly fwdMaskInfo: MaskInfo;
  /**
   * The mask cut into `[blockQDq, blockKvDq]` blocks for the dq pass of the split backward; the same
   * object as fwdMaskInfo when those sizes equal the forward's, and null with the fused backward.
   */
  readonly dqMaskInfo: MaskInfo | null;
  /** The mask cut into `[blockQDkv, blockKvDkv]` blocks, scheduled per kv-block, for the dk/dv pass. */
  readonly dkvMaskInfo: MaskInfo;
  private readonly impl: Backend;
  private readonly cfg: KernelConfig;
  private readonly saveResiduals: boolean;

  /**
   * Use {@link makeSplashMHA} or {@link makeSplashMQA} instead; they call this with `isMqa` set.
   * Throws as they do.
   */
  constructor(mask: Mask | MultiHeadMask, opts: SplashOptions | undefined, isMqa: boolean) {
    if (!(mask instanceof Mask) && !(mask instanceof MultiHeadMask)) {
      throw new TypeError(`mask: expected a Mask or MultiHeadMask, got ${describeValue(mask)}`);
    }
    const o = checkOptions(opts);
    this.impl = resolveBackend(o.backend);
    this.backend = this.impl.name;
    const [qSeqLen, kvSeqLen] = mask.shape.slice(-2);
    const bs = resolveBlockSizes(o.blockSizes, (seqLen) => this.impl.defaultBlockSize(seqLen), qSeqLen, kvSeqLen);
    this.fwdMaskInfo = processMask(mask, [bs.blockQ, bs.blockKv], { qSeqShards: o.qSeqShards });
    const dqSameAsFwd = bs.blockQDq === bs.blockQ && bs.blockKvDq === bs.blockKv;
    this.dqMaskInfo =
      bs.blockQDq === null || bs.blockKvDq === null
        ? null
        : dqSameAsFwd
          ? this.fwdMaskInfo
          : processMask(mask, [bs.blockQDq, bs.blockKvDq], { qSeqShards: o.qSeqShards });
    this.dkvMaskInfo = processMask(mask, [bs.blockQDkv, bs.blockKvDkv], { isDkv: true });
    this.saveResiduals = o.saveResiduals;
    this.cfg = {
      mask,
      isMqa,
      blockSizes: bs,
      maskValue: o.maskValue,
      attnLogitsSoftCap: o.attnLogitsSoftCap,
      scale: o.scale,
      headShards: o.headShards,
      qSeqShards: o.qSeqShards,
      fwdMaskInfo: this.fwdMaskInfo,
      dqMaskInfo: this.dqMaskInfo,
      dkvMaskInfo: this.dkvMaskInfo,
    };
  }

  private prepare(q: unknown, k: unknown, v: unknown, segmentIds: unknown): { shape: CallShape; args: ForwardArgs } {
    const mask = this.cfg.mask;
    const heads = mask instanceof MultiHeadMask ? mask.masks.length : 1;
    const [sq, skv] = mask.shape.slice(-2);
    const c = checkCall(this.cfg.isMqa, [sq, skv], heads, q, k, v, segmentIds);
    rejectDeviceTensors(this.backend, { q, k, v });
    return { shape: c.shape, args: { q: q as Tensor, k: k as Tensor, v: v as Tensor, segQ: c.segQ, segKv: c.segKv, sinks: null } };
  }

  /** The call's sinks, checked against its head count, or null. */
  private sinksOf(sinks: Tensor | undefined, shape: CallShape, name: string): Float32Array | null {
    return sinks === undefined ? null : checkSinks(sinks, shape.heads, name);
  }

  private shapeResult(r: ForwardWithResiduals): Tensor | ForwardWithResiduals {
    return this.saveResiduals ? r : r.out;
  }

  /** A forward with sinks: the backend's own, or the backend's result with the sinks merged in. The call's
   *  fresh args are changed in place: a spread copy would give every call a hidden class of its own. */
  private forwardArgs(args: ForwardArgs, sinks: Float32Array | null): ForwardArgs {
    if (this.impl.sinks !== undefined) args.sinks = sinks;
    return args;
  }

  private finishForward(r: ForwardWithResiduals, sinks: Float32Array | null): ForwardWithResiduals {
    return sinks === null || this.impl.sinks !== undefined ? r : withSinks(r, sinks);
  }

  /**
   * The forward pass, computed on the calling thread (the event loop waits). Same inputs, checks and
   * bitwise the same result as {@link SplashAttentionKernel.forward}, but `opts.signal` is not allowed.
   *
   * @returns out `[.., H, Sq, Dv]` in q's dtype, or `{ out, logsumexp }` when the kernel was made with
   *   `saveResiduals: true`. DeviceTensor inputs give DeviceTensor outputs.
   * @throws TypeError / RangeError as for forward, and TypeError naming `opts.signal` when a signal is given.
   */
  forwardSync(q: Tensor | DeviceTensor, k: Tensor | DeviceTensor, v: Tensor | DeviceTensor, segmentIds?: SegmentIds,
    opts?: CallOptions): Tensor | ForwardWithResiduals {
    const o = checkCallOptions(opts, 'opts', false);
    const { shape, args } = this.prepare(q, k, v, segmentIds);
    const sinks = this.sinksOf(o.sinks, shape, 'opts.sinks');
    return this.shapeResult(this.finishForward(this.impl.forwardSync(this.cfg, shape, this.forwardArgs(args, sinks)), sinks));
  }

  /**
   * The forward pass, off the calling thread: native backends queue it on the addon's own workers, 'js'
   * computes on its worker threads (small calls in short slices between which the event loop runs),
   * 'reference' computes in one go.
   * Inputs are never modified; outputs are fresh.
   *
   * @param q - queries `[H, Sq, D]` or `[B, H, Sq, D]`.
   * @param k - keys `[Hkv, Skv, D]` (H a multiple of Hkv; MQA kernels: `[Skv, D]`), with q's batch dim
   *   if q has one, in q's dtype.
   * @param v - values: k's shape with Dv last, in q's dtype.
   * @param segmentIds - optional Int32Array ids of length B·Sq and B·Skv (batch-major): a query sees a
   *   key only when their ids are equal and the mask allows it.
   * @param opts - per-call options: `signal` to abort, `sinks` (`[H]` float32).
   * @returns out `[.., H, Sq, Dv]` in q's dtype, or `{ out, logsumexp }` when the kernel was made with
   *   `saveResiduals: true`. DeviceTensor inputs (GPU backends) give DeviceTensor outputs.
   * @throws TypeError (as a rejection) when an argument is not a Tensor, has an array type that does
   *   not fit its dtype, has another dtype than q, is a DeviceTensor on a host backend, or `opts` has
   *   an unknown key or a signal that is not an AbortSignal.
   * @throws RangeError (as a rejection) when a shape does not fit q, k, v or the mask (rank, head
   *   count, head dim, sequence length), a segment id array has the wrong length, or the sinks are not
   *   `[H]` or hold NaN. The GPU backends also reject head dims other than 32, 64, 96, 128, 192 and 256.
   *   Memory for the result or the native working set that cannot be allocated is a RangeError too,
   *   naming what and how many bytes.
   * @throws DOMException named 'AbortError' (as a rejection) when `opts.signal` fires; no partial result.
   * @throws Error (as a rejection) with the driver's message when the device fails.
   * @example
   * ```ts
   * const kernel = makeSplashMHA(new CausalMask([256, 256]), { saveResiduals: true });
   * const q = tensor(new Float32Array(8 * 256 * 64), [8, 256, 64]);
   * const k = tensor(new Float32Array(2 * 256 * 64), [2, 256, 64]); // 2 kv heads: grouped-query
   * const v = tensor(new Float32Array(2 * 256 * 64), [2, 256, 64]);
   * const { out, logsumexp } = await kernel.forward(q, k, v); // out [8, 256, 64], logsumexp [8, 256]
   * ```
   */
  async forward(q: Tensor | DeviceTensor, k: Tensor | DeviceTensor, v: Tensor | DeviceTensor, segmentIds?: SegmentIds,
    opts?: CallOptions): Promise<Tensor | ForwardWithResiduals> {
    const { signal, sinks: sinkTensor } = checkCallOptions(opts, 'opts', true);
    const { shape, args } = this.prepare(q, k, v, segmentIds);
    const sinks = this.sinksOf(sinkTensor, shape, 'opts.sinks');
    const r = await runInFlight(signal, () => this.impl.forward(this.cfg, shape, this.forwardArgs(args, sinks), { signal }));
    return this.shapeResult(this.finishForward(r, sinks));
  }

  private prepareBackward(a: BackwardInputs, signalAllowed: boolean): {
    shape: CallShape; args: ForwardArgs & ForwardWithResiduals & { dout: Tensor }; signal?: AbortSignal;
    sinks: Float32Array | null;
  } {
    if (a === null || typeof a !== 'object') {
      throw new TypeError(`backward: expected an object { q, k, v, segmentIds?, out, logsumexp, dout }, got ${describeValue(a)}`);
    }
    const { shape, args } = this.prepare(a.q, a.k, a.v, a.segmentIds);
    const extras = checkBackwardExtras(shape, a.out, a.logsumexp, a.dout);
    rejectDeviceTensors(this.backend, { out: a.out, logsumexp: a.logsumexp, dout: a.dout });
    const call = checkCallOptions(
      a.signal === undefined && a.sinks === undefined ? undefined : { signal: a.signal, sinks: a.sinks }, 'backward', signalAllowed);
    const sinks = this.sinksOf(call.sinks, shape, 'backward.sinks');
    // One literal for every call (no spreads), so that backends see one hidden class.
    return {
      shape,
      args: {
        q: args.q, k: args.k, v: args.v, segQ: args.segQ, segKv: args.segKv,
        sinks: this.impl.sinks === 'forward+backward' ? sinks : null,
        out: extras.out, logsumexp: extras.logsumexp, dout: extras.dout,
      },
      signal: call.signal,
      sinks,
    };
  }

  /** The backend's gradients, plus dsinks from the given residuals when the backend does not make them. */
  private finishBackward(g: Gradients, a: BackwardInputs, sinks: Float32Array | null): Gradients {
    if (sinks === null || this.impl.sinks === 'forward+backward') return g;
    return { ...g, dsinks: sinkGradient(a.out, a.dout, a.logsumexp, sinks) };
  }

  /**
   * The backward pass, computed on the calling thread. Same checks and bitwise the same result as
   * {@link SplashAttentionKernel.backward}, but `a.signal` is not allowed.
   *
   * @throws TypeError / RangeError as for backward, and TypeError naming `backward.signal` when a signal
   *   is given.
   */
  backwardSync(a: BackwardInputs): Gradients {
    const { shape, args, sinks } = this.prepareBackward(a, false);
    return this.finishBackward(this.impl.backwardSync(this.cfg, shape, args), a, sinks);
  }

  /**
   * The backward pass off the calling thread: dq, dk, dv (and dsinks when `a.sinks` is given) from the
   * forward's inputs, its `out` and `logsumexp`, and `dout`. It uses the given residuals and never
   * recomputes them. The split backward (the default) gives bitwise-identical results run to run.
   *
   * @param a - see {@link BackwardInputs}.
   * @throws TypeError (as a rejection) when `a` is not an object, or as forward for q, k, v,
   *   segmentIds and the sinks; also when out, logsumexp or dout are not Tensors or their dtype is wrong
   *   (out and dout: q's; logsumexp: float32).
   * @throws RangeError (as a rejection) as forward, and when out, dout or logsumexp do not have the
   *   shape the forward gives for these inputs.
   * @throws DOMException named 'AbortError' (as a rejection) when `a.signal` fires.
   * @throws Error (as a rejection) with the driver's message when the device fails.
   * @example
   * ```ts
   * const { out, logsumexp } = await kernel.forward(q, k, v); // kernel made with saveResiduals: true
   * const dout = tensor(new Float32Array(out.data.length).fill(1), out.shape);
   * const { dq, dk, dv } = await kernel.backward({ q, k, v, out, logsumexp, dout });
   * ```
   */
  async backward(a: BackwardInputs): Promise<Gradients> {
    const { shape, args, signal, sinks } = this.prepareBackward(a, true);
    const g = await runInFlight(signal, () => this.impl.backward(this.cfg, shape, args, { signal }));
    return this.finishBackward(g, a, sinks);
  }

  /**
   * The forward with its residuals, and a backward bound to the same inputs, segment ids and sinks.
   * It returns out and logsumexp whatever `saveResiduals` is. Takes and checks the same arguments as
   * {@link SplashAttentionKernel.forward} and rejects with the same errors.
   *
   * @example
   * ```ts
   * const { out, backward } = await kernel.vjp(q, k, v);
   * const { dq, dk, dv } = await backward(dout); // dout: out's shape and dtype
   * ```
   */
  async vjp(q: Tensor, k: Tensor, v: Tensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<VjpResult> {
    const { signal, sinks: sinkTensor } = checkCallOptions(opts, 'opts', true);
    const { shape, args } = this.prepare(q, k, v, segmentIds);
    const sinks = this.sinksOf(sinkTensor, shape, 'opts.sinks');
    const r = await runInFlight(signal, () => this.impl.forward(this.cfg, shape, this.forwardArgs(args, sinks), { signal }));
    const { out, logsumexp } = this.finishForward(r, sinks);
    return {
      out,
      logsumexp,
      backward: (dout: Tensor, backwardOpts?: CallOptions) => {
        const own = backwardOpts === undefined ? signal : checkCallOptions(backwardOpts, 'opts', true).signal;
        return this.backward({ q, k, v, segmentIds, out, logsumexp, dout, signal: own, sinks: sinkTensor });
      },
    };
  }
}

// Overloads so TypeScript users get the right result type from saveResiduals.
// DeviceTensor inputs (GPU backends) give DeviceTensor outputs; mixed inputs give DeviceTensors too.
type DeviceResiduals = { out: DeviceTensor; logsumexp: DeviceTensor };
type AnyTensor = Tensor | DeviceTensor;
/** A kernel made with `saveResiduals: true`: forward and forwardSync return `{ out, logsumexp }`. */
export interface SplashKernelWithResiduals extends SplashAttentionKernel {
  /** {@link SplashAttentionKernel.forward} on host tensors: resolves to `{ out, logsumexp }`. */
  forward(q: Tensor, k: Tensor, v: Tensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<ForwardWithResiduals>;
  /** {@link SplashAttentionKernel.forward} on DeviceTensors: resolves to DeviceTensors `{ out, logsumexp }`. */
  forward(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<DeviceResiduals>;
  /** {@link SplashAttentionKernel.forward} on mixed inputs: `{ out, logsumexp }`, DeviceTensors when any input is one. */
  forward(q: AnyTensor, k: AnyTensor, v: AnyTensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<ForwardWithResiduals | DeviceResiduals>;
  /** {@link SplashAttentionKernel.forwardSync} on host tensors: returns `{ out, logsumexp }`. */
  forwardSync(q: Tensor, k: Tensor, v: Tensor, segmentIds?: SegmentIds, opts?: CallOptions): ForwardWithResiduals;
  /** {@link SplashAttentionKernel.forwardSync} on DeviceTensors: returns DeviceTensors `{ out, logsumexp }`. */
  forwardSync(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, segmentIds?: SegmentIds, opts?: CallOptions): DeviceResiduals;
  /** {@link SplashAttentionKernel.forwardSync} on mixed inputs: `{ out, logsumexp }`, DeviceTensors when any input is one. */
  forwardSync(q: AnyTensor, k: AnyTensor, v: AnyTensor, segmentIds?: SegmentIds, opts?: CallOptions): ForwardWithResiduals | DeviceResiduals;
}
/** A kernel made without `saveResiduals`: forward and forwardSync return the output alone. */
export interface SplashKernelOutOnly extends SplashAttentionKernel {
  /** {@link SplashAttentionKernel.forward} on host tensors: resolves to out. */
  forward(q: Tensor, k: Tensor, v: Tensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<Tensor>;
  /** {@link SplashAttentionKernel.forward} on DeviceTensors: resolves to out as a DeviceTensor. */
  forward(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<DeviceTensor>;
  /** {@link SplashAttentionKernel.forward} on mixed inputs: resolves to out, a DeviceTensor when any input is one. */
  forward(q: AnyTensor, k: AnyTensor, v: AnyTensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<AnyTensor>;
  /** {@link SplashAttentionKernel.forwardSync} on host tensors: returns out. */
  forwardSync(q: Tensor, k: Tensor, v: Tensor, segmentIds?: SegmentIds, opts?: CallOptions): Tensor;
  /** {@link SplashAttentionKernel.forwardSync} on DeviceTensors: returns out as a DeviceTensor. */
  forwardSync(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, segmentIds?: SegmentIds, opts?: CallOptions): DeviceTensor;
  /** {@link SplashAttentionKernel.forwardSync} on mixed inputs: returns out, a DeviceTensor when any input is one. */
  forwardSync(q: AnyTensor, k: AnyTensor, v: AnyTensor, segmentIds?: SegmentIds, opts?: CallOptions): AnyTensor;
}

/**
 * Makes a multi-head attention kernel whose forward also returns logsumexp (`saveResiduals: true`), as
 * a backward needs. Everything else is as in the other signature.
 *
 * @param mask - a 2-D mask of shape `[Sq, Skv]` (applied to every head) or a MultiHeadMask with H masks.
 * @param opts - options with `saveResiduals: true`; see {@link SplashOptions}.
 */
export function makeSplashMHA(mask: Mask | MultiHeadMask, opts: SplashOptions & { saveResiduals: true }): SplashKernelWithResiduals;
/**
 * Makes a multi-head attention kernel: q `[B?, H, Sq, D]`, k `[B?, Hkv, Skv, D]`, v `[B?, Hkv, Skv, Dv]`.
 * Hkv may be smaller than H when it divides it (grouped-query attention: query head h reads kv head
 * floor(h / (H / Hkv))). The options are checked, the backend is picked and the mask is cut into
 * blocks here, once; the kernel is then reused for every call.
 *
 * @param mask - a 2-D mask of shape `[Sq, Skv]` (applied to every head) or a MultiHeadMask with H masks.
 * @param opts - see {@link SplashOptions}; every option has a default.
 * @throws TypeError when `mask` is not a Mask or MultiHeadMask, `opts` or `opts.blockSizes` is not an
 *   object or has an unknown key, an option has the wrong type, or `backend` or a layout is not a known
 *   value.
 * @throws RangeError when a block size, `headShards` or `qSeqShards` is not a positive integer,
 *   `blockKvCompute` (`blockKvDkvCompute`) does not divide `blockKv` (`blockKvDkv`), `blockQDq` or
 *   `blockKvDq` is given with `useFusedBwdKernel`, `qSeqShards` exceeds the number of q-blocks,
 *   `maskValue` is NaN, or `attnLogitsSoftCap` or `scale` is not a positive finite number.
 * @throws Error when the backend asked for by name is unavailable; the message says why.
 * @example
 * ```ts
 * import { CausalMask, makeSplashMHA, tensor } from 'splash-attention';
 *
 * const kernel = makeSplashMHA(new CausalMask([1024, 1024]));
 * const q = tensor(new Float32Array(4 * 1024 * 64), [4, 1024, 64]);
 * const out = await kernel.forward(q, q, q); // [4, 1024, 64]
 * ```
 */
export function makeSplashMHA(mask: Mask | MultiHeadMask, opts?: SplashOptions): SplashKernelOutOnly;
export function makeSplashMHA(mask: Mask | MultiHeadMask, opts?: SplashOptions): SplashAttentionKernel {
  return new SplashAttentionKernel(mask, opts, false);
}

/**
 * Makes a multi-query attention kernel whose forward also returns logsumexp (`saveResiduals: true`), as
 * a backward needs. Everything else is as in the other signature.
 *
 * @param mask - a 2-D mask of shape `[Sq, Skv]` (applied to every head) or a MultiHeadMask with H masks.
 * @param opts - options with `saveResiduals: true`; see {@link SplashOptions}.
 */
export function makeSplashMQA(mask: Mask | MultiHeadMask, opts: SplashOptions & { saveResiduals: true }): SplashKernelWithResiduals;
/**
 * Makes a multi-query attention kernel: every query head reads one shared k `[B?, Skv, D]` and v
 * `[B?, Skv, Dv]`; q is `[B?, H, Sq, D]`. dk and dv are summed over the heads. Options, checks and errors
 * are those of {@link makeSplashMHA}.
 *
 * @param mask - a 2-D mask of shape `[Sq, Skv]` (applied to every head) or a MultiHeadMask with H masks.
 * @param opts - see {@link SplashOptions}; every option has a default.
 * @throws TypeError, RangeError or Error as {@link makeSplashMHA}.
 * @example
 * ```ts
 * const kernel = makeSplashMQA(new LocalMask([512, 512], [128, 0]), { saveResiduals: true });
 * const q = tensor(new Float32Array(8 * 512 * 64), [8, 512, 64]);
 * const kv = tensor(new Float32Array(512 * 64), [512, 64]);
 * const { out, logsumexp } = await kernel.forward(q, kv, kv); // [8, 512, 64], [8, 512]
 * ```
 */
export function makeSplashMQA(mask: Mask | MultiHeadMask, opts?: SplashOptions): SplashKernelOutOnly;
export function makeSplashMQA(mask: Mask | MultiHeadMask, opts?: SplashOptions): SplashAttentionKernel {
  return new SplashAttentionKernel(mask, opts, true);
}
