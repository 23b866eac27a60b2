import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.join(__dirname, '..');
const API_NAMES = [
  'tensor', 'fromFloat32', 'toFloat32', 'FullMask', 'CausalMask', 'LocalMask', 'ChunkedCausalMask', 'DenseMask',
  'LogicalOr', 'LogicalAnd', 'MultiHeadMask', 'makeRandomMask', 'processMask', 'QKVLayout', 'makeSplashMHA',
  'makeSplashMQA', 'SplashAttentionKernel', 'backends', 'toDevice', 'DeviceTensor', 'renderMaskInfo',
];

function node(args: string[]): string {
  return execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: 60_000 });
}

describe('package entry points (built dist/)', () => {
  before(() => assert.ok(existsSync(path.join(root, 'dist', 'index.js')), 'dist/ is missing: run `npm install` first'));

  it('require() exposes every API.md name', () => {
    const names = JSON.parse(node(['-e', "console.log(JSON.stringify(Object.keys(require('splash-attention'))))"])) as string[];
    for (const n of API_NAMES) assert.ok(names.includes(n), `require lacks ${n}`);
  });

  it('import exposes the same names as named exports', () => {
    const names = JSON.parse(node(['--input-type=module', '-e',
      "import * as s from 'splash-attention'; console.log(JSON.stringify(Object.keys(s)))"])) as string[];
    for (const n of API_NAMES) assert.ok(names.includes(n), `import lacks ${n}`);
  });

  it('require() loads none of the optional plotting, docs or test packages', () => {
    // CommonJS packages show in require.cache; vega (ESM with top-level await) cannot be require()d
    // at all, so a static import of it would already fail the require() test above.
    const loaded = JSON.parse(node(['-e',
      "require('splash-attention'); console.log(JSON.stringify(Object.keys(require.cache)))"])) as string[];
    const heavy = loaded.filter((f) => /[\\/]node_modules[\\/](vega[^\\/]*|typedoc|@xmldom)[\\/]/.test(f));
    assert.deepEqual(heavy, []);
    assert.ok(loaded.some((f) => f.endsWith(path.join('dist', 'render-mask.js'))), 'the check saw the package load (render-mask.js)');
  });

  it('ships TypeScript declarations for the public API', () => {
    const dts = readFileSync(path.join(root, 'dist', 'index.d.ts'), 'utf8');
    for (const n of ['makeSplashMHA', 'CausalMask', 'MaskInfo', 'SplashOptions', 'BlockSizes', 'Tensor', 'DType', 'renderMaskInfo', 'RenderMaskOptions']) {
      assert.match(dts, new RegExp(`\\b${n}\\b`), `index.d.ts lacks ${n}`);
    }
  });
});

describe('package subpath splash-attention/tfjs', function () {
  this.timeout(30_000); // child Node processes: about a second each, more on a busy machine
  before(() => assert.ok(existsSync(path.join(root, 'dist', 'tfjs.js')), 'dist/tfjs.js is missing: run `npm run build:ts`'));

  it('require() and import both give splashAttention', () => {
    const viaRequire = node(['-e', "console.log(typeof require('splash-attention/tfjs').splashAttention)"]).trim();
    const viaImport = node(['--input-type=module', '-e',
      "import { splashAttention } from 'splash-attention/tfjs'; console.log(typeof splashAttention)"]).trim();
    assert.equal(viaRequire, 'function');
    assert.equal(viaImport, 'function');
  });

  it('ships declarations for the op', () => {
    const dts = readFileSync(path.join(root, 'dist', 'tfjs.d.ts'), 'utf8');
    assert.match(dts, /export declare function splashAttention\(/);
    assert.match(dts, /computeDtype\?: ComputeDType/);
    assert.match(dts, /sinks\?: TF\.Tensor/);
  });

  it('the package root never loads TensorFlow.js, also after a kernel call', () => {
    const loaded = JSON.parse(node(['-e', [
      "const s = require('splash-attention');",
      "const k = s.makeSplashMHA(new s.CausalMask([8, 8]), { saveResiduals: true });",
      "const t = () => s.tensor(new Float32Array(64).fill(0.5), [1, 8, 8]);",
      'k.forwardSync(t(), t(), t());',
      "console.log(JSON.stringify(Object.keys(require.cache).filter((f) => f.includes('@tensorflow'))));",
    ].join('\n')])) as string[];
    assert.deepEqual(loaded, []);
    // The same probe sees tfjs once the subpath is loaded, so the check above can fail.
    const withOp = node(['-e', "require('splash-attention/tfjs'); console.log(Object.keys(require.cache).some((f) => f.includes('@tensorflow/tfjs-core')))"]);
    assert.equal(withOp.trim(), 'true');
  });

  it('without @tensorflow/tfjs-core installed: the root works, the subpath throws an Error saying what to install', () => {
    // A copy of the built package in a folder whose node_modules has no TensorFlow.js at all.
    const dir = mkdtempSync(path.join(tmpdir(), 'splash-no-tfjs-'));
    try {
      const pkg = path.join(dir, 'node_modules', 'splash-attention');
      mkdirSync(pkg, { recursive: true });
      cpSync(path.join(root, 'dist'), path.join(pkg, 'dist'), { recursive: true });
      cpSync(path.join(root, 'package.json'), path.join(pkg, 'package.json'));
      symlinkSync(path.join(root, 'node_modules', 'node-gyp-build'), path.join(dir, 'node_modules', 'node-gyp-build'));
      const env = { ...process.env, NODE_PATH: '', SPLASH_NO_NATIVE: '1' };
      const run = (args: string[]): string => execFileSync(process.execPath, args, { cwd: dir, encoding: 'utf8', env, timeout: 60_000 });
      assert.equal(run(['-e', "console.log(typeof require('splash-attention').makeSplashMHA)"]).trim(), 'function');
      const viaRequire = JSON.parse(run(['-e', [
        "try { require('splash-attention/tfjs'); console.log('null') }",
        'catch (e) { console.log(JSON.stringify({ name: e.constructor.name, message: e.message })) }',
      ].join('\n')])) as { name: string; message: string } | null;
      const viaImport = JSON.parse(run(['--input-type=module', '-e', [
        "try { await import('splash-attention/tfjs'); console.log('null') }",
        'catch (e) { console.log(JSON.stringify({ name: e.constructor.name, message: e.message })) }',
      ].join('\n')])) as { name: string; message: string } | null;
      for (const err of [viaRequire, viaImport]) {
        assert.ok(err, 'loading the subpath did not throw');
        assert.equal(err.name, 'Error');
        assert.match(err.message, /npm install @tensorflow\/tfjs-core @tensorflow\/tfjs-backend-cpu/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
