// The contract every backend implements: the same plan in, the same tensors out.

import type { Mask, MultiHeadMask } from '../mask';
import type { MaskInfo } from '../mask-info';
import type { Tensor } from '../tensor';
import type { CallShape, ResolvedBlockSizes } from '../validate';

/** Everything fixed when a kernel object is made. */
export interface KernelConfig {
  mask: Mask | MultiHeadMask;
  isMqa: boolean;
  blockSizes: ResolvedBlockSizes;
  maskValue: number;
  attnLogitsSoftCap: number | null;
  /** logits = scale · q·kᵀ before the soft cap. */
  scale: number;
  headShards: number;
  qSeqShards: number;
  fwdMaskInfo: MaskInfo;
  /** null when the fused backward is used. */
  dqMaskInfo: MaskInfo | null;
  dkvMaskInfo: MaskInfo;
}

export interface ForwardArgs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  /** Batch-major segment ids, length batch*qSeqLen / batch*kvSeqLen; null when not given. */
  segQ: Int32Array | null;
  segKv: Int32Array | null;
  /** [heads] sink logits, for backends that take them (Backend.sinks); null otherwise. */
  sinks: Float32Array | null;
}

export interface ForwardResult {
  /** [.., H, Sq, Dv] in q's dtype. */
  out: Tensor;
  /** [.., H, Sq] float32. */
  logsumexp: Tensor;
}

export interface BackwardArgs extends ForwardArgs {
  out: Tensor;
  logsumexp: Tensor;
  dout: Tensor;
}

export interface BackwardResult {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
  /** [heads] float32, when the call had sinks. */
  dsinks?: Tensor;
}

/** Per-call controls of an async call. */
export interface CallControl {
  /** Stops the call: a queued one never starts, a running one stops between blocks (native: between block
   *  rows, or before its kernels launch on a GPU; js: at its next compute tile). The kernel object turns the stop
   *  into an AbortError. */
  signal?: AbortSignal;
}

export interface Backend {
  readonly name: 'cuda' | 'rocm' | 'cpu' | 'js' | 'reference';
  /** Where the backend takes attention sinks itself: in its forward (args.sinks), or in its backward too
   *  (returning dsinks). The kernel object does the rest (lib/merge.ts): it merges sinks into a forward's
   *  result as a key-less part, and computes dsinks from the residuals. */
  readonly sinks?: 'forward' | 'forward+backward';
  /** Block size used for a field the user left unset. */
  defaultBlockSize(seqLen: number): number;
  forwardSync(cfg: KernelConfig, shape: CallShape, args: ForwardArgs): ForwardResult;
  backwardSync(cfg: KernelConfig, shape: CallShape, args: BackwardArgs): BackwardResult;
  /** Variants that leave the event loop free: native work on the addon's dispatcher, JS work on worker
   *  threads or in slices (the reference backend alone computes in one go). */
  forward(cfg: KernelConfig, shape: CallShape, args: ForwardArgs, control?: CallControl): Promise<ForwardResult>;
  backward(cfg: KernelConfig, shape: CallShape, args: BackwardArgs, control?: CallControl): Promise<BackwardResult>;
}
