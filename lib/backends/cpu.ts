// The 'cpu' backend: the native CPU kernels (native/cpu) through the addon's forward / backward
// entry points (native/addon/cpu_binding.cc). This file only marshals: tensors become
// { data, dtype, strides } views, each MaskInfo becomes a schedule handle once (the addon copies and
// checks it), and every output array is allocated here so the caller owns it. The addon re-checks all
// sizes against the real buffers; async calls run on its dispatcher and can be cancelled.

import type { MaskInfo } from '../mask-info';
import { tensor, type DType, type Tensor } from '../tensor';
import { QKVLayout, forwardResultShapes, type CallShape } from '../validate';
import type { Backend, BackwardArgs, BackwardResult, ForwardArgs, ForwardResult, KernelConfig } from './backend';
import { cancellable, type CancelToken } from './cancel';
import { loadNative } from './native';

/** A tensor as the addon reads it: element strides over [batch, head, seq, dim]. */
interface NativeTensor {
  data: Float32Array | Uint16Array;
  dtype: 0 | 1 | 2;
  strides: [number, number, number, number];
}

interface NativeCall {
  batch: number;
  heads: number;
  kvHeads: number;
  qSeq: number;
  kvSeq: number;
  headDim: number;
  headDimV: number;
  q: NativeTensor;
  k: NativeTensor;
  v: NativeTensor;
  out: NativeTensor;
  lse: NativeTensor;
  dout?: NativeTensor;
  dq?: NativeTensor;
  dk?: NativeTensor;
  dv?: NativeTensor;
  segmentIdsQ: Int32Array | null;
  segmentIdsKv: Int32Array | null;
  maskValue: number;
  softCap: number;
  /** logits = scale · q·kᵀ before the soft cap. */
  scale: number;
  /** Forward only: [heads] sink logits. */
  sinks?: Float32Array | null;
  saveLse: boolean;
  blockKvCompute: number;
  blockKvDkvCompute: number;
  fusedBwd: boolean;
  fwdSchedule?: ScheduleHandle;
  /** Split backward only; null for the fused one. */
  dqSchedule?: ScheduleHandle | null;
  dkvSchedule?: ScheduleHandle;
  numThreads: number;
  headShards: number;
  /** Async calls: the token that cancels the call. */
  cancel?: CancelToken;
}

/** What a finished call reports: the kernel table that ran ('avx512_bf16', 'avx512', 'avx2', 'generic'). */
export interface CpuCallReport {
  isa: string;
}

let lastIsa: string | null = null;

/** The kernel table of the latest finished cpu call (diagnostics and tests; null before the first). */
export function lastCpuKernelIsa(): string | null {
  return lastIsa;
}

function record(report: CpuCallReport): void {
  lastIsa = report.isa;
}

/** A MaskInfo's schedule as the addon holds it (prepareSchedule). Opaque to JS. */
export interface ScheduleHandle {
  readonly __brand: 'splash-host-schedule';
}

/** The addon's CPU kernel exports (cpu_binding.cc, host_schedule.cc, jobs.cc). The kernel calls resolve
 *  once the outputs in the call are written. */
export interface CpuKernelAddon {
  forward(call: unknown): Promise<CpuCallReport>;
  forwardSync(call: unknown): CpuCallReport;
  backward(call: unknown): Promise<CpuCallReport>;
  backwardSync(call: unknown): CpuCallReport;
  prepareSchedule(info: MaskInfo): ScheduleHandle;
}

function kernels(): CpuKernelAddon {
  const ld = loadNative();
  if (ld.addon === null) throw new Error(`backend 'cpu' is not available: native addon not loaded: ${ld.error}`);
  const a = ld.addon as unknown as Partial<CpuKernelAddon>;
  if (typeof a.forwardSync !== 'function' || typeof a.backwardSync !== 'function' ||
      typeof a.prepareSchedule !== 'function') {
    throw new Error(`backend 'cpu' is not available: the addon at ${ld.path} has no CPU attention kernels ` +
      '(a stale build: rebuild it)');
  }
  return a as CpuKernelAddon;
}

