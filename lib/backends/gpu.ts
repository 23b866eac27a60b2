// The 'cuda' and 'rocm' backends: the GPU kernels (native/gpu) through the addon's gpu* entry points
// (native/addon/gpu.cc). Which one exists depends on the addon variant that loaded (splash.node with
// CUDA, or splash_hip.node); both run the same code. This file marshals the call: schedules are
// uploaded once per MaskInfo and device and cached, host tensors are copied in and out by the addon
// within the call, and DeviceTensor inputs make the outputs DeviceTensors. The backward runs split (dq
// and dk/dv passes over the dq and dkv schedules, bitwise reproducible) or fused (cfg.dqMaskInfo null:
// one pass over the dkv schedule, dq summed with atomics). The kernels take the logit scale and the
// sinks themselves (forward and backward, dsinks reduced on the device), so both work on DeviceTensors.

import type { MaskInfo } from '../mask-info';
import { tensor, type DType, type Tensor } from '../tensor';
import type {
  Backend,
  BackwardArgs,
  BackwardResult,
  CallControl,
  CallShape,
  ForwardArgs,
  ForwardResult,
  KernelConfig,
} from './backend';
import { cancellable, type CancelToken } from './cancel';
import { deviceHandle, isDeviceTensor, wrapDeviceBuffer, type DeviceTensor } from './device';
import { loadNative } from './native';

/** The GPU backends: 'cuda' (NVIDIA) or 'rocm' (AMD, through HIP). */
export type GpuBackendName = 'cuda' | 'rocm';

/** An addon device buffer (an External with a type tag). Opaque to JS. */
export interface DeviceHandle {
  readonly __brand: 'splash-device-buffer';
}
/** An uploaded schedule (an External with a type tag). Opaque to JS. */
export interface ScheduleHandle {
  readonly __brand: 'splash-schedule';
}

/** The fields forward and backward calls share (native/addon/gpu.cc reads them in one place). */
export interface GpuCallCommon {
  device: number;
  dtype: 0 | 1 | 2;
  batch: number;
  heads: number;
  kvHeads: number;
  qSeq: number;
  kvSeq: number;
  headDim: number;
  headDimV: number;
  q: Float32Array | Uint16Array | DeviceHandle;
  k: Float32Array | Uint16Array | DeviceHandle;
  v: Float32Array | Uint16Array | DeviceHandle;
  segmentIdsQ: Int32Array | null;
  segmentIdsKv: Int32Array | null;
  maskValue: number;
  softCap: number;
  /** logits = scale · q·kᵀ before the soft cap (the addon reads a missing one as 1). */
  scale: number;
  /** [heads] sink logits (host memory), or null. In a backward call they ask for dsinks. */
  sinks: Float32Array | null;
  outputOnDevice: boolean;
  force?: 'auto' | 'simt' | 'mma';
  timeKernel?: boolean;
  /** Async calls: the token that cancels the call until its kernels launch. */
  cancel?: CancelToken;
}

export interface GpuForwardCall extends GpuCallCommon {
  schedule: ScheduleHandle;
  saveLse: boolean;
}

export interface GpuForwardResult {
  out: Float32Array | Uint16Array | DeviceHandle;
  lse: Float32Array | DeviceHandle | null;
  path: 'simt' | 'mma';
  tileM: number;
  tileN: number;
  ctas: number;
  kernelMs: number;
}

export interface GpuBackwardCall extends GpuCallCommon {
  out: Float32Array | Uint16Array | DeviceHandle;
  logsumexp: Float32Array | DeviceHandle;
  dout: Float32Array | Uint16Array | DeviceHandle;
  /** null for the fused backward. */
  dqSchedule: ScheduleHandle | null;
  dkvSchedule: ScheduleHandle;
  fused: boolean;
}

export interface GpuBackwardResult {
  dq: Float32Array | Uint16Array | DeviceHandle;
  dk: Float32Array | Uint16Array | DeviceHandle;
  dv: Float32Array | Uint16Array | DeviceHandle;
  /** [heads] float32 d loss / d sinks when the call had sinks, else null. */
  dsinks: Float32Array | DeviceHandle | null;
  /** Kernels of the dq, dk/dv and fused steps. */
  path: 'simt' | 'mma';
  kernelMs: number;
}

export interface GpuPlan {
  error: string | null;
  rangeError: boolean;
  path: 'simt' | 'mma' | 'none';
  bucket: number;
  tileM: number;
  tileN: number;
  threads: number;
  smemBytes: number;
  tilesPerQblock: number;
  segmentSkip: boolean;
}

