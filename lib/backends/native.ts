// Finds and loads the native addon, once. Three variants may exist (see CMakeLists.txt):
//   splash_hip.node  CPU + HIP, needs libamdhip64 at load time     build/Release or prebuilds/<p>-<a>/hip/
//   splash.node      CPU, + CUDA when built with nvcc (static cudart) build/Release or prebuilds/<p>-<a>/
// The HIP variant is loaded only where hip-probe.ts finds an AMD GPU it has code for (loading it
// on a machine whose GPU has no code object can make the HIP runtime abort the process), and wins
// when it then sees a device; otherwise splash.node (whatever it was built with); otherwise a HIP
// build that loaded without a device still serves the CPU kernels. Nothing here throws: every
// failure is recorded, and the package falls back to the JS backend.
//
// Environment: SPLASH_ADDON_PATH=<file> loads exactly that file (a HIP one after the same probe);
// SPLASH_NO_NATIVE=1 loads nothing.

import * as fs from 'fs';
import * as path from 'path';

import { linksHipRuntime, probeHipAddon } from './hip-probe';

export interface CpuFeatures {
  sse42: boolean;
  avx: boolean;
  avx2: boolean;
  fma: boolean;
  f16c: boolean;
  avx512f: boolean;
  avx512bw: boolean;
  avx512vl: boolean;
  avx512vnni: boolean;
  avx512bf16: boolean;
  avx512fp16: boolean;
  amxBf16: boolean;
}

/** A GPU as listed by backends(). */
export interface DeviceInfo {
  /** The device number that toDevice's `device` option takes. */
  index: number;
  /** The device's name, as the driver reports it. */
  name: string;
  /** "major.minor" on CUDA; the gfx architecture name on ROCm. */
  computeCapability?: string;
  /** Device memory in bytes. */
  totalMemory: number;
}

/** A GPU as the addon reports it. computeCapability is "major.minor" on CUDA, the gfx name on HIP. */
export interface NativeDeviceInfo {
  index: number;
  name: string;
  computeCapability: string;
  totalMemory: number;
  multiprocessors: number;
}

/** One GPU runtime (CUDA or HIP) as compiled into the addon and seen at run time. */
export interface GpuRuntimeInfo {
  compiled: boolean;
  deviceCount: number;
  /** The runtime's own message when a query failed (or why it is not compiled); null when all went well. */
  error: string | null;
  runtimeVersion: number;
  driverVersion: number;
  devices: NativeDeviceInfo[];
}

export type NativeVariant = 'hip' | 'cuda' | 'cpu';

export interface NativeInfo {
  version: string;
  /** Backends compiled in: 'cpu' plus 'cuda' or 'rocm'. */
  backends: string[];
  variant: NativeVariant;
  cpuFeatures: CpuFeatures;
  threads: number;
  cuda: GpuRuntimeInfo;
  hip: GpuRuntimeInfo;
}

/** The addon's exports. Later kernels add their entry points here. */
export interface NativeAddon {
  info(): NativeInfo;
}

/** One candidate file and what became of it. */
export interface LoadAttempt {
  path: string;
  kind: 'hip' | 'main' | 'override';
  /** The addon loaded and answered info(). */
  loaded: boolean;
  /** Why it was not used (not found, dlopen error, no device, version mismatch), or null when used. */
  reason: string | null;
  /** Not loaded on purpose: a HIP build with no AMD GPU here it has code for (hip-probe.ts). */
  declined?: boolean;
  info: NativeInfo | null;
}

export interface NativeLoad {
  addon: NativeAddon | null;
  variant: NativeVariant | null;
  path: string | null;
  /** Why nothing loaded (each candidate and its failure); null when an addon loaded. */
  error: string | null;
  info: NativeInfo | null;
  attempts: LoadAttempt[];
}

const PACKAGE_NAME = 'splash-attention';

/** Nearest directory above this file whose package.json is ours (lib/ under tsx, dist/ when built). */
function findPackageRoot(start: string): string | null {
  for (let dir = start; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown };
      if (pkg.name === PACKAGE_NAME) return dir;
    } catch {
      // no package.json here, or unreadable: keep walking up
    }
    if (path.dirname(dir) === dir) return null;
  }
}

