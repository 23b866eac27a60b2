// The kernel object: a mask and options fixed once (MaskInfo built here), then
// forward / backward / vjp calls that validate and hand one plan to a backend.

import type { Backend, CallShape, ForwardArgs, KernelConfig, ResolvedBlockSizes } from './backends/backend';
import { QKVLayout } from './backends/backend';
import { rejectDeviceTensors, type DeviceTensor } from './backends/device';
import { resolveBackend } from './backends/registry';
import { Mask, MultiHeadMask } from './mask';
import { processMask, type MaskInfo } from './mask-info';
import type { Tensor } from './tensor';
import { describeValue } from './tensor';
import { runInFlight } from './call-queue';
import {
  checkBackwardExtras, checkCall, checkCallOptions, checkOptions, type BlockSizes, type CallOptions, type SegmentIds,
  type SplashOptions,
} from './validate';

export interface ForwardWithResiduals {
  out: Tensor;
  logsumexp: Tensor;
}

export interface Gradients {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
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
}

export interface VjpResult extends ForwardWithResiduals {
  /** The backward of the vjp's forward; without opts it uses the vjp's signal. */
  backward(dout: Tensor, opts?: CallOptions): Promise<Gradients>;
}

function resolveBlockSizes(bs: BlockSizes, backend: Backend, qSeqLen: number, kvSeqLen: number): ResolvedBlockSizes {
  const blockQ = bs.blockQ ?? backend.defaultBlockSize(qSeqLen);
  const blockKv = bs.blockKv ?? backend.defaultBlockSize(kvSeqLen);
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
    const bs = resolveBlockSizes(o.blockSizes, this.impl, qSeqLen, kvSeqLen);
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

  private shapeResult(r: ForwardWithResiduals): Tensor | ForwardWithResiduals {
    return this.saveResiduals ? r : r.out;
  }

  forwardSync(q: Tensor | DeviceTensor, k: Tensor | DeviceTensor, v: Tensor | DeviceTensor, segmentIds?: SegmentIds,
    opts?: CallOptions): Tensor | ForwardWithResiduals {
    checkCallOptions(opts, 'opts', false);
    const { shape, args } = this.prepare(q, k, v, segmentIds);
    return this.shapeResult(this.impl.forwardSync(this.cfg, shape, args));
  }

  async forward(q: Tensor | DeviceTensor, k: Tensor | DeviceTensor, v: Tensor | DeviceTensor, segmentIds?: SegmentIds,
    opts?: CallOptions): Promise<Tensor | ForwardWithResiduals> {
    const { signal } = checkCallOptions(opts, 'opts', true);
    const { shape, args } = this.prepare(q, k, v, segmentIds);
    return this.shapeResult(await runInFlight(signal, () => this.impl.forward(this.cfg, shape, args, { signal })));
  }

  private prepareBackward(a: BackwardInputs): { shape: CallShape; args: ForwardArgs & ForwardWithResiduals & { dout: Tensor } } {
    if (a === null || typeof a !== 'object') {
      throw new TypeError(`backward: expected an object { q, k, v, segmentIds?, out, logsumexp, dout }, got ${describeValue(a)}`);
    }
    const { shape, args } = this.prepare(a.q, a.k, a.v, a.segmentIds);
    const extras = checkBackwardExtras(shape, a.out, a.logsumexp, a.dout);
    rejectDeviceTensors(this.backend, { out: a.out, logsumexp: a.logsumexp, dout: a.dout });
    return { shape, args: { ...args, ...extras } };
  }

  backwardSync(a: BackwardInputs): Gradients {
    const { shape, args } = this.prepareBackward(a);
    checkCallOptions(a.signal === undefined ? undefined : { signal: a.signal }, 'backward', false);
    return this.impl.backwardSync(this.cfg, shape, args);
  }

  async backward(a: BackwardInputs): Promise<Gradients> {
    const { shape, args } = this.prepareBackward(a);
    const { signal } = checkCallOptions(a.signal === undefined ? undefined : { signal: a.signal }, 'backward', true);
    return runInFlight(signal, () => this.impl.backward(this.cfg, shape, args, { signal }));
  }

  /** Forward with residuals, and a backward closure over the same inputs. */
  async vjp(q: Tensor, k: Tensor, v: Tensor, segmentIds?: SegmentIds, opts?: CallOptions): Promise<VjpResult> {
    const { signal } = checkCallOptions(opts, 'opts', true);
    const { shape, args } = this.prepare(q, k, v, segmentIds);
    const { out, logsumexp } = await runInFlight(signal, () => this.impl.forward(this.cfg, shape, args, { signal }));
    return {
      out,
      logsumexp,
      backward: (dout: Tensor, backwardOpts?: CallOptions) => {
        const own = backwardOpts === undefined ? signal : checkCallOptions(backwardOpts, 'opts', true).signal;
        return this.backward({ q, k, v, segmentIds, out, logsumexp, dout, signal: own });
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
