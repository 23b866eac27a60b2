// One Node version's check of an installed splash-attention (test/install/node-matrix.sh runs it with
// each Node): the package loads through require() and import(), its addon is the prebuild of this
// platform, and one forward on the cpu backend matches the float64 reference. Plain CommonJS, no
// TypeScript loader, so it runs on every Node the package supports. Prints one JSON line; exits 1 on a
// failure.
//
// It is copied into the project that installed the package and run from there, so that both require()
// and import() resolve 'splash-attention' as that project's code would.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const project = __dirname;
const result = { node: process.version, ok: false };

/**
 * Relative-norm tolerance of the f32 forward against the float64 reference: 4x the largest error measured
 * with this input on the x86 kernel paths (2.6e-7 generic, 2.5e-7 avx2 and avx512, 2026-11-30). The
 * kernels decide it, not Node: Node 18, 22, 24 and 26 gave the same bits.
 */
const TOLERANCE = 1.1e-6;

async function main() {
  const pkgDir = path.dirname(require.resolve('splash-attention/package.json', { paths: [project] }));
  const sa = require('splash-attention');
  const { loadNative } = require(path.join(pkgDir, 'dist/backends/native.js'));
  const { lastCpuKernelIsa } = require(path.join(pkgDir, 'dist/backends/cpu.js'));
  const { randomNormal } = require(path.join(pkgDir, 'dist/random.js'));

  const ld = loadNative();
  result.addon = ld.path;
  result.hasBuildDir = fs.existsSync(path.join(pkgDir, 'build'));
  const prebuildDir = path.join(fs.realpathSync(pkgDir), 'prebuilds', `${process.platform}-${process.arch}`) + path.sep;
  if (ld.error !== null) throw new Error(`native addon not loaded: ${ld.error}`);
  if (!ld.path.startsWith(prebuildDir)) throw new Error(`loaded ${ld.path}, not a prebuild in ${prebuildDir}`);
  if (result.hasBuildDir) throw new Error('a build/ directory appeared: the install compiled');

  const esm = await import('splash-attention');
  if (esm.makeSplashMHA !== sa.makeSplashMHA) throw new Error('import() and require() give different exports');

  const [h, s, d] = [2, 256, 64];
  const t = (seed, scale = 1) => sa.fromFloat32(randomNormal(h * s * d, seed, scale), [h, s, d], 'float32');
  const [q, k, v] = [t(1, 1 / Math.sqrt(d)), t(2), t(3)];
  const mask = new sa.CausalMask([s, s]);
  const cpu = sa.makeSplashMHA(mask, { backend: 'cpu' });
  const out = sa.toFloat32(await cpu.forward(q, k, v));
  result.isa = lastCpuKernelIsa();
  const ref = sa.toFloat32(sa.makeSplashMHA(mask, { backend: 'reference' }).forwardSync(q, k, v));
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (out[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  result.error = Math.sqrt(num / den);
  result.tolerance = TOLERANCE;
  if (!(result.error <= TOLERANCE)) throw new Error(`forward error ${result.error} > ${TOLERANCE}`);
  result.ok = true;
}

main().catch((e) => {
  result.failure = String(e && e.stack ? e.stack : e);
}).finally(() => {
  console.log(JSON.stringify(result));
  process.exitCode = result.ok ? 0 : 1;
});
