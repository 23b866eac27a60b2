// The 'cpu' backend: the native CPU kernels (native/cpu) through the addon's forward / backward
// entry points (native/addon/cpu_binding.cc). This file only marshals: tensors become
// { data, dtype, strides } views, each MaskInfo becomes a schedule handle once (the addon copies and
// checks it), and every output array is allocated here so the caller owns it. The addon re-checks all
// sizes against the real buffers; async calls run on its dispatcher and can be cancelled.

import type { MaskInfo } from '../mask-info';
import { tensor, type DType, type Tensor } from '../tensor';
import { QKVLayout, forwardResultShapes, type CallShape } from '../validate';
import type { Backend, BackwardArgs, BackwardResult, ForwardArgs, ForwardResult, KernelConfig } from './backend';
import { cancellable } from './cancel';
import { DTYPE_CODE, toSeqMinor } from './marshal';
import {
  nativeAddonFor, type CpuCallReport, type CpuKernelCall, type CpuTensorView, type HostScheduleHandle,
} from './native';

let lastReport: CpuCallReport | null = null;

/** The kernel table of the latest finished cpu call (diagnostics and tests; null before the first). */
export function lastCpuKernelIsa(): string | null {
  return lastReport === null ? null : lastReport.isa;
}

/** What the addon reported for the latest finished cpu call (diagnostics and tests; null before the first). */
export function lastCpuCallReport(): CpuCallReport | null {
  return lastReport;
}

function record(report: CpuCallReport): void {
  lastReport = report;
}

/** Schedule handles per MaskInfo, made once and freed with it. */
const schedules = new WeakMap<MaskInfo, HostScheduleHandle>();

function schedule(info: MaskInfo): HostScheduleHandle {
  let h = schedules.get(info);
  if (h === undefined) {
    h = nativeAddonFor('cpu').prepareSchedule(info);
    schedules.set(info, h);
  }
  return h;
}

/**
 * A fresh output array; a size that cannot be allocated is a RangeError naming the output and its bytes.
 * The kernels write every element of every output (rows nothing reaches get zeros), so the memory is
 * taken without zero-filling: a typed array's constructor would clear it first, a pass over the whole
 * result that showed as 5 % of a small call's time.
 */
