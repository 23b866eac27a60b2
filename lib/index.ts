// Public exports of splash-attention (see API.md).

/**
 * Block-sparse flash attention (splash attention) for Node.js: masks, their block maps, the kernels on
 * the cuda, rocm, cpu, js and reference backends, and the tensors they take. Everything here is a named
 * export of the package root, `splash-attention`.
 *
 * @module splash-attention
 */

export { tensor, fromFloat32, toFloat32 } from './tensor';
export type { DType, Tensor } from './tensor';
export {
  Mask,
  FullMask,
  CausalMask,
  LocalMask,
  ChunkedCausalMask,
  DenseMask,
  LogicalOr,
  LogicalAnd,
  MultiHeadMask,
  makeRandomMask,
} from './mask';
export { processMask } from './mask-info';
export type { MaskInfo, MaskInfoStats, ProcessMaskOptions } from './mask-info';
export { renderMaskInfo } from './render-mask';
export type { RenderMaskOptions, TokenWindow } from './render-mask';
export { QKVLayout } from './validate';
export type { BlockSizes, CallOptions, SplashOptions, SegmentIds } from './validate';
export { makeSplashMHA, makeSplashMQA, SplashAttentionKernel } from './kernel';
export type { BackwardInputs, ForwardWithResiduals, Gradients, VjpResult } from './kernel';
export { backends } from './backends/registry';
export type { BackendStatus, DeviceInfo } from './backends/registry';
export { toDevice, DeviceTensor } from './backends/device';
export { mergeAttention } from './merge';
export type { AttentionPart } from './merge';
export { setConcurrency } from './call-queue';
export type { ConcurrencyOptions } from './call-queue';