/** The addon's GPU exports (native/addon/gpu.cc). */
export interface GpuAddon {
  gpuBackendName(): 'cuda' | 'rocm' | 'none';
  gpuToDevice(data: Float32Array | Uint16Array, device: number): DeviceHandle;
  gpuToHost(handle: DeviceHandle, out: Float32Array | Uint16Array): Promise<void>;
  gpuToHostSync(handle: DeviceHandle, out: Float32Array | Uint16Array): void;
  gpuDispose(handle: DeviceHandle): void;
  gpuBufferInfo(handle: DeviceHandle): { device: number; bytes: number; disposed: boolean };
  gpuUploadSchedule(device: number, info: MaskInfo): ScheduleHandle;
  gpuForward(call: GpuForwardCall): Promise<GpuForwardResult>;
  gpuForwardSync(call: GpuForwardCall): GpuForwardResult;
  gpuBackward?(call: GpuBackwardCall): Promise<GpuBackwardResult>;
  gpuBackwardSync?(call: GpuBackwardCall): GpuBackwardResult;
  gpuPlanForward(args: {
    dtype: 0 | 1 | 2; headDim: number; headDimV: number; batch: number; heads: number; kvHeads: number;
    qSeq: number; kvSeq: number; blockQ: number; blockKv: number; segments: boolean; maskValue: number;
    force?: 'auto' | 'simt' | 'mma';
    device: { hip: boolean; ccMajor: number; ccMinor: number; maxSmem: number; multiprocessors: number };
  }): GpuPlan;
  gpuWorkOrder(rowPtr: Int32Array, numSchedules: number, rowsPerSchedule: number, blockQ: number, qSeq: number,
    tileM: number, tilesPerQblock: number): Int32Array;
  gpuPackMaskBits(blocks: Uint8Array, blockQ: number, blockKv: number): Uint32Array;
  gpuCheckSchedule(info: MaskInfo): string;
  gpuSegmentRanges(segmentIds: Int32Array, batch: number, seq: number, block: number): Int32Array;
}

/** The loaded addon's GPU exports, whatever runtime it was built for (planning helpers work in every
 *  build); null when no addon with them loaded. */
export function gpuExports(): GpuAddon | null {
  const ld = loadNative();
  const a = ld.addon as unknown as Partial<GpuAddon> | null;
  if (a === null || typeof a.gpuForwardSync !== 'function' || typeof a.gpuBackendName !== 'function') return null;
  return a as GpuAddon;
}

/** The GPU backend compiled into the loaded addon, or null. */
export function gpuBackendOf(): GpuBackendName | null {
  const a = gpuExports();
  const name = a?.gpuBackendName();
  return name === 'cuda' || name === 'rocm' ? name : null;
}

/** The addon for `name`; Error saying why when it has no such GPU backend. */
export function gpuAddon(name: GpuBackendName): GpuAddon {
  const a = gpuExports();
  if (a === null) {
    const ld = loadNative();
    throw new Error(`backend '${name}' is not available: ` +
      (ld.addon === null ? `native addon not loaded: ${ld.error}` : `the addon at ${ld.path} has no GPU entry points (rebuild it)`));
  }
  const built = a.gpuBackendName();
  if (built !== name) {
    throw new Error(`backend '${name}' is not available: the loaded addon was built for ${built === 'none' ? 'no GPU' : `'${built}'`}`);
  }
  return a;
}

/** Head dims the GPU kernels take (plan.h: supported_head_dim). */
export const GPU_HEAD_DIMS: readonly number[] = [32, 64, 96, 128, 192, 256];

/** Default block size on the GPU: one 128-row q-block per CTA (64-row CTAs for head dims above 128
 *  take it in two) and 128-key kv-blocks streamed as 64- or 128-key tiles; see native/gpu/README.md. */
export const GPU_DEFAULT_BLOCK = 128;

const DTYPE_CODE: Record<DType, 0 | 1 | 2> = { float32: 0, bfloat16: 1, float16: 2 };

type Operand = Tensor | DeviceTensor;

/** The sizes every GPU addon call carries. */
function callSizes(shape: CallShape, device: number) {
  return {
    device,
    dtype: DTYPE_CODE[shape.dtype],
    batch: shape.batch,
    heads: shape.heads,
    kvHeads: shape.kvHeads,
    qSeq: shape.qSeqLen,
    kvSeq: shape.kvSeqLen,
    headDim: shape.headDim,
    headDimV: shape.headDimV,
  };
}

/** What the addon reads for one operand: the host array, or the device buffer's handle. */
function operandData(name: string, t: Operand): Float32Array | Uint16Array | DeviceHandle {
  return isDeviceTensor(t) ? deviceHandle(t, name) : t.data;
}