/** Schedule handles per MaskInfo, made once and freed with it. */
const schedules = new WeakMap<MaskInfo, ScheduleHandle>();

function schedule(info: MaskInfo): ScheduleHandle {
  let h = schedules.get(info);
  if (h === undefined) {
    h = kernels().prepareSchedule(info);
    schedules.set(info, h);
  }
  return h;
}

const DTYPE_CODE: Record<DType, 0 | 1 | 2> = { float32: 0, bfloat16: 1, float16: 2 };

/** A fresh output array; a size that cannot be allocated is a RangeError naming the output and its bytes. */
function newData(dtype: DType, n: number, name: string): Float32Array | Uint16Array {
  try {
    return dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
  } catch (e) {
    const bytes = n * (dtype === 'float32' ? 4 : 2);
    throw new RangeError(`${name}: cannot allocate ${bytes} bytes for the result (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** [slabs, seq, dim] → [slabs, dim, seq] (the SEQ_MINOR physical layout), same array type. */
function toSeqMinor<T extends Float32Array | Uint16Array>(x: T, slabs: number, seq: number, dim: number): T {
  const y = new (x.constructor as { new (n: number): T })(x.length);
  for (let s = 0; s < slabs; s++) {
    const base = s * seq * dim;
    for (let r = 0; r < seq; r++) {
      const src = base + r * dim;
      for (let c = 0; c < dim; c++) y[base + c * seq + r] = x[src + c];
    }
  }
  return y;
}

/** A row-major [batch, heads, seq, dim] tensor (heads = 1 for MQA's k / v), optionally handed to the
 *  kernel in the SEQ_MINOR layout. */
function view(t: Tensor, batch: number, heads: number, seq: number, dim: number,
  layout: QKVLayout = QKVLayout.HEAD_DIM_MINOR): NativeTensor {
  const slab = seq * dim;
  if (layout === QKVLayout.SEQ_MINOR) {
    const data = toSeqMinor(t.data, batch * heads, seq, dim);
    return { data, dtype: DTYPE_CODE[t.dtype], strides: [heads * slab, slab, 1, seq] };
  }
  return { data: t.data, dtype: DTYPE_CODE[t.dtype], strides: [heads * slab, slab, dim, 1] };
}

/** A contiguous row-major [batch, heads, seq, dim] array (outputs, out/dout/logsumexp residuals). */
function rowMajorView(data: Float32Array | Uint16Array, dtype: DType, heads: number, seq: number,
  dim: number): NativeTensor {
  return { data, dtype: DTYPE_CODE[dtype], strides: [heads * seq * dim, seq * dim, dim, 1] };
}

interface ForwardCall {
  call: NativeCall;
  result: () => ForwardResult;
}

function forwardCall(cfg: KernelConfig, shape: CallShape, args: ForwardArgs): ForwardCall {
  const { batch, heads, kvHeads, qSeqLen: sq, kvSeqLen: skv, headDim: d, headDimV: dv } = shape;
  const bs = cfg.blockSizes;
  const outData = newData(args.q.dtype, batch * heads * sq * dv, 'out');
  const lseData = newData('float32', batch * heads * sq, 'logsumexp') as Float32Array;
  const call: NativeCall = {
    ...sizes(shape),
    q: view(args.q, batch, heads, sq, d, bs.qLayout),
    k: view(args.k, batch, kvHeads, skv, d, bs.kLayout),
    v: view(args.v, batch, kvHeads, skv, dv, bs.vLayout),
    out: rowMajorView(outData, args.q.dtype, heads, sq, dv),
    lse: rowMajorView(lseData, 'float32', heads, sq, 1),
    segmentIdsQ: args.segQ,
    segmentIdsKv: args.segKv,
    ...options(cfg),
    saveLse: true,
    sinks: args.sinks ?? null,
    fwdSchedule: schedule(cfg.fwdMaskInfo),
  };
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
  call: NativeCall;
  result: () => BackwardResult;
}

function backwardCall(cfg: KernelConfig, shape: CallShape, args: BackwardArgs): BackwardCall {
  const { batch, heads, kvHeads, qSeqLen: sq, kvSeqLen: skv, headDim: d, headDimV: dv } = shape;
  const bs = cfg.blockSizes;
  const dqData = newData(args.q.dtype, args.q.data.length, 'dq');
  const dkData = newData(args.k.dtype, args.k.data.length, 'dk');
  const dvData = newData(args.v.dtype, args.v.data.length, 'dv');
  const call: NativeCall = {
    ...sizes(shape),
    q: view(args.q, batch, heads, sq, d, bs.qLayout),
    k: view(args.k, batch, kvHeads, skv, d, bs.kLayout),
    v: view(args.v, batch, kvHeads, skv, dv, bs.vLayout),
    out: view(args.out, batch, heads, sq, dv),
    lse: rowMajorView(args.logsumexp.data as Float32Array, 'float32', heads, sq, 1),
    dout: view(args.dout, batch, heads, sq, dv),
    dq: rowMajorView(dqData, args.q.dtype, heads, sq, d),
    dk: rowMajorView(dkData, args.k.dtype, kvHeads, skv, d),
    dv: rowMajorView(dvData, args.v.dtype, kvHeads, skv, dv),
    segmentIdsQ: args.segQ,
    segmentIdsKv: args.segKv,
    ...options(cfg),
    saveLse: false,
    dqSchedule: cfg.dqMaskInfo === null ? null : schedule(cfg.dqMaskInfo),
    dkvSchedule: schedule(cfg.dkvMaskInfo),
  };
  return {
    call,
    result: () => ({
      dq: tensor(dqData, args.q.shape, args.q.dtype),
      dk: tensor(dkData, args.k.shape, args.k.dtype),
      dv: tensor(dvData, args.v.shape, args.v.dtype),
    }),
  };
}

type SizeFields = 'batch' | 'heads' | 'kvHeads' | 'qSeq' | 'kvSeq' | 'headDim' | 'headDimV';

function sizes(shape: CallShape): Pick<NativeCall, SizeFields> {
  return {
    batch: shape.batch,
    heads: shape.heads,
    kvHeads: shape.kvHeads,
    qSeq: shape.qSeqLen,
    kvSeq: shape.kvSeqLen,
    headDim: shape.headDim,
    headDimV: shape.headDimV,
  };
}

function options(cfg: KernelConfig): Pick<NativeCall, 'maskValue' | 'softCap' | 'scale' | 'blockKvCompute' |
  'blockKvDkvCompute' | 'fusedBwd' | 'numThreads' | 'headShards'> {
  return {
    maskValue: cfg.maskValue,
    softCap: cfg.attnLogitsSoftCap ?? 0,
    scale: cfg.scale,
    blockKvCompute: cfg.blockSizes.blockKvCompute,
    blockKvDkvCompute: cfg.blockSizes.blockKvDkvCompute,
    fusedBwd: cfg.blockSizes.useFusedBwdKernel,
    numThreads: 0,
    headShards: cfg.headShards,
  };
}

export const cpuBackend: Backend = {
  name: 'cpu',
  sinks: 'forward',
  defaultBlockSize: () => 128,
  forwardSync(cfg, shape, args) {
    const f = forwardCall(cfg, shape, args);
    record(kernels().forwardSync(f.call));
    return f.result();
  },
  async forward(cfg, shape, args, control) {
    const f = forwardCall(cfg, shape, args);
    const addon = kernels();
    record(await cancellable(control, f.call, (c) => addon.forward(c)));
    return f.result();
  },
  backwardSync(cfg, shape, args) {
    const b = backwardCall(cfg, shape, args);
    record(kernels().backwardSync(b.call));
    return b.result();
  },
  async backward(cfg, shape, args, control) {
    const b = backwardCall(cfg, shape, args);
    const addon = kernels();
    record(await cancellable(control, b.call, (c) => addon.backward(c)));
    return b.result();
  },
};
