// The 'cuda' and 'rocm' backends: the GPU kernels (native/gpu) through the addon's gpu* entry points
// (native/addon/gpu.cc). Which one exists depends on the addon variant that loaded (splash.node with
// CUDA, or splash_hip.node); both run the same code. This file marshals the call: schedules are
// uploaded once per MaskInfo and device and cached, host tensors are copied in and out by the addon
// within the call, and DeviceTensor inputs make the outputs DeviceTensors. The backward runs split (dq
// and dk/dv passes over the dq and dkv schedules, bitwise reproducible) or fused (cfg.dqMaskInfo null:
// one pass over the dkv schedule, dq summed with atomics). The kernels take the logit scale and the
// sinks themselves (forward and backward, dsinks reduced on the device), so both work on DeviceTensors.

import type { MaskInfo } from '../mask-info';
import { tensor, type Tensor } from '../tensor';
import { forwardResultShapes, type CallShape } from '../validate';
import type { Backend, BackwardArgs, BackwardResult, CallControl, ForwardArgs, ForwardResult, KernelConfig } from './backend';
import { cancellable } from './cancel';
import { deviceHandle, isDeviceTensor, wrapDeviceBuffer, type DeviceTensor } from './device';
import { DTYPE_CODE } from './marshal';
import {
  nativeAddonFor, type DeviceHandle, type DeviceScheduleHandle, type GpuBackendName, type GpuBackwardCall,
  type GpuBackwardResult, type GpuExports, type GpuForwardCall, type GpuForwardResult, type NativeAddon,
} from './native';

/** Head dims the GPU kernels take (plan.h: supported_head_dim). */
export const GPU_HEAD_DIMS: readonly number[] = [32, 64, 96, 128, 192, 256];

/** Default block size on the GPU: one 128-row q-block per CTA (64-row CTAs for head dims above 128
 *  take it in two) and 128-key kv-blocks streamed as 64- or 128-key tiles; see native/gpu/README.md. */
export const GPU_DEFAULT_BLOCK = 128;

type Operand = Tensor | DeviceTensor;

/** What the addon reads for one operand: the host array, or the device buffer's handle. */
function operandData(name: string, t: Operand): Float32Array | Uint16Array | DeviceHandle {
  return isDeviceTensor(t) ? deviceHandle(t, name) : t.data;
}

class GpuBackend implements Backend {
  /** The kernels take sinks in the forward and reduce dsinks in the backward (on the device). */
  readonly sinks = 'forward+backward' as const;
  /** Uploaded schedules per MaskInfo and device; freed with the MaskInfo (the handle's finalizer). */
  private readonly schedules = new WeakMap<MaskInfo, Map<number, DeviceScheduleHandle>>();

  constructor(readonly name: GpuBackendName) {}

  defaultBlockSize(_seqLen: number): number {
    return GPU_DEFAULT_BLOCK;
  }

