// The published package: `npm pack` ships the right files, and the tarball installs and loads its
// prebuilt addon on a machine with no compiler (test/install/pack-install.sh does the work).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const PLATFORM = `${process.platform}-${process.arch}`;

interface PackResult { filename: string; files: { path: string }[] }
interface LoadResult {
  pkgDir: string; hasBuildDir: boolean; path: string | null; variant: string | null; error: string | null;
  version: string | null; loaderThrew?: string; requireError?: string;
  backends?: { name: string; available: boolean; reason?: string }[] | null;
  esmBackends?: boolean; esmError?: string;
}

describe('npm pack + install from prebuilds', function () {
  this.timeout(6 * 60_000);  // builds a CPU-only prebuild first when the repo has none
  let work: string;
  let run: ReturnType<typeof spawnSync>;
  let files: string[];
  let load: LoadResult;

  before(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'splash-pack-'));
    run = spawnSync(path.join(ROOT, 'test/install/pack-install.sh'), [work], { encoding: 'utf8', timeout: 5 * 60_000 });
    if (run.status === 0) {
      files = (JSON.parse(fs.readFileSync(path.join(work, 'pack.json'), 'utf8')) as PackResult[])[0].files.map((f) => f.path);
      load = JSON.parse(fs.readFileSync(path.join(work, 'load.json'), 'utf8')) as LoadResult;
    }
  });
  after(() => {
    if (run?.status === 0 && !process.env.SPLASH_KEEP_TMP) fs.rmSync(work, { recursive: true, force: true });
  });

  it('the pack-install script succeeds', () => {
    assert.equal(run.status, 0, `pack-install.sh failed (work dir ${work}):\n${String(run.stdout).slice(-4000)}\n${String(run.stderr).slice(-4000)}`);
  });

  it('the tarball holds dist, prebuilds, build files and native sources, and nothing else', function () {
    if (run.status !== 0) this.skip();
    for (const f of ['package.json', 'dist/index.js', 'dist/index.d.ts', 'CMakeLists.txt', 'binding.gyp',
      'scripts/cmake-js-prebuild.sh', 'native/include/splash/params.h', 'native/addon/addon.cc',
      'native/addon/info.cc', 'native/cpu/cpu_features.cc', 'native/addon/no_gpu.cc', 'native/gpu/compat.h',
      'native/gpu/device_query.cu']) {
      assert.ok(files.includes(f), `${f} missing from the tarball`);
    }
    const prebuilt = files.filter((f) => f.startsWith(`prebuilds/${PLATFORM}/`) && f.endsWith('.node'));
    assert.ok(prebuilt.length >= 1, `no prebuilds/${PLATFORM}/*.node in the tarball`);
    const forbidden = files.filter((f) => /^(test|build|bench|node_modules)\//.test(f) || f.endsWith('.tgz'));
    assert.deepEqual(forbidden, [], 'files that must not ship');
  });

  it('installs offline with no compiler, by running node-gyp-build, and builds nothing', function () {
    if (run.status !== 0) this.skip();
    const log = fs.readFileSync(path.join(work, 'install.log'), 'utf8');
    assert.match(log, /^> splash-attention@\S+ install\n> node-gyp-build$/m, 'the install script did not run');
    assert.doesNotMatch(log, /gyp info|cmake-js|CXX\(target\)/, 'the install compiled instead of using a prebuild');
    assert.equal(load.hasBuildDir, false, 'a build/ directory appeared in the installed package');
  });

  it('the installed package loads its prebuilt addon', function () {
    if (run.status !== 0) this.skip();
    assert.equal(load.loaderThrew, undefined);
    assert.equal(load.error, null);
    assert.ok(load.path?.startsWith(path.join(load.pkgDir, 'prebuilds', PLATFORM) + path.sep), `loaded ${load.path}`);
    assert.equal(load.version, PKG.version);
    assert.ok(load.variant === 'cpu' || load.variant === 'cuda' || load.variant === 'hip');
  });

  it('the package root imports and lists all five backends', function () {
    if (run.status !== 0) this.skip();
    assert.equal(load.requireError, undefined);
    assert.equal(load.esmError, undefined, 'import() of the installed package failed');
    assert.equal(load.esmBackends, true, 'import() of the installed package lacks backends()');
    assert.ok(Array.isArray(load.backends), 'backends() is not exported');
    assert.deepEqual(load.backends!.map((b) => b.name).sort(), ['cpu', 'cuda', 'js', 'reference', 'rocm']);
    const cpu = load.backends!.find((b) => b.name === 'cpu')!;
    assert.ok(cpu.available || !/native addon not loaded/.test(cpu.reason ?? ''), `cpu: ${cpu.reason}`);
  });
});
