import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { allElements, byClass, checkSvg, texts } from './support/svg';

const root = path.join(__dirname, '..');
const cli = path.join(root, 'dist', 'cli.js');

function run(args: string[], env: NodeJS.ProcessEnv = {}): string {
  assert.ok(existsSync(cli), 'dist/cli.js is missing: run `npm install` (or `npm run build:ts`) first');
  return execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
}

/** The CLI's exit status, stdout and stderr (for commands expected to fail). */
function runStatus(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  assert.ok(existsSync(cli), 'dist/cli.js is missing: run `npm install` (or `npm run build:ts`) first');
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The grid rows of each head section of `mask` output, keyed by the section heading's head list. */
function maskGrids(out: string): Map<string, string[]> {
  const grids = new Map<string, string[]>();
  const lines = out.split('\n');
  lines.forEach((line, i) => {
    const m = /^(heads? [\d, –]+):/.exec(line);
    if (!m || !/q\\kv/.test(lines[i + 1] ?? '')) return;
    const labelWidth = lines[i + 1].indexOf('q\\kv') + 4;
    const rows: string[] = [];
    for (let j = i + 2; j < lines.length && lines[j] !== ''; j++) rows.push(lines[j].slice(labelWidth + 1));
    grids.set(m[1], rows);
  });
  return grids;
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

describe('command line: mask', function () {
  this.timeout(60_000);

  it('draws one head per spec form (--heads), each with its known block pattern', () => {
    // S = 512 in 64-token blocks: an 8 × 8 block map per head.
    const specs = ['full', 'causal', 'local:64,0', 'chunked:128', 'random:0.5,3', 'docs:128,384', 'causal:-64'];
    const out = run(['mask', '--seq', '512', '--block', '64,64', '--heads', ...specs]);
    const grids = maskGrids(out);
    assert.deepEqual([...grids.keys()], specs.map((_, h) => `head ${h}`), out);
    const cells = (h: number) => grids.get(`head ${h}`)?.map((row) => [...row]) ?? [];
    const expect = (h: number, rule: (r: number, c: number) => string) => {
      const g = cells(h);
      assert.equal(g.length, 8, `head ${h} (${specs[h]}): rows`);
      for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) assert.equal(g[r][c], rule(r, c), `head ${h} (${specs[h]}) block ${r},${c}`);
    };
    expect(0, () => '█');
    expect(1, (r, c) => (c === r ? '▒' : c < r ? '█' : '·'));
    expect(2, (r, c) => (c === r || c === r - 1 ? '▒' : '·')); // 64 keys back: the diagonal and the block before
    expect(3, (r, c) => (Math.floor(r / 2) !== Math.floor(c / 2) || c > r ? '·' : c === r ? '▒' : '█')); // chunks of 2 blocks
    expect(4, () => '▒'); // half the elements of every 64 × 64 block: all partial
    expect(5, (r, c) => ((r < 2) === (c < 2) ? '█' : '·')); // documents on block boundaries: full squares
    expect(6, (r, c) => (c === r - 1 ? '▒' : c < r - 1 ? '█' : '·'));
    assert.match(out, /^stats: 448 blocks over 7 heads: /m);
  });

  it('takes and / or / parentheses, --kv and --window, and writes --svg', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'splash-mask-'));
    try {
      const file = path.join(dir, 'mask.svg');
      const out = run(['mask', '(chunked:256', 'or', 'local:64,64)', 'and', 'causal', '--seq', '1024', '--kv', '768',
        '--window', '250:280,200:260', '--svg', file]);
      assert.match(out, /^MaskInfo: q 1024 × kv 768 tokens in 8 × 6 blocks of 128 × 128; 1 head$/m);
      assert.match(out, /^elements of head 0, q \[250, 280\) × kv \[200, 260\)/m);
      assert.match(out, new RegExp(`^wrote ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(\\d+\\.\\d KiB\\)$`, 'm'));
      const doc = checkSvg(readFileSync(file, 'utf8'));
      assert.equal(byClass(doc, 'block').length, 8 * 6);
      assert.equal(byClass(doc, 'element-window').length, 1);
      const [grid] = maskGrids(out).values();
      // Chunks of two blocks (full below the diagonal inside a chunk) or'ed with a ±64-token band,
      // and-ed with causal: the band makes the block left of each chunk's first diagonal block partial.
      assert.deepEqual(grid, ['▒·····', '█▒····', '·▒▒···', '··█▒··', '···▒▒·', '····█▒', '·····▒', '······']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--help documents the spec grammar', () => {
    const out = run(['mask', '--help']);
    for (const form of ['full', 'causal[:OFFSET]', 'local:LEFT,RIGHT', 'chunked:SIZE', 'random:P[,SEED]', 'docs:LEN', "'and' binds tighter than 'or'"]) {
      assert.ok(out.includes(form), `--help lacks ${form}`);
    }
    assert.match(runStatus(['--help']).stderr, /mask <spec> \[--seq N\] \[--kv N\] \[--block Q,KV\] \[--heads spec…\]/);
  });

  const bad: [string[], RegExp][] = [
    [['caual'], /^splash-attention mask: spec 'caual', word 1: expected a mask \(full, causal/],
    [['causal', 'and'], /^splash-attention mask: spec 'causal and': expected a mask .* got the end of the spec/],
    [['(causal', 'or', 'full'], /expected '\)' to close the '\('/],
    [['local:8'], /local:8: expected 'local:LEFT,RIGHT\[,OFFSET\]', got 1 argument/],
    [['random:2'], /random:2: P: expected a probability in \[0, 1\], got '2'/],
    [['docs:100,100', '--seq', '256'], /docs:100,100: expected document lengths adding up to the sequence length/],
    [[], /expected a mask spec, such as causal .* got none/],
    [['causal', '--heads', 'full'], /expected either <spec> or --heads, got both/],
    [['causal', '--block', '64'], /--block: expected Q,KV \(two positive integers\), got 64/],
    [['causal', '--seq', '0'], /--seq: expected a positive integer, got 0/],
    [['causal', '--head', '1'], /--head: expected an integer in \[0, 0\] \(the MaskInfo has 1 head\), got 1/],
    [['causal', '--width', '10'], /--width: expected an integer ≥ 20 \(characters\), got 10/],
    [['causal', '--window', '0:10'], /--window: expected Q0:Q1,KV0:KV1 \(token positions\), got 0:10/],
    [['causal', '--colour'], /unknown option --colour/],
  ];
  for (const [args, message] of bad) {
    it(`mask ${args.join(' ') || '(no spec)'} exits 2 with a clear message`, () => {
      const r = runStatus(['mask', ...args]);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, message);
      assert.match(r.stderr, /run 'splash-attention mask --help' for the spec grammar/);
    });
  }
});

