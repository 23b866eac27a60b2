import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const root = path.join(__dirname, '..');
const cli = path.join(root, 'dist', 'cli.js');

function run(args: string[], env: NodeJS.ProcessEnv = {}): string {
  assert.ok(existsSync(cli), 'dist/cli.js is missing: run `npm install` (or `npm run build:ts`) first');
  return execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
}

describe('command line (built package)', function () {
  this.timeout(180_000);

  it('info lists every backend and the native addon status', () => {
    const out = run(['info']);
    for (const name of ['cuda', 'rocm', 'cpu', 'js', 'reference']) assert.match(out, new RegExp(`^\\s+${name}\\s+(available|unavailable)`, 'm'));
    assert.match(out, /native addon: /);
  });

  it('demo runs a causal forward + backward and reports small errors against the reference', () => {
    const out = run(['demo', '--heads', '2', '--seq', '128', '--dim', '32']);
    assert.match(out, /causal splash attention on '(\w+)'/);
    const errs = [...out.matchAll(/\b(out|logsumexp|dq|dk|dv) (\d\.\d+e[-+]\d+)/g)].map((m) => [m[1], Number(m[2])] as const);
    assert.equal(errs.length, 5, out);
    // float32 kernels against the float64 reference on unit-scale data: errors well under 1e-3.
    for (const [name, e] of errs) assert.ok(e < 1e-3, `${name} error ${e}`);
  });

  it('demo still runs on the js backend when the native addon cannot load', () => {
    const out = run(['demo', '--heads', '1', '--seq', '64', '--dim', '16'], { SPLASH_NO_NATIVE: '1' });
    assert.match(out, /on 'js'/);
  });

  it('bench --json prints one row per mask with positive timings', () => {
    const rows = JSON.parse(run(['bench', '--json', '--backend', 'js', '--seq', '128'])) as { mask: string; forwardMs: number }[];
    assert.deepEqual(rows.map((r) => r.mask), ['full', 'causal', 'local256']);
    for (const r of rows) assert.ok(r.forwardMs > 0);
  });

  it('the README usage example runs as written', () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const code = /## Usage\s+```js\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(code, 'README has no js usage block');
    // Inside the package folder, require('splash-attention') resolves to this package (self-reference).
    const dir = mkdtempSync(path.join(root, '.readme-'));
    try {
      writeFileSync(path.join(dir, 'example.js'), code);
      const out = execFileSync(process.execPath, [path.join(dir, 'example.js')], { encoding: 'utf8', timeout: 120_000 });
      assert.match(out, /^\w+ \[ 2, 256, 64 \] 32768\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
