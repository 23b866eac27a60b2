// The native addon: it loads, info() describes it truthfully, GPU absence is an error string (never a
// crash), and the loader degrades to "nothing loaded" without throwing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadNative, nativeBackendStatus, type GpuRuntimeInfo, type NativeLoad } from '../lib/backends/native';

const ROOT = path.resolve(__dirname, '..');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
const hasNvidiaDevice = fs.existsSync('/dev/nvidiactl');
const hasAmdDevice = fs.existsSync('/dev/kfd');

/** Runs the loader in a fresh Node process (the loader memoises) and returns its result as JSON. */
function loadInChild(env: Record<string, string>, expr = 'n.loadNative()'): { status: number | null; value: unknown; stderr: string } {
  const code = `const n = require(${JSON.stringify(path.join(ROOT, 'lib/backends/native.ts'))});` +
    `process.stdout.write(JSON.stringify(${expr}));`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
    cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000,
  });
  let value: unknown = null;
  try { value = JSON.parse(r.stdout); } catch { /* left null: asserted by the caller */ }
  return { status: r.status, value, stderr: r.stderr };
}

function checkGpuShape(gpu: GpuRuntimeInfo, label: string): void {
  assert.equal(typeof gpu.compiled, 'boolean', `${label}.compiled`);
  assert.ok(Number.isInteger(gpu.deviceCount) && gpu.deviceCount >= 0, `${label}.deviceCount = ${gpu.deviceCount}`);
  assert.ok(gpu.error === null || typeof gpu.error === 'string', `${label}.error`);
  assert.ok(Number.isInteger(gpu.runtimeVersion) && Number.isInteger(gpu.driverVersion), `${label} versions`);
  assert.ok(Array.isArray(gpu.devices), `${label}.devices`);
  assert.equal(gpu.devices.length, gpu.deviceCount, `${label}: one entry per device`);
  gpu.devices.forEach((d, i) => {
    assert.equal(d.index, i);
    assert.ok(typeof d.name === 'string' && d.name.length > 0, `${label} device name`);
    assert.ok(typeof d.computeCapability === 'string' && d.computeCapability.length > 0);
    assert.ok(d.totalMemory > 0 && Number.isInteger(d.totalMemory), `${label} totalMemory = ${d.totalMemory}`);
  });
  if (!gpu.compiled) {
    assert.equal(gpu.deviceCount, 0);
    assert.match(gpu.error ?? '', /not compiled/);
  }
}

