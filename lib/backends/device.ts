// GPU-resident tensors: toDevice copies a Tensor into device memory of the 'cuda' or 'rocm' backend,
// and kernels on that backend accept the resulting DeviceTensors wherever they accept Tensors (and
// then return DeviceTensors). The memory is an addon buffer; dispose() frees it at once, and a
// FinalizationRegistry frees it when a DeviceTensor is collected without dispose() (the addon's own
// finalizer is the last resort). A forward still running on a disposed tensor keeps the memory
// until it finishes.

import { describeValue } from '../describe-value';
import { shapeSize, tensor, type DType, type Tensor } from '../tensor';
import { DEVICE_TENSOR_BRAND, checkTensor } from '../validate';
import { gpuBackendOf, nativeAddonFor, type DeviceHandle, type GpuBackendName, type GpuExports } from './native';

interface DeviceState {
  handle: DeviceHandle | null;
  addon: GpuExports;
  backend: GpuBackendName;
}

const states = new WeakMap<DeviceTensor, DeviceState>();

// Frees the device memory of DeviceTensors that were collected without dispose().
const finalizer = new FinalizationRegistry<{ addon: GpuExports; handle: DeviceHandle }>(({ addon, handle }) => {
  try {
    addon.gpuDispose(handle);
  } catch {
    // nothing to report to: the addon's own finalizer still frees the memory
  }
});

/**
 * A tensor in GPU memory of the 'cuda' or 'rocm' backend, made by {@link toDevice} or returned by a
 * GPU kernel given DeviceTensors. Kernels on that backend take it wherever they take a Tensor and then
 * return DeviceTensors; kernels on other backends reject it with a TypeError. Read it back with
 * toHost(); free it with dispose() (memory of one that is garbage-collected undisposed is freed too).
 */
export class DeviceTensor {
  /** Dimensions, outermost first, as a Tensor's (frozen). */
  readonly shape: readonly number[];
  /** Element type, as a Tensor's. */
  readonly dtype: DType;
  /** The GPU it lives on: an index as in {@link DeviceInfo}. */
  readonly device: number;

  /** Made by toDevice and by GPU kernels only. */
  protected constructor(shape: readonly number[], dtype: DType, device: number) {
    this.shape = Object.freeze(shape.slice());
    this.dtype = dtype;
    this.device = device;
  }

  /** The backend holding this tensor: 'cuda' or 'rocm'. */
  get backend(): GpuBackendName {
    return stateOf(this).backend;
  }

  /** True once dispose() was called. */
  get disposed(): boolean {
    return stateOf(this).handle === null;
  }

  /**
   * Copies the tensor to a new host Tensor (off the event loop).
   * @throws Error (as a rejection) when the tensor was disposed, or with the driver's message.
   */
  async toHost(): Promise<Tensor> {
    const s = stateOf(this);
    if (s.handle === null) throw new Error('DeviceTensor.toHost: the tensor was disposed');
    const data = this.dtype === 'float32' ? new Float32Array(shapeSize(this.shape)) : new Uint16Array(shapeSize(this.shape));
    await s.addon.gpuToHost(s.handle, data);
    return tensor(data, this.shape, this.dtype);
  }

  /** Frees the device memory now; later use throws. Disposing twice is a no-op. */
  dispose(): void {
    const s = stateOf(this);
    if (s.handle === null) return;
    finalizer.unregister(this);
    const handle = s.handle;
    s.handle = null;
    s.addon.gpuDispose(handle);
  }
}

Object.defineProperty(DeviceTensor.prototype, DEVICE_TENSOR_BRAND, { value: true });

function stateOf(t: DeviceTensor): DeviceState {
  const s = states.get(t);
  if (s === undefined) throw new TypeError('DeviceTensor: not made by toDevice or a GPU kernel');
  return s;
}

class DeviceTensorImpl extends DeviceTensor {
  constructor(shape: readonly number[], dtype: DType, device: number) {
    super(shape, dtype, device);
  }
}