class GpuBackend implements Backend {
  /** The kernels take sinks in the forward and reduce dsinks in the backward (on the device). */
  readonly sinks = 'forward+backward' as const;
  /** Uploaded schedules per MaskInfo and device; freed with the MaskInfo (the handle's finalizer). */
  private readonly schedules = new WeakMap<MaskInfo, Map<number, ScheduleHandle>>();

  constructor(readonly name: GpuBackendName) {}

  defaultBlockSize(_seqLen: number): number {
    return GPU_DEFAULT_BLOCK;
  }

  private schedule(addon: GpuAddon, info: MaskInfo, device: number): ScheduleHandle {
    let perDevice = this.schedules.get(info);
    if (perDevice === undefined) {
      perDevice = new Map();
      this.schedules.set(info, perDevice);
    }
    let h = perDevice.get(device);
    if (h === undefined) {
      h = addon.gpuUploadSchedule(device, info);
      perDevice.set(device, h);
    }
    return h;
  }

  /** Checks the GPU's head dims and that every DeviceTensor operand lives on this backend and one device;
   *  returns that device, or null when every operand is on the host. */
  private checkOperands(shape: CallShape, operands: [string, Operand][]): number | null {
    if (!GPU_HEAD_DIMS.includes(shape.headDim)) {
      throw new RangeError(`q.shape: expected a head dim of ${GPU_HEAD_DIMS.join(', ')} on the '${this.name}' backend, got ${shape.headDim}`);
    }
    if (!GPU_HEAD_DIMS.includes(shape.headDimV)) {
      throw new RangeError(`v.shape: expected a head dim of ${GPU_HEAD_DIMS.join(', ')} on the '${this.name}' backend, got ${shape.headDimV}`);
    }
    let device: number | null = null;
    let deviceFrom = '';
    for (const [name, t] of operands) {
      if (!isDeviceTensor(t)) continue;
      if (t.backend !== this.name) {
        throw new TypeError(`${name}: expected a tensor on the '${this.name}' backend, got a DeviceTensor of '${t.backend}'`);
      }
      if (device === null) {
        device = t.device;
        deviceFrom = name;
      } else if (t.device !== device) {
        throw new RangeError(`${name}.device: expected ${device} (${deviceFrom}'s), got ${t.device}`);
      }
    }
    return device;
  }

  /** The addon call for a forward, and how to shape its result. */
  private prepare(cfg: KernelConfig, shape: CallShape, args: ForwardArgs): { addon: GpuAddon; call: GpuForwardCall } {
    const addon = gpuAddon(this.name);
    const operands: [string, Operand][] = [['q', args.q], ['k', args.k], ['v', args.v]];
    const device = this.checkOperands(shape, operands);
    const onDevice = device !== null;
    const dev = device ?? 0;
    const call: GpuForwardCall = {
      ...callSizes(shape, dev),
      q: operandData('q', args.q),
      k: operandData('k', args.k),
      v: operandData('v', args.v),
      schedule: this.schedule(addon, cfg.fwdMaskInfo, dev),
      segmentIdsQ: args.segQ,
      segmentIdsKv: args.segKv,
      maskValue: cfg.maskValue,
      softCap: cfg.attnLogitsSoftCap ?? 0,
      scale: cfg.scale,
      sinks: args.sinks ?? null,
      saveLse: true,
      outputOnDevice: onDevice,
    };
    return { addon, call };
  }

  private result(addon: GpuAddon, shape: CallShape, call: GpuForwardCall, r: GpuForwardResult): ForwardResult {
    const rows = shape.hasBatch ? [shape.batch, shape.heads, shape.qSeqLen] : [shape.heads, shape.qSeqLen];
    const outShape = [...rows, shape.headDimV];
    if (call.outputOnDevice) {
      // DeviceTensors stand where the Backend interface says Tensor (API.md: DeviceTensors in, DeviceTensors out).
      const out = wrapDeviceBuffer(addon, this.name, r.out as DeviceHandle, outShape, shape.dtype, call.device);
      const lse = wrapDeviceBuffer(addon, this.name, r.lse as DeviceHandle, rows, 'float32', call.device);
      return { out: out as unknown as Tensor, logsumexp: lse as unknown as Tensor };
    }
    return {
      out: tensor(r.out as Float32Array | Uint16Array, outShape, shape.dtype),
      logsumexp: tensor(r.lse as Float32Array, rows, 'float32'),
    };
  }

  forwardSync(cfg: KernelConfig, shape: CallShape, args: ForwardArgs): ForwardResult {
    const { addon, call } = this.prepare(cfg, shape, args);
    return this.result(addon, shape, call, addon.gpuForwardSync(call));
  }