describe('native addon', () => {
  let ld: NativeLoad;
  before(() => { ld = loadNative(); });

  it('loads an addon from this package', () => {
    assert.equal(ld.error, null, `loader error: ${ld.error}`);
    assert.ok(ld.addon !== null && ld.info !== null);
    assert.ok(ld.path !== null && ld.path.startsWith(ROOT + path.sep) && ld.path.endsWith('.node'), `path ${ld.path}`);
    const used = ld.attempts.filter((a) => a.loaded && a.reason === null);
    assert.deepEqual(used.map((a) => a.path), [ld.path], 'exactly the chosen candidate is marked used');
    assert.equal(loadNative(), ld, 'memoised');
  });

  it('info() reports the package version, variant and compiled backends consistently', () => {
    const info = ld.addon!.info();
    assert.equal(info.version, PKG.version);
    assert.ok(['cpu', 'cuda', 'hip'].includes(info.variant), `variant ${info.variant}`);
    assert.equal(info.variant, ld.variant);
    const expected = { cpu: ['cpu'], cuda: ['cpu', 'cuda'], hip: ['cpu', 'rocm'] }[info.variant];
    assert.deepEqual(info.backends, expected);
    assert.equal(info.cuda.compiled, info.variant === 'cuda');
    assert.equal(info.hip.compiled, info.variant === 'hip');
    // hardware_concurrency and os.cpus() both count the online CPUs.
    assert.equal(info.threads, os.cpus().length);
    checkGpuShape(info.cuda, 'cuda');
    checkGpuShape(info.hip, 'hip');
  });

  it('cpuFeatures are booleans and agree with /proc/cpuinfo', function () {
    const f = ld.info!.cpuFeatures;
    const keys = ['sse42', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512vnni',
      'avx512bf16', 'avx512fp16', 'amxBf16'];
    assert.deepEqual(Object.keys(f).sort(), [...keys].sort());
    for (const k of keys) assert.equal(typeof (f as unknown as Record<string, unknown>)[k], 'boolean', k);
    if (process.platform !== 'linux' || process.arch !== 'x64') this.skip();
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    assert.ok(line, 'no flags line in /proc/cpuinfo');
    const flags = new Set(line.split(':')[1].trim().split(/\s+/));
    const pairs: [keyof typeof f, string][] = [['sse42', 'sse4_2'], ['avx', 'avx'], ['avx2', 'avx2'], ['fma', 'fma'],
      ['f16c', 'f16c'], ['avx512f', 'avx512f'], ['avx512bw', 'avx512bw'], ['avx512vl', 'avx512vl'],
      ['avx512vnni', 'avx512_vnni'], ['avx512bf16', 'avx512_bf16'], ['avx512fp16', 'avx512_fp16']];
    for (const [ours, linux] of pairs) assert.equal(f[ours], flags.has(linux), `${ours} vs /proc/cpuinfo ${linux}`);
    assert.ok(f.avx2 || !f.avx512f, 'AVX-512F without AVX2 is not a real CPU');
  });

  it('CUDA: no device is an error string, a device is fully described', () => {
    const cuda = ld.info!.cuda;
    if (!cuda.compiled) {
      assert.match(nativeBackendStatus('cuda').reason ?? '', /addon built without CUDA/);
      return;
    }
    // Repeated queries through a failing driver must keep answering the same way.
    const again = ld.addon!.info().cuda;
    assert.equal(again.deviceCount, cuda.deviceCount);
    const status = nativeBackendStatus('cuda');
    if (!hasNvidiaDevice) {
      assert.equal(cuda.deviceCount, 0);
      assert.ok(typeof cuda.error === 'string' && /^cudaGetDeviceCount failed: cudaError\w+: .+/.test(cuda.error), `error: ${cuda.error}`);
      assert.equal(again.error, cuda.error);
      assert.equal(status.available, false);
      assert.equal(status.reason, `no CUDA device: ${cuda.error}`);
    } else {
      assert.ok(cuda.deviceCount >= 1, `NVIDIA device node present but deviceCount ${cuda.deviceCount}: ${cuda.error}`);
      for (const d of cuda.devices) assert.match(d.computeCapability, /^\d+\.\d+$/);
      assert.equal(status.available, true);
      assert.equal(status.devices?.length, cuda.deviceCount);
    }
  });

  it('HIP: the loader never picks a HIP build without a device when splash.node loads', () => {
    const hipAttempt = ld.attempts.find((a) => a.kind === 'hip' && a.info !== null);
    const status = nativeBackendStatus('rocm');
    if (hipAttempt === undefined) {
      assert.equal(status.available, false);
      assert.ok(status.reason && status.reason.length > 0);
      return;
    }
    const hip = hipAttempt.info!.hip;
    checkGpuShape(hip, 'hip');
    assert.equal(hip.compiled, true);
    if (!hasAmdDevice) {
      assert.equal(hip.deviceCount, 0);
      assert.ok(hip.error && hip.error.startsWith('hipGetDeviceCount failed'), `error: ${hip.error}`);
      assert.equal(status.available, false);
      assert.equal(status.reason, `no ROCm device: ${hip.error}`);
      const mainLoaded = ld.attempts.some((a) => a.kind === 'main' && a.loaded);
      if (mainLoaded) assert.notEqual(ld.variant, 'hip');
    }
  });

  it('SPLASH_NO_NATIVE=1: nothing loads, the reason is given, nothing throws', function () {
    this.timeout(60_000); // child Node processes: seconds each on a busy machine, more under ASan
    const r = loadInChild({ SPLASH_NO_NATIVE: '1' });
    assert.equal(r.status, 0, r.stderr);
    const v = r.value as NativeLoad;
    assert.equal(v.addon, null);
    assert.equal(v.variant, null);
    assert.match(v.error ?? '', /SPLASH_NO_NATIVE/);
    const s = loadInChild({ SPLASH_NO_NATIVE: '1' }, "['cpu','cuda','rocm'].map(b => n.nativeBackendStatus(b))");
    for (const st of s.value as { available: boolean; reason?: string }[]) {
      assert.equal(st.available, false);
      assert.match(st.reason ?? '', /^native addon not loaded: .*SPLASH_NO_NATIVE/);
    }
  });

  it('SPLASH_ADDON_PATH to a missing or corrupt file: an error naming it, no throw', function () {
    this.timeout(60_000); // child Node processes: seconds each on a busy machine, more under ASan
    const missing = path.join(os.tmpdir(), `splash-missing-${process.pid}.node`);
    const r1 = loadInChild({ SPLASH_ADDON_PATH: missing });
    assert.equal(r1.status, 0, r1.stderr);
    assert.equal((r1.value as NativeLoad).addon, null);
    assert.ok((r1.value as NativeLoad).error?.includes(missing) && (r1.value as NativeLoad).error?.includes('not found'));

    const bogus = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'splash-')), 'bogus.node');
    fs.writeFileSync(bogus, 'this is not an ELF file');
    const r2 = loadInChild({ SPLASH_ADDON_PATH: bogus });
    assert.equal(r2.status, 0, r2.stderr);
    const v2 = r2.value as NativeLoad;
    assert.equal(v2.addon, null);
    assert.ok(v2.error?.includes(bogus), `error: ${v2.error}`);
    assert.equal(v2.attempts[0].loaded, false);
    assert.ok((v2.attempts[0].reason ?? '').length > 0);
  });

  it('SPLASH_ADDON_PATH to the chosen addon loads it with the same variant', function () {
    this.timeout(60_000); // child Node processes: seconds each on a busy machine, more under ASan
    const r = loadInChild({ SPLASH_ADDON_PATH: ld.path! });
    assert.equal(r.status, 0, r.stderr);
    const v = r.value as NativeLoad;
    assert.equal(v.error, null);
    assert.equal(v.path, ld.path);
    assert.equal(v.variant, ld.variant);
  });
});