function packageVersion(root: string): string | null {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : null;
  } catch {
    return null;
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function isNativeInfo(x: unknown): x is NativeInfo {
  const i = x as NativeInfo;
  return typeof x === 'object' && x !== null && typeof i.version === 'string' && Array.isArray(i.backends) &&
    typeof i.variant === 'string' && typeof i.cuda === 'object' && typeof i.hip === 'object';
}

/** dlopen one candidate and ask it what it is; records the outcome in `attempts`. */
function tryLoad(file: string, kind: LoadAttempt['kind'], version: string | null,
                 attempts: LoadAttempt[]): { addon: NativeAddon; info: NativeInfo } | null {
  const attempt: LoadAttempt = { path: file, kind, loaded: false, reason: null, info: null };
  attempts.push(attempt);
  if (!fs.existsSync(file)) {
    attempt.reason = 'not found';
    return null;
  }
  if (kind === 'hip' || (kind === 'override' && linksHipRuntime(file))) {
    const probe = probeHipAddon(file);
    if (!probe.load) {
      attempt.reason = `not loaded: ${probe.reason}`;
      attempt.declined = true;
      return null;
    }
  }
  try {
    const addon = require(file) as NativeAddon;
    const info: unknown = typeof addon?.info === 'function' ? addon.info() : undefined;
    if (!isNativeInfo(info)) {
      attempt.reason = 'not a splash-attention addon (no usable info())';
      return null;
    }
    attempt.info = info;
    if (version !== null && info.version !== version) {
      attempt.reason = `stale build: addon version ${info.version}, package version ${version}`;
      return null;
    }
    attempt.loaded = true;
    return { addon, info };
  } catch (e) {
    attempt.reason = message(e).split('\n')[0];
    return null;
  }
}

/** The prebuild node-gyp-build would pick for this platform (it never picks the hip/ subfolder). */
function prebuildPath(root: string): string | null {
  try {
    const ngb = require('node-gyp-build') as { path(dir: string): string };
    const found = ngb.path(root);
    // Its first choice is build/Release, which we have already tried by name.
    return found.startsWith(path.join(root, 'prebuilds') + path.sep) ? found : null;
  } catch {
    return null;
  }
}

function describeFailures(attempts: LoadAttempt[]): string {
  if (attempts.length === 0) return 'no native addon candidates';
  return 'no native addon could be loaded: ' + attempts.map((a) => `${a.path}: ${a.reason}`).join('; ');
}

function load(): NativeLoad {
  const none = (error: string, attempts: LoadAttempt[] = []): NativeLoad =>
    ({ addon: null, variant: null, path: null, error, info: null, attempts });
  const use = (found: { addon: NativeAddon; info: NativeInfo }, file: string, attempts: LoadAttempt[]): NativeLoad =>
    ({ addon: found.addon, variant: found.info.variant, path: file, error: null, info: found.info, attempts });

  if (process.env.SPLASH_NO_NATIVE === '1') return none('native addon disabled by SPLASH_NO_NATIVE=1');

  const root = findPackageRoot(__dirname);
  const version = root === null ? null : packageVersion(root);
  const attempts: LoadAttempt[] = [];

  const override = process.env.SPLASH_ADDON_PATH;
  if (override) {
    const file = path.resolve(override);
    const found = tryLoad(file, 'override', version, attempts);
    return found ? use(found, file, attempts) : none(`SPLASH_ADDON_PATH=${override}: ${attempts[0].reason}`, attempts);
  }
  if (root === null) return none(`package root of ${PACKAGE_NAME} not found above ${__dirname}`);

  const platformDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);

  // 1. HIP, only where a GPU it has code for is present (tryLoad: hip-probe.ts), and only if the
  //    runtime then sees a device. A HIP build that loads without one is kept as a CPU fallback.
  let hipFallback: { found: { addon: NativeAddon; info: NativeInfo }; file: string } | null = null;
  for (const file of [path.join(root, 'build', 'Release', 'splash_hip.node'), path.join(platformDir, 'hip', 'splash_hip.node')]) {
    const found = tryLoad(file, 'hip', version, attempts);
    if (!found) continue;
    if (found.info.hip.deviceCount > 0) return use(found, file, attempts);
    const attempt = attempts[attempts.length - 1];
    attempt.reason = `no HIP device: ${found.info.hip.error ?? 'the runtime reports 0 devices'}`;
    hipFallback = { found, file };
    break;
  }

  // 2. The main addon (CPU, + CUDA when it was built with nvcc).
  const mainFiles = [path.join(root, 'build', 'Release', 'splash.node')];
  const prebuild = prebuildPath(root);
  mainFiles.push(prebuild ?? path.join(platformDir, `${PACKAGE_NAME}.node`));
  for (const file of mainFiles) {
    const found = tryLoad(file, 'main', version, attempts);
    if (found) return use(found, file, attempts);
  }

  // 3. A device-less HIP build still runs the CPU kernels.
  if (hipFallback) {
    const attempt = attempts.find((a) => a.path === hipFallback?.file);
    if (attempt) attempt.reason = null;
    return use(hipFallback.found, hipFallback.file, attempts);
  }
  return none(describeFailures(attempts), attempts);
}

