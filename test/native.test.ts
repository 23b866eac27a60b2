// The native addon: it loads, info() describes it truthfully, GPU absence is an error string (never a
// crash), and the loader degrades to "nothing loaded" without throwing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { amdGpuTargets, compiledHipTargets, gfxName, linksHipRuntime } from '../lib/backends/hip-probe';
import { cudaDriverAdvice, loadNative, nativeBackendStatus, type GpuRuntimeInfo, type NativeLoad } from '../lib/backends/native';

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
      'avx512bf16', 'avx512fp16', 'amxBf16', 'neon', 'armBf16'];
    assert.deepEqual(Object.keys(f).sort(), [...keys].sort());
    for (const k of keys) assert.equal(typeof (f as unknown as Record<string, unknown>)[k], 'boolean', k);
    if (process.platform === 'linux' && process.arch === 'arm64') {
      const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('Features'));
      assert.ok(line, 'no Features line in /proc/cpuinfo');
      const flags = new Set(line.split(':')[1].trim().split(/\s+/));
      assert.equal(f.neon, flags.has('asimd'), 'neon vs /proc/cpuinfo asimd');
      assert.equal(f.armBf16, flags.has('bf16'), 'armBf16 vs /proc/cpuinfo bf16');
      assert.ok(!f.avx2 && !f.avx512f, 'x86 features reported on arm64');
      return;
    }
    if (process.platform !== 'linux' || process.arch !== 'x64') this.skip();
    assert.ok(!f.neon && !f.armBf16, 'arm64 features reported on x86-64');
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
      const advice = cudaDriverAdvice(cuda.runtimeVersion, cuda.driverVersion);
      assert.equal(status.reason, `no CUDA device: ${cuda.error}${advice === null ? '' : ` (${advice})`}`);
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

  it('a missing or old NVIDIA driver is named in the reason, with the version needed and how to rebuild', () => {
    // CUDA versions are 1000 * major + 10 * minor; a driver runs every runtime of its major version.
    assert.equal(cudaDriverAdvice(13000, 13000), null);
    assert.equal(cudaDriverAdvice(13020, 13000), null);
    assert.equal(cudaDriverAdvice(0, 0), null);
    const none = cudaDriverAdvice(13000, 0) ?? '';
    assert.match(none, /^no NVIDIA driver found: this build needs a driver for CUDA 13\.0 or later/);
    const old = cudaDriverAdvice(13000, 12040) ?? '';
    assert.match(old, /^the NVIDIA driver supports CUDA 12\.4, this build needs a driver for CUDA 13\.0 or later/);
    for (const text of [none, old]) assert.match(text, /SPLASH_CUDA=1 npm rebuild splash-attention --build-from-source$/);
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

// ---- the HIP addon is loaded only where a GPU it has code for is present (hip-probe.ts) ---------------------

/** A KFD topology directory with one CPU node and GPU nodes of the given gfx_target_versions. */
function fakeTopology(versions: number[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'splash-kfd-'));
  [0, ...versions].forEach((v, i) => {
    fs.mkdirSync(path.join(dir, String(i)));
    fs.writeFileSync(path.join(dir, String(i), 'properties'), `cpu_cores_count ${v === 0 ? 8 : 0}\nsimd_count ${v === 0 ? 0 : 1216}\ngfx_target_version ${v}\n`);
  });
  return dir;
}

describe('HIP probe', () => {
  it('names GPUs from the driver\'s gfx_target_version', () => {
    assert.deepEqual([90010, 90402, 90500, 90008, 100300, 110000].map(gfxName),
      ['gfx90a', 'gfx942', 'gfx950', 'gfx908', 'gfx1030', 'gfx1100']);
  });

  it('reads the GPU nodes of a topology directory (CPU nodes and a missing driver give none)', () => {
    assert.deepEqual(amdGpuTargets(fakeTopology([90402, 90402, 110000])), ['gfx942', 'gfx942', 'gfx1100']);
    assert.deepEqual(amdGpuTargets(fakeTopology([])), []);
    assert.deepEqual(amdGpuTargets(path.join(os.tmpdir(), `splash-no-kfd-${process.pid}`)), []);
  });

  it('finds the GPU targets of a binary\'s offload bundles, and whether it links the HIP runtime', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'splash-bundle-')), 'x.node');
    fs.writeFileSync(file, Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2]),
      Buffer.from('__CLANG_OFFLOAD_BUNDLE__ host-x86_64-unknown-linux-gnu hipv4-amdgcn-amd-amdhsa--gfx942:xnack-\0' +
        'hipv4-amdgcn-amd-amdhsa--gfx90a\0hipv4-amdgcn-amd-amdhsa--gfx942\0', 'latin1')]));
    assert.deepEqual(compiledHipTargets(file), ['gfx90a', 'gfx942']);
    assert.equal(linksHipRuntime(file), false);
    const hip = [path.join(ROOT, 'build', 'Release', 'splash_hip.node'),
      path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`, 'hip', 'splash_hip.node')].find((f) => fs.existsSync(f));
    if (hip !== undefined) {
      assert.equal(linksHipRuntime(hip), true);
      assert.ok(compiledHipTargets(hip).length >= 1, 'the built HIP addon holds code objects');
      assert.deepEqual(compiledHipTargets(hip).filter((t) => t === 'gfx940' || t === 'gfx941'), [],
        'no code for pre-production MI300 targets (every MI300 is gfx942)');
    }
    const loaded = loadNative();
    if (loaded.path !== null && loaded.variant !== 'hip') assert.equal(linksHipRuntime(loaded.path), false);
  });

  // The real HIP addon against a stand-in libamdhip64 whose every function logs "<pid> <name>" and
  // aborts: a process that calls into HIP dies and leaves its pid in the log.
  describe('loading the package with the HIP addon present', () => {
    // The file the loader tries first: the build's, or the prebuild it was moved to (npm run prebuildify).
    const hipAddon = [path.join(ROOT, 'build', 'Release', 'splash_hip.node'),
      path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`, 'hip', 'splash_hip.node')].find((f) => fs.existsSync(f)) ?? '';
    let stubDir: string;
    let compiled: string[];

    before(function () {
      this.timeout(60_000);
      if (hipAddon === '' || spawnSync('cc', ['--version']).status !== 0 || spawnSync('nm', ['--version']).status !== 0) {
        console.log('      skipped: needs a built splash_hip.node (SPLASH_HIP=1 npm run build), cc and nm');
        this.skip();
      }
      compiled = compiledHipTargets(hipAddon);
      const nm = spawnSync('nm', ['-D', '--undefined-only', hipAddon], { encoding: 'utf8' });
      assert.equal(nm.status, 0, nm.stderr);
      // Each imported HIP function with its symbol version (hip_4.2, hip_5.1, ...): the stub defines
      // them all under the same versions, or the dynamic loader refuses it.
      const imports = [...nm.stdout.matchAll(/\bU (\w*hip\w*)@+(\S+)/g)].map((m) => ({ name: m[1], version: m[2] }));
      const symbols = imports.map((i) => i.name);
      assert.ok(symbols.includes('__hipRegisterFatBinary') && symbols.includes('hipGetDeviceCount'), symbols.join(' '));
      stubDir = fs.mkdtempSync(path.join(os.tmpdir(), 'splash-hipstub-'));
      const c = ['#include <stdio.h>', '#include <stdlib.h>', '#include <unistd.h>',
        'static void called(const char* name) {',
        '  FILE* f = fopen(getenv("SPLASH_HIP_STUB_LOG"), "a");',
        '  if (f) { fprintf(f, "%d %s\\n", (int)getpid(), name); fclose(f); }',
        '  abort();',
        '}',
        ...symbols.map((name) => `void ${name}(void) { called("${name}"); }`)].join('\n');
      fs.writeFileSync(path.join(stubDir, 'stub.c'), c);
      const versions = [...new Set(imports.map((i) => i.version))];
      fs.writeFileSync(path.join(stubDir, 'stub.map'), versions.map((v) =>
        `${v} { global: ${imports.filter((i) => i.version === v).map((i) => `${i.name};`).join(' ')} };`).join('\n') + '\n');
      const cc = spawnSync('cc', ['-shared', '-fPIC', '-o', path.join(stubDir, 'libamdhip64.so.5'), path.join(stubDir, 'stub.c'),
        '-Wl,-soname,libamdhip64.so.5', `-Wl,--version-script=${path.join(stubDir, 'stub.map')}`], { encoding: 'utf8' });
      assert.equal(cc.status, 0, cc.stderr);
    });

    /** Loads the package in a child with the stub runtime and `topology`; what it reported and who called HIP. */
    function loadWith(topology: string) {
      const log = path.join(stubDir, `calls-${Math.random().toString(36).slice(2)}.log`);
      const code = `const pkg = require(${JSON.stringify(path.join(ROOT, 'lib/index.ts'))});` +
        `const n = require(${JSON.stringify(path.join(ROOT, 'lib/backends/native.ts'))});` +
        'const rocm = pkg.backends().find((b) => b.name === "rocm");' +
        'process.stdout.write(JSON.stringify({ variant: n.loadNative().variant, attempts: n.loadNative().attempts, rocm }));';
      // The package's own choice of addon: no SPLASH_ADDON_PATH (npm run test:asan sets one) or SPLASH_NO_NATIVE.
      const { SPLASH_ADDON_PATH: _path, SPLASH_NO_NATIVE: _none, ...env } = process.env;
      const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
        cwd: ROOT, encoding: 'utf8', timeout: 60_000,
        env: { ...env, LD_LIBRARY_PATH: stubDir, SPLASH_KFD_TOPOLOGY: topology, SPLASH_HIP_STUB_LOG: log },
      });
      let value: { variant: string | null; attempts: { path: string; kind: string; reason: string | null; declined?: boolean }[]; rocm: { available: boolean; reason?: string } } | null = null;
      try { value = JSON.parse(r.stdout); } catch { /* asserted by the callers */ }
      const calls = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : [];
      return { r, value, calls, own: calls.filter((l) => l.startsWith(`${r.pid} `)) };
    }

    function declinedHip(value: NonNullable<ReturnType<typeof loadWith>['value']>) {
      return value.attempts.find((a) => a.kind === 'hip' && a.path === hipAddon);
    }

    it('control: with a GPU the addon has code for, it is loaded, and the stub sees the HIP call', function () {
      this.timeout(60_000);
      const m = /^gfx(\d+)([0-9a-f])([0-9a-f])$/.exec(compiled[0]);
      assert.ok(m, compiled[0]);
      const v = Number(m[1]) * 10000 + parseInt(m[2], 16) * 100 + parseInt(m[3], 16);  // gfxName's inverse
      assert.equal(gfxName(v), compiled[0]);
      const { r, own } = loadWith(fakeTopology([v]));
      assert.equal(r.signal, 'SIGABRT', `expected the stub to abort the loading process: ${r.status} ${r.stderr.slice(-500)}`);
      assert.ok(own.some((l) => / __hipRegisterFatBinary$/.test(l)), own.join('; '));
    });

    for (const [label, versions] of [['no AMD GPU', null], ['only a GPU without code objects (gfx1100)', [110000]]] as const) {
      it(`${label}: the package loads and never calls into HIP`, function () {
        this.timeout(60_000);
        const topology = versions === null ? path.join(os.tmpdir(), `splash-no-kfd-${process.pid}`) : fakeTopology([...versions]);
        const { r, value, calls } = loadWith(topology);
        assert.equal(r.status, 0, `${r.signal ?? ''} ${r.stderr.slice(-500)}`);
        assert.deepEqual(calls, [], 'no process called into HIP');
        assert.ok(value !== null);
        assert.notEqual(value.variant, 'hip');
        const hip = declinedHip(value);
        assert.equal(hip?.declined, true);
        assert.match(hip?.reason ?? '', versions === null ? /^not loaded: no AMD GPU \(/ : /^not loaded: no AMD GPU this build has code for \(GPUs gfx1100; code objects for gfx/);
        assert.equal(value.rocm.available, false);
        assert.equal(value.rocm.reason, `no ROCm device: ${hip?.reason}`);
      });
    }

    it('a covered and an uncovered GPU: a child process tries the runtime first, and only the child dies', function () {
      this.timeout(60_000);
      assert.ok(compiled.includes('gfx90a'), `the HIP build targets gfx90a: ${compiled.join(', ')}`);
      const { r, value, calls, own } = loadWith(fakeTopology([90010, 110000]));
      assert.equal(r.status, 0, `${r.signal ?? ''} ${r.stderr.slice(-500)}`);
      assert.ok(calls.length > 0, 'the probing child called into HIP');
      assert.deepEqual(own, [], 'the loading process itself never did');
      assert.match(declinedHip(value!)?.reason ?? '', /tried in a child process, failed \(killed by SIGABRT\)/);
      assert.notEqual(value!.variant, 'hip');
    });
  });
});
