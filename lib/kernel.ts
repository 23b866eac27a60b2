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

export interface ForwardWithResiduals {
  out: Tensor;
  logsumexp: Tensor;
}

export interface Gradients {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
  /** [H] float32, summed over batch and rows: only when the call had sinks. */
  dsinks?: Tensor;
}

export interface BackwardInputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  segmentIds?: SegmentIds;
  out: Tensor;
  logsumexp: Tensor;
  dout: Tensor;
  /** Aborts the call (async backward only). */
  signal?: AbortSignal;
  /** The sinks the forward had ([H] float32); the result then holds dsinks. */
  sinks?: Tensor;
}

export interface VjpResult extends ForwardWithResiduals {
  /** The backward of the vjp's forward; without opts it uses the vjp's signal. */
  backward(dout: Tensor, opts?: CallOptions): Promise<Gradients>;
}

export class SplashAttentionKernel {
  readonly backend: string;
  readonly fwdMaskInfo: MaskInfo;
  readonly dqMaskInfo: MaskInfo | null;
  readonly dkvMaskInfo: MaskInfo;
  private readonly impl: Backend;
  private readonly cfg: KernelConfig;
  private readonly saveResiduals: boolean;

  /** Use makeSplashMHA / makeSplashMQA. */
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
    return { shape: c.shape, args: { q: q as Tensor, k: k as Tensor, v: v as Tensor, segQ: c.segQ, segKv: c.segKv } };
  }

  /** The call's sinks, checked against its head count, or null. */
  private sinksOf(sinks: Tensor | undefined, shape: CallShape, name: string): Float32Array | null {
    return sinks === undefined ? null : checkSinks(sinks, shape.heads, name);
  }

  private shapeResult(r: ForwardWithResiduals): Tensor | ForwardWithResiduals {
    return this.saveResiduals ? r : r.out;
  }

  /** A forward with sinks: the backend's own, or the backend's result with the sinks merged in. */
  private forwardArgs(args: ForwardArgs, sinks: Float32Array | null): ForwardArgs {
    return this.impl.sinks !== undefined && sinks !== null ? { ...args, sinks } : args;
  }

  private finishForward(r: ForwardWithResiduals, sinks: Float32Array | null): ForwardWithResiduals {
    return sinks === null || this.impl.sinks !== undefined ? r : withSinks(r, sinks);
  }

  forwardSync(q: Tensor | DeviceTensor, k: Tensor | DeviceTensor, v: Tensor | DeviceTensor, segmentIds?: SegmentIds,
    opts?: CallOptions): Tensor | ForwardWithResiduals {
    const o = checkCallOptions(opts, 'opts', false);
    const { shape, args } = this.prepare(q, k, v, segmentIds);
    const sinks = this.sinksOf(o.sinks, shape, 'opts.sinks');
    return this.shapeResult(this.finishForward(this.impl.forwardSync(this.cfg, shape, this.forwardArgs(args, sinks)), sinks));
  }

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
    const own = this.impl.sinks === 'forward+backward' && sinks !== null ? { sinks } : {};
    return { shape, args: { ...args, ...own, ...extras }, signal: call.signal, sinks };
  }

  /** The backend's gradients, plus dsinks from the given residuals when the backend does not make them. */
  private finishBackward(g: Gradients, a: BackwardInputs, sinks: Float32Array | null): Gradients {
    if (sinks === null || this.impl.sinks === 'forward+backward') return g;
    return { ...g, dsinks: sinkGradient(a.out, a.dout, a.logsumexp, sinks) };
  }

  backwardSync(a: BackwardInputs): Gradients {
    const { shape, args, sinks } = this.prepareBackward(a, false);
    return this.finishBackward(this.impl.backwardSync(this.cfg, shape, args), a, sinks);
  }

  async backward(a: BackwardInputs): Promise<Gradients> {
    const { shape, args, signal, sinks } = this.prepareBackward(a, true);
    const g = await runInFlight(signal, () => this.impl.backward(this.cfg, shape, args, { signal }));
    return this.finishBackward(g, a, sinks);
  }

  /** Forward with residuals, and a backward closure over the same inputs (and sinks). */
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
export interface SplashKernelWithResiduals extends SplashAttentionKernel {
  forward(q: Tensor, k: Tensor, v: Tensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<ForwardWithResiduals>;
  forward(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<DeviceResiduals>;
  forward(q: AnyTensor, k: AnyTensor, v: AnyTensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<ForwardWithResiduals | DeviceResiduals>;
  forwardSync(q: Tensor, k: Tensor, v: Tensor, segmentIds?: SegmentIds, opts?: CallOptions): ForwardWithResiduals;
  forwardSync(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, segmentIds?: SegmentIds, opts?: CallOptions): DeviceResiduals;
  forwardSync(q: AnyTensor, k: AnyTensor, v: AnyTensor, segmentIds?: SegmentIds, opts?: CallOptions): ForwardWithResiduals | DeviceResiduals;
}
export interface SplashKernelOutOnly extends SplashAttentionKernel {
  forward(q: Tensor, k: Tensor, v: Tensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<Tensor>;
  forward(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<DeviceTensor>;
  forward(q: AnyTensor, k: AnyTensor, v: AnyTensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<AnyTensor>;
  forwardSync(q: Tensor, k: Tensor, v: Tensor, segmentIds?: SegmentIds, opts?: CallOptions): Tensor;
  forwardSync(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, segmentIds?: SegmentIds, opts?: CallOptions): DeviceTensor;
  forwardSync(q: AnyTensor, k: AnyTensor, v: AnyTensor, segmentIds?: SegmentIds, opts?: CallOptions): AnyTensor;
}

export function makeSplashMHA(mask: Mask | MultiHeadMask, opts: SplashOptions & { saveResiduals: true }): SplashKernelWithResiduals;
export function makeSplashMHA(mask: Mask | MultiHeadMask, opts?: SplashOptions): SplashKernelOutOnly;
export function makeSplashMHA(mask: Mask | MultiHeadMask, opts?: SplashOptions): SplashAttentionKernel {
  return new SplashAttentionKernel(mask, opts, false);
}

export function makeSplashMQA(mask: Mask | MultiHeadMask, opts: SplashOptions & { saveResiduals: true }): SplashKernelWithResiduals;
export function makeSplashMQA(mask: Mask | MultiHeadMask, opts?: SplashOptions): SplashKernelOutOnly;
export function makeSplashMQA(mask: Mask | MultiHeadMask, opts?: SplashOptions): SplashAttentionKernel {
  return new SplashAttentionKernel(mask, opts, true);
}