let memo: NativeLoad | undefined;

/** Loads the best addon variant on first call and returns the same result ever after. Never throws. */
export function loadNative(): NativeLoad {
  if (memo === undefined) {
    try {
      memo = load();
    } catch (e) {
      // load() records its own failures; this only guards against the unforeseen.
      memo = { addon: null, variant: null, path: null, error: `native loader failed: ${message(e)}`, info: null, attempts: [] };
    }
  }
  return memo;
}

export interface NativeBackendStatus {
  available: boolean;
  reason?: string;
  devices?: DeviceInfo[];
}

function devicesOf(gpu: GpuRuntimeInfo): DeviceInfo[] {
  return gpu.devices.map((d) => ({
    index: d.index, name: d.name, computeCapability: d.computeCapability, totalMemory: d.totalMemory,
  }));
}

function gpuStatus(gpu: GpuRuntimeInfo, label: string): NativeBackendStatus {
  if (gpu.deviceCount > 0) return { available: true, devices: devicesOf(gpu) };
  return { available: false, reason: `no ${label} device: ${gpu.error ?? 'the runtime reports 0 devices'}` };
}

/** Availability of a native backend for backends(): 'cpu', 'cuda' or 'rocm' (HIP). */
export function nativeBackendStatus(name: 'cpu' | 'cuda' | 'rocm'): NativeBackendStatus {
  const ld = loadNative();
  if (!ld.addon || !ld.info) return { available: false, reason: `native addon not loaded: ${ld.error}` };
  switch (name) {
    case 'cpu':
      return { available: true };
    case 'cuda':
      if (!ld.info.cuda.compiled) {
        return { available: false, reason: `addon built without CUDA (loaded ${path.basename(ld.path ?? '')}, variant ${ld.variant})` };
      }
      return gpuStatus(ld.info.cuda, 'CUDA');
    case 'rocm': {
      if (ld.info.hip.compiled) return gpuStatus(ld.info.hip, 'ROCm');
      // The loaded addon is not the HIP one: say what happened to the HIP candidates.
      const hip = ld.attempts.filter((a) => a.kind === 'hip');
      const probed = hip.find((a) => a.info !== null);
      if (probed?.info) {
        const status = gpuStatus(probed.info.hip, 'ROCm');
        return status.available ? { available: false, reason: `HIP addon not used: ${probed.reason}` } : status;
      }
      const declined = hip.find((a) => a.declined);
      if (declined) return { available: false, reason: `no ROCm device: ${declined.reason}` };
      const failed = hip.filter((a) => a.reason !== 'not found');
      if (failed.length > 0) {
        return { available: false, reason: 'HIP addon failed to load: ' + failed.map((a) => `${a.path}: ${a.reason}`).join('; ') };
      }
      return { available: false, reason: 'addon built without HIP (no splash_hip.node was built or shipped)' };
    }
  }
}