function newData(dtype: DType, n: number, name: string): Float32Array | Uint16Array {
  const bytesPer = dtype === 'float32' ? 4 : 2;
  try {
    const { buffer } = Buffer.allocUnsafeSlow(n * bytesPer); // its own ArrayBuffer, never a shared pool
    return dtype === 'float32' ? new Float32Array(buffer, 0, n) : new Uint16Array(buffer, 0, n);
  } catch (e) {
    throw new RangeError(`${name}: cannot allocate ${n * bytesPer} bytes for the result (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** A row-major [batch, heads, seq, dim] tensor (heads = 1 for MQA's k / v), optionally handed to the
 *  kernel in the SEQ_MINOR layout. */
function view(t: Tensor, batch: number, heads: number, seq: number, dim: number,
  layout: QKVLayout = QKVLayout.HEAD_DIM_MINOR): CpuTensorView {
  const slab = seq * dim;
  if (layout === QKVLayout.SEQ_MINOR) {
    const data = toSeqMinor(t.data, batch * heads, seq, dim);
    return { data, dtype: DTYPE_CODE[t.dtype], strides: [heads * slab, slab, 1, seq] };
  }
  return { data: t.data, dtype: DTYPE_CODE[t.dtype], strides: [heads * slab, slab, dim, 1] };
}

/** A contiguous row-major [batch, heads, seq, dim] array (outputs, out/dout/logsumexp residuals). */
function rowMajorView(data: Float32Array | Uint16Array, dtype: DType, heads: number, seq: number,
  dim: number): CpuTensorView {
  return { data, dtype: DTYPE_CODE[dtype], strides: [heads * seq * dim, seq * dim, dim, 1] };
}

/** What differs between a forward and a backward call; null where a pass has none. */
type CallParts = Pick<CpuKernelCall, 'q' | 'k' | 'v' | 'out' | 'lse' | 'dout' | 'dq' | 'dk' | 'dv' | 'saveLse' | 'sinks' |
  'fwdSchedule' | 'dqSchedule' | 'dkvSchedule'>;

/**
 * The addon call: one object literal with every field, so that every call has the same hidden class.
 * Spreading the sizes and options into it made V8 build a new hidden class for each call, which cost
 * more than a small call's kernel (garbage, and slow property reads in the addon). Assigning the fields
 * onto a sizes object instead (Object.assign) turns it into a dictionary, which is slower still.
 */
function kernelCall(cfg: KernelConfig, shape: CallShape, args: ForwardArgs, parts: CallParts): CpuKernelCall {
  const bs = cfg.blockSizes;
  return {
    batch: shape.batch,
    heads: shape.heads,
    kvHeads: shape.kvHeads,
    qSeq: shape.qSeqLen,
    kvSeq: shape.kvSeqLen,
    headDim: shape.headDim,
    headDimV: shape.headDimV,
    q: parts.q,
    k: parts.k,
    v: parts.v,
    out: parts.out,
    lse: parts.lse,
    dout: parts.dout,
    dq: parts.dq,
    dk: parts.dk,
    dv: parts.dv,
    segmentIdsQ: args.segQ,
    segmentIdsKv: args.segKv,
    maskValue: cfg.maskValue,
    softCap: cfg.attnLogitsSoftCap ?? 0,
    scale: cfg.scale,
    sinks: parts.sinks,
    saveLse: parts.saveLse,
    blockKvCompute: bs.blockKvCompute,
    blockKvDkvCompute: bs.blockKvDkvCompute,
    fusedBwd: bs.useFusedBwdKernel,
    fwdSchedule: parts.fwdSchedule,
    dqSchedule: parts.dqSchedule,
    dkvSchedule: parts.dkvSchedule,
    numThreads: 0,
    headShards: cfg.headShards,
    cancel: null,
  };
}

interface ForwardCall {
  call: CpuKernelCall;
  result: () => ForwardResult;
}

function forwardCall(cfg: KernelConfig, shape: CallShape, args: ForwardArgs): ForwardCall {
  const { batch, heads, kvHeads, qSeqLen: sq, kvSeqLen: skv, headDim: d, headDimV: dv } = shape;
  const bs = cfg.blockSizes;
  const outData = newData(args.q.dtype, batch * heads * sq * dv, 'out');
  const lseData = newData('float32', batch * heads * sq, 'logsumexp') as Float32Array;
  const call = kernelCall(cfg, shape, args, {
    q: view(args.q, batch, heads, sq, d, bs.qLayout),
    k: view(args.k, batch, kvHeads, skv, d, bs.kLayout),
    v: view(args.v, batch, kvHeads, skv, dv, bs.vLayout),
    out: rowMajorView(outData, args.q.dtype, heads, sq, dv),
    lse: rowMajorView(lseData, 'float32', heads, sq, 1),
    dout: null,
    dq: null,
    dk: null,
    dv: null,
    saveLse: true,
    sinks: args.sinks,
    fwdSchedule: schedule(cfg.fwdMaskInfo),
    dqSchedule: null,
    dkvSchedule: null,
  });
  const shapes = forwardResultShapes(shape);
  return {
    call,
    result: () => ({
      out: tensor(outData, shapes.out, args.q.dtype),
      logsumexp: tensor(lseData, shapes.logsumexp, 'float32'),
    }),
  };
}

interface BackwardCall {
  call: CpuKernelCall;
  result: () => BackwardResult;
}

function backwardCall(cfg: KernelConfig, shape: CallShape, args: BackwardArgs): BackwardCall {
  const { batch, heads, kvHeads, qSeqLen: sq, kvSeqLen: skv, headDim: d, headDimV: dv } = shape;
  const bs = cfg.blockSizes;
  const dqData = newData(args.q.dtype, args.q.data.length, 'dq');
  const dkData = newData(args.k.dtype, args.k.data.length, 'dk');
  const dvData = newData(args.v.dtype, args.v.data.length, 'dv');
  const call = kernelCall(cfg, shape, args, {
    q: view(args.q, batch, heads, sq, d, bs.qLayout),
    k: view(args.k, batch, kvHeads, skv, d, bs.kLayout),
    v: view(args.v, batch, kvHeads, skv, dv, bs.vLayout),
    out: view(args.out, batch, heads, sq, dv),
    lse: rowMajorView(args.logsumexp.data as Float32Array, 'float32', heads, sq, 1),
    dout: view(args.dout, batch, heads, sq, dv),
    dq: rowMajorView(dqData, args.q.dtype, heads, sq, d),
    dk: rowMajorView(dkData, args.k.dtype, kvHeads, skv, d),
    dv: rowMajorView(dvData, args.v.dtype, kvHeads, skv, dv),
    saveLse: false,
    sinks: null,
    fwdSchedule: null,
    dqSchedule: cfg.dqMaskInfo === null ? null : schedule(cfg.dqMaskInfo),
    dkvSchedule: schedule(cfg.dkvMaskInfo),
  });
  return {
    call,
    result: () => ({
      dq: tensor(dqData, args.q.shape, args.q.dtype),
      dk: tensor(dkData, args.k.shape, args.k.dtype),
      dv: tensor(dvData, args.v.shape, args.v.dtype),
    }),
  };
}

export const cpuBackend: Backend = {
  name: 'cpu',
  sinks: 'forward',
  defaultBlockSize: () => 128,
  forwardSync(cfg, shape, args) {
    const f = forwardCall(cfg, shape, args);
    record(nativeAddonFor('cpu').forwardSync(f.call));
    return f.result();
  },
  async forward(cfg, shape, args, control) {
    const f = forwardCall(cfg, shape, args);
    const addon = nativeAddonFor('cpu');
    record(await cancellable(addon, control, f.call, (c) => addon.forward(c)));
    return f.result();
  },
  backwardSync(cfg, shape, args) {
    const b = backwardCall(cfg, shape, args);
    record(nativeAddonFor('cpu').backwardSync(b.call));
    return b.result();
  },
  async backward(cfg, shape, args, control) {
    const b = backwardCall(cfg, shape, args);
    const addon = nativeAddonFor('cpu');
    record(await cancellable(addon, control, b.call, (c) => addon.backward(c)));
    return b.result();
  },
};
