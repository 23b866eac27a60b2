// Which backends exist, which are usable here, and the 'auto' choice.

import type { Backend } from './backend';
import { jsBackend } from './js';
import { nativeBackendStatus, type DeviceInfo } from './native';
import { referenceBackend } from './reference';
import type { BackendName } from '../validate';

export type { DeviceInfo };

export interface BackendStatus {
  name: string;
  available: boolean;
  reason?: string;
  devices?: DeviceInfo[];
}

type NativeName = 'cuda' | 'rocm' | 'cpu';
const NATIVE_ORDER: readonly NativeName[] = ['cuda', 'rocm', 'cpu'];

/** Native backends whose kernels are implemented; filled in as the kernels land. */
const nativeKernels: Partial<Record<NativeName, Backend>> = {};

function nativeStatus(name: NativeName): BackendStatus {
  const s = nativeBackendStatus(name);
  if (s.available && nativeKernels[name] === undefined) {
    return { name, available: false, reason: `the native addon loads but has no ${name} attention kernels yet`, devices: s.devices };
  }
  return { name, ...s };
}

/** All five backends with their availability here. */
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
      if (nativeStatus(n).available) return nativeKernels[n] as Backend;
    }
    return jsBackend;
  }
  const s = nativeStatus(name);
  if (!s.available) throw new Error(`backend '${name}' is not available: ${s.reason ?? 'unknown reason'}`);
  return nativeKernels[name] as Backend;
}