  async forward(cfg: KernelConfig, shape: CallShape, args: ForwardArgs, control?: CallControl): Promise<ForwardResult> {
    const { addon, call } = this.prepare(cfg, shape, args);
    return this.result(addon, shape, call, await cancellable(control, call, (c) => addon.gpuForward(c)));
  }

  /** The addon call for a backward, and how to shape its result. */
  private prepareBackward(cfg: KernelConfig, shape: CallShape, args: BackwardArgs): {
    addon: GpuAddon; call: GpuBackwardCall; run: (c: GpuBackwardCall) => GpuBackwardResult;
    runAsync: (c: GpuBackwardCall) => Promise<GpuBackwardResult>;
  } {
    const addon = gpuAddon(this.name);
    const { gpuBackward, gpuBackwardSync } = addon;
    if (typeof gpuBackward !== 'function' || typeof gpuBackwardSync !== 'function') {
      throw new Error(`backend '${this.name}': the loaded addon has no GPU backward (rebuild it)`);
    }
    const operands: [string, Operand][] = [
      ['q', args.q], ['k', args.k], ['v', args.v], ['out', args.out], ['logsumexp', args.logsumexp], ['dout', args.dout],
    ];
    const device = this.checkOperands(shape, operands);
    const dev = device ?? 0;
    const fused = cfg.dqMaskInfo === null;
    const call: GpuBackwardCall = {
      ...callSizes(shape, dev),
      q: operandData('q', args.q),
      k: operandData('k', args.k),
      v: operandData('v', args.v),
      out: operandData('out', args.out),
      logsumexp: operandData('logsumexp', args.logsumexp) as Float32Array | DeviceHandle,
      dout: operandData('dout', args.dout),
      dqSchedule: cfg.dqMaskInfo === null ? null : this.schedule(addon, cfg.dqMaskInfo, dev),
      dkvSchedule: this.schedule(addon, cfg.dkvMaskInfo, dev),
      fused,
      segmentIdsQ: args.segQ,
      segmentIdsKv: args.segKv,
      maskValue: cfg.maskValue,
      softCap: cfg.attnLogitsSoftCap ?? 0,
      scale: cfg.scale,
      sinks: args.sinks ?? null,
      outputOnDevice: device !== null,
    };
    return {
      addon,
      call,
      run: (c) => gpuBackwardSync.call(addon, c),
      runAsync: (c) => gpuBackward.call(addon, c),
    };
  }

  private backwardResult(addon: GpuAddon, shape: CallShape, args: BackwardArgs, call: GpuBackwardCall,
    r: GpuBackwardResult): BackwardResult {
    // dq, dk and dv take their inputs' shapes (MQA's k and v have no head axis).
    const dqShape = [...args.q.shape];
    const dkShape = [...args.k.shape];
    const dvShape = [...args.v.shape];
    // dsinks ([H] float32) where the call had sinks, on the device like the other gradients.
    const sinkShape = [shape.heads];
    if (call.outputOnDevice) {
      const wrap = (h: unknown, s: number[], dtype = shape.dtype): Tensor =>
        wrapDeviceBuffer(addon, this.name, h as DeviceHandle, s, dtype, call.device) as unknown as Tensor;
      const g: BackwardResult = { dq: wrap(r.dq, dqShape), dk: wrap(r.dk, dkShape), dv: wrap(r.dv, dvShape) };
      return r.dsinks === null ? g : { ...g, dsinks: wrap(r.dsinks, sinkShape, 'float32') };
    }
    const host = (a: unknown, s: number[]): Tensor => tensor(a as Float32Array | Uint16Array, s, shape.dtype);
    const g: BackwardResult = { dq: host(r.dq, dqShape), dk: host(r.dk, dkShape), dv: host(r.dv, dvShape) };
    return r.dsinks === null ? g : { ...g, dsinks: tensor(r.dsinks as Float32Array, sinkShape, 'float32') };
  }

  backwardSync(cfg: KernelConfig, shape: CallShape, args: BackwardArgs): BackwardResult {
    const { addon, call, run } = this.prepareBackward(cfg, shape, args);
    return this.backwardResult(addon, shape, args, call, run(call));
  }

  async backward(cfg: KernelConfig, shape: CallShape, args: BackwardArgs, control?: CallControl): Promise<BackwardResult> {
    const { addon, call, runAsync } = this.prepareBackward(cfg, shape, args);
    return this.backwardResult(addon, shape, args, call, await cancellable(control, call, runAsync));
  }
}

export const cudaBackend: Backend = new GpuBackend('cuda');
export const rocmBackend: Backend = new GpuBackend('rocm');
