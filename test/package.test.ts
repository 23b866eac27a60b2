import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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
