// The native addon: what it exports, typed (the one description the backends use), and finding and
// loading it, once. Three variants may exist (see CMakeLists.txt):
//   splash_hip.node  CPU + HIP, needs libamdhip64 at load time     build/Release or prebuilds/<p>-<a>/hip/
//   splash.node      CPU, + CUDA when built with nvcc (static cudart) build/Release or prebuilds/<p>-<a>/
// The HIP variant is loaded only where hip-probe.ts finds an AMD GPU it has code for (loading it
// on a machine whose GPU has no code object can make the HIP runtime abort the process), and wins
// when it then sees a device; otherwise splash.node (whatever it was built with); otherwise a HIP
// build that loaded without a device still serves the CPU kernels. Loading never throws: every
// failure is recorded, and the package falls back to the JS backend.
//
// Environment: SPLASH_ADDON_PATH=<file> loads exactly that file (a HIP one after the same probe);
// SPLASH_NO_NATIVE=1 loads nothing.

import * as fs from 'fs';
import * as path from 'path';

import type { MaskInfo } from '../mask-info';
import { linksHipRuntime, probeHipAddon } from './hip-probe';

/** The GPU backends: 'cuda' (NVIDIA) or 'rocm' (AMD, through HIP). */
export type GpuBackendName = 'cuda' | 'rocm';
/** The backends that run in the addon. */
export type NativeBackendName = 'cpu' | GpuBackendName;

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
  /** AArch64 Advanced SIMD. */
  neon: boolean;
  /** AArch64 FEAT_BF16 (the BFDOT instruction the bf16 kernels use). */
  armBf16: boolean;
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

// ---- what the addon exports ------------------------------------------------------------------------
// The one typed description of the addon's entry points (native/addon/*.cc) and of the calls they
// take. The loader checks the names once, when an addon loads: a build older than the package lacks
// some, and the native backends that need them are then unavailable, saying which.

/** Element type as the addon reads it: float32, bfloat16, float16 (DType in params.h). */
export type DTypeCode = 0 | 1 | 2;

/** A call's cancel token (cancelToken()). Opaque to JS. */
export interface CancelToken {
  readonly __brand: 'splash-cancel-token';
}
/** A MaskInfo's schedule as the addon holds it for the CPU kernels (prepareSchedule). Opaque to JS. */
export interface HostScheduleHandle {
  readonly __brand: 'splash-host-schedule';
}
/** An addon device buffer (an External with a type tag). Opaque to JS. */
export interface DeviceHandle {
  readonly __brand: 'splash-device-buffer';
}
/** A schedule uploaded to a GPU (an External with a type tag). Opaque to JS. */
export interface DeviceScheduleHandle {
  readonly __brand: 'splash-schedule';
}

/** A tensor as the CPU kernels read it: element strides over [batch, head, seq, dim]. */
export interface CpuTensorView {
  data: Float32Array | Uint16Array;
  dtype: DTypeCode;
  strides: [number, number, number, number];
}

/** The sizes every kernel call carries, CPU and GPU alike. */
export interface AddonCallSizes {
  batch: number;
  heads: number;
  kvHeads: number;
  qSeq: number;
  kvSeq: number;
  headDim: number;
  headDimV: number;
}

/** One CPU kernel call (cpu_binding.cc); the addon re-checks every size against the real buffers. */
export interface CpuKernelCall extends AddonCallSizes {
  q: CpuTensorView;
  k: CpuTensorView;
  v: CpuTensorView;
  out: CpuTensorView;
  lse: CpuTensorView;
  /** Backward only (null in a forward). */
  dout: CpuTensorView | null;
  dq: CpuTensorView | null;
  dk: CpuTensorView | null;
  dv: CpuTensorView | null;
  segmentIdsQ: Int32Array | null;
  segmentIdsKv: Int32Array | null;
  maskValue: number;
  softCap: number;
  /** logits = scale · q·kᵀ before the soft cap. */
  scale: number;
  /** Forward only: [heads] sink logits, or null. */
  sinks: Float32Array | null;
  saveLse: boolean;
  blockKvCompute: number;
  blockKvDkvCompute: number;
  fusedBwd: boolean;
  /** Forward only (null in a backward). */
  fwdSchedule: HostScheduleHandle | null;
  /** Split backward only; null for the fused one and in a forward. */
  dqSchedule: HostScheduleHandle | null;
  /** Backward only (null in a forward). */
  dkvSchedule: HostScheduleHandle | null;
  numThreads: number;
  headShards: number;
  /** Async calls: the token that cancels the call; null for none. */
  cancel: CancelToken | null;
}

