// Which backends exist, which are usable here, and the 'auto' choice.

import type { BackendName } from '../validate';
import type { Backend } from './backend';
import { cpuBackend } from './cpu';
import { cudaBackend, rocmBackend } from './gpu';
import { jsBackend } from './js';
import { nativeAddonFor, nativeBackendStatus, type DeviceInfo, type NativeBackendName } from './native';
import { referenceBackend } from './reference';

export type { DeviceInfo };

export interface BackendStatus {
  name: string;
  available: boolean;
  reason?: string;
  devices?: DeviceInfo[];
}

const NATIVE_ORDER: readonly NativeBackendName[] = ['cuda', 'rocm', 'cpu'];

const nativeKernels: Record<NativeBackendName, Backend> = { cpu: cpuBackend, cuda: cudaBackend, rocm: rocmBackend };

/** All five backends with their availability here. */
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