describe('command line: bench plot and progress', function () {
  this.timeout(120_000);
  /** The bar's frame: a line cleared and redrawn in place. */
  const BAR = /\r\x1b\[2K\[[█·]+\] \d+ %/;

  it('bench --plot writes a valid SVG with a forward and a backward line per backend and mask', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'splash-plot-'));
    try {
      const file = path.join(dir, 'bench.svg');
      // CI unset: the bar would still stay off, because stderr is a pipe here.
      const r = runStatus(['bench', '--backend', 'js', '--sizes', '64,128', '--plot', file], { CI: '' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '', 'nothing on stderr when it is not a terminal');
      assert.doesNotMatch(r.stdout, /\r|\x1b/);
      assert.equal(r.stdout.split('\n').filter((l) => /^js\s+(full|causal|local256)\s+4\s+(64|128)\s/.test(l)).length, 6, r.stdout);
      assert.match(r.stdout, /^wrote .*bench\.svg$/m);
      const doc = checkSvg(readFileSync(file, 'utf8'));
      assert.deepEqual(byClass(doc, 'role-legend-label').flatMap(texts), ['js forward', 'js backward']);
      const lines = byClass(doc, 'mark-line').flatMap((g) => allElements(g).filter((e) => e.localName === 'path'));
      assert.equal(lines.length, 3 * 2, 'a forward and a backward line in each of 3 panels');
      const all = texts(doc.documentElement as never);
      for (const t of ['full', 'causal', 'local256', 'sequence length S (tokens)']) assert.ok(all.includes(t), t);
      assert.ok(all.some((t) => /^throughput \(GFLOP\/s\)/.test(t)), 'y axis title with its unit');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bench --json prints only JSON, with no progress anywhere', () => {
    const r = runStatus(['bench', '--json', '--backend', 'js', '--seq', '64'], { CI: '' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal((JSON.parse(r.stdout) as unknown[]).length, 3);
  });

  it('draws the bar on a real terminal, and not with --json or in CI there either', function () {
    // `script` (util-linux) runs the command on a pseudo-terminal: stderr is a TTY there.
    if (spawnSync('script', ['--version']).status !== 0) this.skip();
    const onTty = (args: string, env: NodeJS.ProcessEnv) => spawnSync('script', ['-qec', `"${process.execPath}" "${cli}" ${args}`, '/dev/null'], {
      encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env },
    }).stdout;
    assert.match(onTty('bench --backend js --seq 64', { CI: '' }), BAR);
    assert.doesNotMatch(onTty('bench --backend js --seq 64', { CI: 'true' }), BAR);
    assert.doesNotMatch(onTty('bench --json --backend js --seq 64', { CI: '' }), BAR);
  });
});