/** Wraps an addon buffer handle (internal: toDevice and the GPU backend). */
export function wrapDeviceBuffer(
  addon: GpuExports, backend: GpuBackendName, handle: DeviceHandle, shape: readonly number[], dtype: DType, device: number,
): DeviceTensor {
  const t = new DeviceTensorImpl(shape, dtype, device);
  states.set(t, { handle, addon, backend });
  finalizer.register(t, { addon, handle }, t);
  return t;
}

export function isDeviceTensor(x: unknown): x is DeviceTensor {
  return x instanceof DeviceTensor;
}

/** TypeError for a DeviceTensor handed to a kernel whose backend is not a GPU one. */
export function rejectDeviceTensors(backend: string, args: Record<string, unknown>): void {
  if (backend === 'cuda' || backend === 'rocm') return;
  for (const [name, t] of Object.entries(args)) {
    if (isDeviceTensor(t)) {
      throw new TypeError(`${name}: expected a host Tensor on the '${backend}' backend, got a DeviceTensor ` +
        `(of '${t.backend}'; make the kernel with backend '${t.backend}', or call toHost())`);
    }
  }
}

/** The addon handle of a live DeviceTensor; Error naming `name` when it was disposed. */
export function deviceHandle(t: DeviceTensor, name: string): DeviceHandle {
  const s = stateOf(t);
  if (s.handle === null) throw new Error(`${name}: the DeviceTensor was disposed`);
  return s.handle;
}

/** Options of {@link toDevice}. */
export interface ToDeviceOptions {
  /** The GPU backend to copy to. Default: the one the loaded addon was built for, else 'cuda'. */
  backend?: 'cuda' | 'rocm';
  /** The GPU's index (a non-negative integer). Default 0. */
  device?: number;
}

/**
 * Copies a host Tensor into GPU memory, for training loops that keep tensors on the device. The
 * input is not changed; the result belongs to the caller, who frees it with dispose().
 *
 * @param t - a host Tensor (any dtype).
 * @param opts - `backend`: 'cuda' or 'rocm' (default: the GPU backend the loaded addon was built for,
 *   else 'cuda'); `device`: the GPU's index (default 0).
 * @throws TypeError when `t` is not a Tensor or is a DeviceTensor already, `opts` is not an object,
 *   `opts.backend` is not 'cuda' or 'rocm', or `opts.device` is not a number.
 * @throws RangeError when `opts.device` is not a non-negative integer or not a device index of the
 *   backend, or as {@link tensor} for a malformed `t`.
 * @throws Error when the GPU backend is unavailable (the message says why), or with the driver's
 *   message when the allocation or copy fails.
 * @example
 * ```ts
 * const kernel = makeSplashMHA(new CausalMask([1024, 1024]), { backend: 'cuda' });
 * const [qd, kd, vd] = [q, k, v].map((t) => toDevice(t, { backend: 'cuda' }));
 * const out = await (await kernel.forward(qd, kd, vd)).toHost();
 * [qd, kd, vd].forEach((t) => t.dispose());
 * ```
 */
export function toDevice(t: Tensor, opts: ToDeviceOptions = {}): DeviceTensor {
  if (isDeviceTensor(t)) throw new TypeError('t: expected a host Tensor, got a DeviceTensor (it is on the device already)');
  checkTensor(t, 't');
  if (opts === null || typeof opts !== 'object') throw new TypeError(`opts: expected an object, got ${describeValue(opts)}`);
  if (opts.backend !== undefined && opts.backend !== 'cuda' && opts.backend !== 'rocm') {
    throw new TypeError(`opts.backend: expected 'cuda' or 'rocm', got ${describeValue(opts.backend)}`);
  }
  const device = opts.device ?? 0;
  if (typeof device !== 'number') throw new TypeError(`opts.device: expected a non-negative integer, got ${describeValue(device)}`);
  if (!Number.isInteger(device) || device < 0) {
    throw new RangeError(`opts.device: expected a non-negative integer, got ${device}`);
  }
  const name = opts.backend ?? gpuBackendOf() ?? 'cuda';
  const addon = nativeAddonFor(name); // throws Error naming why that GPU backend is unavailable
  const handle = addon.gpuToDevice(t.data, device);
  return wrapDeviceBuffer(addon, name, handle, t.shape, t.dtype, device);
}