/** What a finished CPU call reports: the kernel table that ran ('avx512_bf16', 'avx512', 'avx2' on x86-64;
 *  'neon_bf16', 'neon' on AArch64; 'generic' anywhere). */
export interface CpuCallReport {
  isa: string;
  /** Input bytes the call copied: those of an async call's inputs, except any on a SharedArrayBuffer. */
  copiedBytes: number;
  /** Forward calls: the query heads of one kv head that each task ran side by side (1: one per task). */
  headsPerTask?: number;
}

/** The fields GPU forward and backward calls share (native/addon/gpu.cc reads them in one place). */
export interface GpuCallCommon extends AddonCallSizes {
  device: number;
  dtype: DTypeCode;
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
  /** Async calls: the token that cancels the call until its kernels launch; null for none. */
  cancel: CancelToken | null;
}

export interface GpuForwardCall extends GpuCallCommon {
  schedule: DeviceScheduleHandle;
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
  dqSchedule: DeviceScheduleHandle | null;
  dkvSchedule: DeviceScheduleHandle;
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

/** A forward launch to plan for a described GPU (gpuPlanForward: no device needed). */
export interface GpuPlanRequest {
  dtype: DTypeCode;
  headDim: number;
  headDimV: number;
  batch: number;
  heads: number;
  kvHeads: number;
  qSeq: number;
  kvSeq: number;
  blockQ: number;
  blockKv: number;
  segments: boolean;
  maskValue: number;
  force?: 'auto' | 'simt' | 'mma';
  device: { hip: boolean; ccMajor: number; ccMinor: number; maxSmem: number; multiprocessors: number };
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

/** The CPU kernels (cpu_binding.cc, host_schedule.cc, jobs.cc). The kernel calls resolve once the
 *  outputs in the call are written. */
export interface CpuKernelExports {
  forward(call: CpuKernelCall): Promise<CpuCallReport>;
  forwardSync(call: CpuKernelCall): CpuCallReport;
  backward(call: CpuKernelCall): Promise<CpuCallReport>;
  backwardSync(call: CpuKernelCall): CpuCallReport;
  prepareSchedule(info: MaskInfo): HostScheduleHandle;
}

/** Cancelling async calls (jobs.cc): a queued call never starts, a running one stops at its next block row. */
export interface CancelExports {
  cancelToken(): CancelToken;
  cancel(token: CancelToken): void;
}

/** The GPU entry points (gpu.cc). Every build has them: one without a GPU runtime reports "not
 *  compiled" from the device calls, and its planning helpers work as in any other. */
export interface GpuExports {
  gpuBackendName(): GpuBackendName | 'none';
  gpuToDevice(data: Float32Array | Uint16Array, device: number): DeviceHandle;
  gpuToHost(handle: DeviceHandle, out: Float32Array | Uint16Array): Promise<void>;
  gpuToHostSync(handle: DeviceHandle, out: Float32Array | Uint16Array): void;
  gpuDispose(handle: DeviceHandle): void;
  gpuBufferInfo(handle: DeviceHandle): { device: number; bytes: number; disposed: boolean };
  gpuUploadSchedule(device: number, info: MaskInfo): DeviceScheduleHandle;
  gpuForward(call: GpuForwardCall): Promise<GpuForwardResult>;
  gpuForwardSync(call: GpuForwardCall): GpuForwardResult;
  gpuBackward(call: GpuBackwardCall): Promise<GpuBackwardResult>;
  gpuBackwardSync(call: GpuBackwardCall): GpuBackwardResult;
  gpuPlanForward(request: GpuPlanRequest): GpuPlan;
  gpuWorkOrder(rowPtr: Int32Array, numSchedules: number, rowsPerSchedule: number, blockQ: number, qSeq: number,
    tileM: number, tilesPerQblock: number): Int32Array;
  gpuPackMaskBits(blocks: Uint8Array, blockQ: number, blockKv: number): Uint32Array;
  gpuCheckSchedule(info: MaskInfo): string;
  gpuSegmentRanges(segmentIds: Int32Array, batch: number, seq: number, block: number): Int32Array;
}

/** Everything the addon exports. */
export interface NativeAddon extends CpuKernelExports, CancelExports, GpuExports {
  info(): NativeInfo;
}

/** The names of an interface's entry points, in the order given; the record's type makes a name
 *  missing here, or not in the interface, a compile error. */
function entryPoints<T>(names: Record<keyof T, true>): string[] {
  return Object.keys(names);
}

const CPU_KERNEL_ENTRY_POINTS = entryPoints<CpuKernelExports>({
  forward: true, forwardSync: true, backward: true, backwardSync: true, prepareSchedule: true,
});
const CANCEL_ENTRY_POINTS = entryPoints<CancelExports>({ cancelToken: true, cancel: true });
const GPU_ENTRY_POINTS = entryPoints<GpuExports>({
  gpuForward: true, gpuForwardSync: true, gpuBackward: true, gpuBackwardSync: true, gpuUploadSchedule: true,
  gpuToDevice: true, gpuToHost: true, gpuDispose: true, gpuBackendName: true, gpuToHostSync: true,
  gpuBufferInfo: true, gpuPlanForward: true, gpuWorkOrder: true, gpuPackMaskBits: true, gpuCheckSchedule: true,
  gpuSegmentRanges: true,
});

/** The entry points each native backend calls. */
const BACKEND_ENTRY_POINTS: Record<NativeBackendName, readonly string[]> = {
  cpu: [...CPU_KERNEL_ENTRY_POINTS, ...CANCEL_ENTRY_POINTS],
  cuda: [...GPU_ENTRY_POINTS, ...CANCEL_ENTRY_POINTS],
  rocm: [...GPU_ENTRY_POINTS, ...CANCEL_ENTRY_POINTS],
};

/** The entry points the package calls that `addon` lacks. */
function missingEntryPoints(addon: object): string[] {
  return [...CPU_KERNEL_ENTRY_POINTS, ...CANCEL_ENTRY_POINTS, ...GPU_ENTRY_POINTS]
    .filter((name) => typeof (addon as Record<string, unknown>)[name] !== 'function');
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
  /** Entry points the loaded addon lacks (a build older than the package); empty when none loaded. */
  missingEntryPoints: string[];
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

function notLoaded(error: string, attempts: LoadAttempt[] = []): NativeLoad {
  return { addon: null, variant: null, path: null, error, info: null, attempts, missingEntryPoints: [] };
}

function load(): NativeLoad {
  const use = (found: { addon: NativeAddon; info: NativeInfo }, file: string, attempts: LoadAttempt[]): NativeLoad => ({
    addon: found.addon, variant: found.info.variant, path: file, error: null, info: found.info, attempts,
    missingEntryPoints: missingEntryPoints(found.addon),
  });

  if (process.env.SPLASH_NO_NATIVE === '1') return notLoaded('native addon disabled by SPLASH_NO_NATIVE=1');

  const root = findPackageRoot(__dirname);
  const version = root === null ? null : packageVersion(root);
  const attempts: LoadAttempt[] = [];

  const override = process.env.SPLASH_ADDON_PATH;
  if (override) {
    const file = path.resolve(override);
    const found = tryLoad(file, 'override', version, attempts);
    return found ? use(found, file, attempts) : notLoaded(`SPLASH_ADDON_PATH=${override}: ${attempts[0].reason}`, attempts);
  }
  if (root === null) return notLoaded(`package root of ${PACKAGE_NAME} not found above ${__dirname}`);

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
  return notLoaded(describeFailures(attempts), attempts);
}

let memo: NativeLoad | undefined;

/** Loads the best addon variant on first call and returns the same result ever after. Never throws. */
export function loadNative(): NativeLoad {
  if (memo === undefined) {
    try {
      memo = load();
    } catch (e) {
      // load() records its own failures; this only guards against the unforeseen.
      memo = notLoaded(`native loader failed: ${message(e)}`);
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

/** A CUDA version number (1000 · major + 10 · minor) as "major.minor". */
function cudaVersionText(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}

/**
 * What to do when the NVIDIA driver is why CUDA finds no device: none at all, or one older than the
 * major CUDA version the addon's runtime was compiled with (a driver runs every runtime of its own
 * major version and older). Null when the driver is not the cause.
 */
export function cudaDriverAdvice(runtimeVersion: number, driverVersion: number): string | null {
  if (runtimeVersion <= 0) return null;
  const needed = `a driver for CUDA ${cudaVersionText(runtimeVersion)} or later`;
  const rebuild = 'or build the addon with your own CUDA toolkit: SPLASH_CUDA=1 npm rebuild splash-attention --build-from-source';
  if (driverVersion <= 0) return `no NVIDIA driver found: this build needs ${needed}; install one, ${rebuild}`;
  if (Math.floor(driverVersion / 1000) < Math.floor(runtimeVersion / 1000)) {
    return `the NVIDIA driver supports CUDA ${cudaVersionText(driverVersion)}, this build needs ${needed}; update it, ${rebuild}`;
  }
  return null;
}

function gpuStatus(gpu: GpuRuntimeInfo, label: string): NativeBackendStatus {
  if (gpu.deviceCount > 0) return { available: true, devices: devicesOf(gpu) };
  const advice = label === 'CUDA' ? cudaDriverAdvice(gpu.runtimeVersion, gpu.driverVersion) : null;
  const reason = `no ${label} device: ${gpu.error ?? 'the runtime reports 0 devices'}`;
  return { available: false, reason: advice === null ? reason : `${reason} (${advice})` };
}

/** Availability of a native backend for backends(): 'cpu', 'cuda' or 'rocm' (HIP). */
export function nativeBackendStatus(name: NativeBackendName): NativeBackendStatus {
  const status = runtimeStatus(name);
  if (!status.available) return status;
  const { path: file, missingEntryPoints: missing } = loadNative();
  const lacking = BACKEND_ENTRY_POINTS[name].filter((f) => missing.includes(f));
  if (lacking.length === 0) return status;
  return { available: false, reason: `the native addon at ${file} lacks ${lacking.join(', ')} (a stale build: rebuild it)`, devices: status.devices };
}

/** The loaded addon, for a native backend that is available here; Error saying why when it is not. */
export function nativeAddonFor(name: NativeBackendName): NativeAddon {
  const status = nativeBackendStatus(name);
  const { addon } = loadNative();
  if (!status.available || addon === null) {
    throw new Error(`backend '${name}' is not available: ${status.reason ?? 'unknown reason'}`);
  }
  return addon;
}

/** The GPU runtime the loaded addon was built for, or null (none loaded, or a CPU-only build). */
export function gpuBackendOf(): GpuBackendName | null {
  const { info } = loadNative();
  if (info?.cuda.compiled) return 'cuda';
  return info?.hip.compiled ? 'rocm' : null;
}

/** Whether the loaded addon has the runtime, and a device, for a native backend. */
function runtimeStatus(name: NativeBackendName): NativeBackendStatus {
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
