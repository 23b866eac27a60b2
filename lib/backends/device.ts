// GPU-resident tensors. Until a GPU backend is available, toDevice explains why it cannot run.

import { resolveBackend } from './registry';
import { describeValue, type DType, type Tensor } from '../tensor';
import { checkTensor } from '../validate';

export class DeviceTensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly device: number;

  /** Made by toDevice only. */
  protected constructor(shape: readonly number[], dtype: DType, device: number) {
    this.shape = shape;
    this.dtype = dtype;
    this.device = device;
  }

  toHost(): Promise<Tensor> {
    return Promise.reject(new Error('DeviceTensor: no GPU backend holds this tensor'));
  }

  dispose(): void {}
}

export interface ToDeviceOptions {
  backend?: 'cuda' | 'rocm';
  device?: number;
}

export function toDevice(t: Tensor, opts: ToDeviceOptions = {}): DeviceTensor {
  checkTensor(t, 't');
  const name = opts.backend ?? 'cuda';
  if (name !== 'cuda' && name !== 'rocm') {
    throw new TypeError(`opts.backend: expected 'cuda' or 'rocm', got ${describeValue(name)}`);
  }
  resolveBackend(name); // throws Error naming why the GPU backend is unavailable
  throw new Error(`toDevice: the ${name} backend has no device memory support in this build`);
}