  private schedule(addon: GpuExports, info: MaskInfo, device: number): DeviceScheduleHandle {
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
  private prepare(cfg: KernelConfig, shape: CallShape, args: ForwardArgs): { addon: NativeAddon; call: GpuForwardCall } {
    const addon = nativeAddonFor(this.name);
    const operands: [string, Operand][] = [['q', args.q], ['k', args.k], ['v', args.v]];
    const device = this.checkOperands(shape, operands);
    const onDevice = device !== null;
    const dev = device ?? 0;
    const call: GpuForwardCall = {
      // Written out rather than spread, so that every call has one hidden class (see cpu.ts kernelCall).
      device: dev,
      dtype: DTYPE_CODE[shape.dtype],
      batch: shape.batch,
      heads: shape.heads,
      kvHeads: shape.kvHeads,
      qSeq: shape.qSeqLen,
      kvSeq: shape.kvSeqLen,
      headDim: shape.headDim,
      headDimV: shape.headDimV,
      q: operandData('q', args.q),
      k: operandData('k', args.k),
      v: operandData('v', args.v),
      schedule: this.schedule(addon, cfg.fwdMaskInfo, dev),
      segmentIdsQ: args.segQ,
      segmentIdsKv: args.segKv,
      maskValue: cfg.maskValue,
      softCap: cfg.attnLogitsSoftCap ?? 0,
      scale: cfg.scale,
      sinks: args.sinks,
      saveLse: true,
      outputOnDevice: onDevice,
      cancel: null,
    };
    return { addon, call };
  }

  private result(addon: GpuExports, shape: CallShape, call: GpuForwardCall, r: GpuForwardResult): ForwardResult {
    const shapes = forwardResultShapes(shape);
    if (call.outputOnDevice) {
      // DeviceTensors stand where the Backend interface says Tensor (API.md: DeviceTensors in, DeviceTensors out).
      const out = wrapDeviceBuffer(addon, this.name, r.out as DeviceHandle, shapes.out, shape.dtype, call.device);
      const lse = wrapDeviceBuffer(addon, this.name, r.lse as DeviceHandle, shapes.logsumexp, 'float32', call.device);
      return { out: out as unknown as Tensor, logsumexp: lse as unknown as Tensor };
    }
    return {
      out: tensor(r.out as Float32Array | Uint16Array, shapes.out, shape.dtype),
      logsumexp: tensor(r.lse as Float32Array, shapes.logsumexp, 'float32'),
    };
  }

  forwardSync(cfg: KernelConfig, shape: CallShape, args: ForwardArgs): ForwardResult {
    const { addon, call } = this.prepare(cfg, shape, args);
    return this.result(addon, shape, call, addon.gpuForwardSync(call));
  }

  async forward(cfg: KernelConfig, shape: CallShape, args: ForwardArgs, control?: CallControl): Promise<ForwardResult> {
    const { addon, call } = this.prepare(cfg, shape, args);
    return this.result(addon, shape, call, await cancellable(addon, control, call, (c) => addon.gpuForward(c)));
  }

  /** The addon call for a backward, and how to shape its result. */
  private prepareBackward(cfg: KernelConfig, shape: CallShape, args: BackwardArgs): { addon: NativeAddon; call: GpuBackwardCall } {
    const addon = nativeAddonFor(this.name);
    const operands: [string, Operand][] = [
      ['q', args.q], ['k', args.k], ['v', args.v], ['out', args.out], ['logsumexp', args.logsumexp], ['dout', args.dout],
    ];
    const device = this.checkOperands(shape, operands);
    const dev = device ?? 0;
    const fused = cfg.dqMaskInfo === null;
    const call: GpuBackwardCall = {
      // Written out rather than spread, so that every call has one hidden class (see cpu.ts kernelCall).
      device: dev,
      dtype: DTYPE_CODE[shape.dtype],
      batch: shape.batch,
      heads: shape.heads,
      kvHeads: shape.kvHeads,
      qSeq: shape.qSeqLen,
      kvSeq: shape.kvSeqLen,
      headDim: shape.headDim,
      headDimV: shape.headDimV,
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
      sinks: args.sinks,
      outputOnDevice: device !== null,
      cancel: null,
    };
    return { addon, call };
  }

  private backwardResult(addon: GpuExports, shape: CallShape, args: BackwardArgs, call: GpuBackwardCall,
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
    const { addon, call } = this.prepareBackward(cfg, shape, args);
    return this.backwardResult(addon, shape, args, call, addon.gpuBackwardSync(call));
  }

  async backward(cfg: KernelConfig, shape: CallShape, args: BackwardArgs, control?: CallControl): Promise<BackwardResult> {
    const { addon, call } = this.prepareBackward(cfg, shape, args);
    return this.backwardResult(addon, shape, args, call, await cancellable(addon, control, call, (c) => addon.gpuBackward(c)));
  }
}

export const cudaBackend: Backend = new GpuBackend('cuda');
export const rocmBackend: Backend = new GpuBackend('rocm');
