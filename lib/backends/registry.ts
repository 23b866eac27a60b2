// Which backends exist, which are usable here, and the 'auto' choice.

import type { BackendName } from '../validate';
import type { Backend } from './backend';
import { cpuBackend } from './cpu';
import { cudaBackend, rocmBackend } from './gpu';
import { jsBackend } from './js';
import { nativeAddonFor, nativeBackendStatus, type DeviceInfo, type NativeBackendName } from './native';
import { referenceBackend } from './reference';

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

const NATIVE_ORDER: readonly NativeBackendName[] = ['cuda', 'rocm', 'cpu'];

const nativeKernels: Record<NativeBackendName, Backend> = { cpu: cpuBackend, cuda: cudaBackend, rocm: rocmBackend };

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
    ...NATIVE_ORDER.map((name) => ({ name, ...nativeBackendStatus(name) })),
    { name: 'js', available: true },
    { name: 'reference', available: true },
  ];
}

/** The backend for a name; 'auto' picks cuda, rocm, cpu, then js. Throws Error when a named one is unavailable. */
export function resolveBackend(name: BackendName): Backend {
  if (name === 'js') return jsBackend;
  if (name === 'reference') return referenceBackend;
  if (name === 'auto') {
    const best = NATIVE_ORDER.find((n) => nativeBackendStatus(n).available);
    return best === undefined ? jsBackend : nativeKernels[best];
  }
  nativeAddonFor(name); // throws Error naming why that backend is unavailable
  return nativeKernels[name];
}
