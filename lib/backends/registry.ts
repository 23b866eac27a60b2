// Which backends exist, which are usable here, and the 'auto' choice.

import type { Backend } from './backend';
import { cpuBackend } from './cpu';
import { cudaBackend, rocmBackend } from './gpu';
import { jsBackend } from './js';
import { loadNative, nativeBackendStatus, type DeviceInfo } from './native';
import { referenceBackend } from './reference';
import type { BackendName } from '../validate';

export type { DeviceInfo };

/** One backend as {@link backends} reports it. */
export interface BackendStatus {
  /** 'cuda', 'rocm', 'cpu', 'js' or 'reference'. */
  name: string;
  /** Whether a kernel can be made with this backend here. */
  available: boolean;
  /** Why it is unavailable (no driver, no device, addon not built…); absent when available. */
  reason?: string;
  /** The GPUs a GPU backend sees; absent for 'cpu', 'js' and 'reference'. */
  devices?: DeviceInfo[];
}

type NativeName = 'cuda' | 'rocm' | 'cpu';
const NATIVE_ORDER: readonly NativeName[] = ['cuda', 'rocm', 'cpu'];

const nativeKernels: Record<NativeName, Backend> = { cpu: cpuBackend, cuda: cudaBackend, rocm: rocmBackend };

/** Addon functions each native backend calls: an addon built before they existed must not count as available. */
const REQUIRED_EXPORTS: Record<NativeName, readonly string[]> = {
  cpu: ['forward', 'forwardSync', 'backward', 'backwardSync', 'prepareSchedule', 'cancelToken', 'cancel'],
  cuda: ['gpuForward', 'gpuForwardSync', 'gpuBackward', 'gpuBackwardSync', 'gpuUploadSchedule', 'gpuToDevice', 'gpuToHost', 'gpuDispose', 'cancelToken', 'cancel'],
  rocm: ['gpuForward', 'gpuForwardSync', 'gpuBackward', 'gpuBackwardSync', 'gpuUploadSchedule', 'gpuToDevice', 'gpuToHost', 'gpuDispose', 'cancelToken', 'cancel'],
};

function nativeStatus(name: NativeName): BackendStatus {
  const s = nativeBackendStatus(name);
  if (!s.available) return { name, ...s };
  const { addon, path } = loadNative();
  const missing = REQUIRED_EXPORTS[name].filter((f) => typeof (addon as unknown as Record<string, unknown>)[f] !== 'function');
  if (missing.length > 0) {
    return { name, available: false, reason: `the native addon at ${path} lacks ${missing.join(', ')} (a stale build: rebuild it)`, devices: s.devices };
  }
  return { name, ...s };
}

/**
 * Lists all five backends, in the order 'cuda', 'rocm', 'cpu', 'js', 'reference', with whether each is
 * usable in this process and, if not, why. 'js' and 'reference' are always available. Never throws:
 * when the native addon cannot be loaded, the native backends are listed as unavailable with the reason.
 *
 * @example
 * ```ts
 * for (const b of backends()) console.log(b.name, b.available ? 'ok' : b.reason);
 * ```
 */
export function backends(): BackendStatus[] {
  return [
    ...NATIVE_ORDER.map(nativeStatus),
    { name: 'js', available: true },
    { name: 'reference', available: true },
  ];
}

/** The backend for a name; 'auto' picks cuda, rocm, cpu, then js. Throws Error when a named one is unavailable. */
export function resolveBackend(name: BackendName): Backend {
  if (name === 'js') return jsBackend;
  if (name === 'reference') return referenceBackend;
  if (name === 'auto') {
    for (const n of NATIVE_ORDER) {
      if (nativeStatus(n).available) return nativeKernels[n];
    }
    return jsBackend;
  }
  const s = nativeStatus(name);
  if (!s.available) throw new Error(`backend '${name}' is not available: ${s.reason ?? 'unknown reason'}`);
  return nativeKernels[name];
}
