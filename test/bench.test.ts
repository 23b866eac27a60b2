// The benchmark scripts still run: tiny sizes, child processes, no timing assertions (benchmarks
// live in bench/, DESIGN.md). The onnxruntime peer is never installed from here (--no-peer).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { loadNative } from '../lib/backends/native';
import { allElements, byClass, checkSvg, texts } from './support/svg';

const root = path.join(__dirname, '..');

/** `npm run bench -- <args>` without npm: node --import tsx bench/run.ts <args>. */
function bench(args: string[]): { status: number | null; out: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'bench', 'run.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}`, stderr: r.stderr };
}

interface CpuRow {
  backend: string;
  pass: string;
  dtype: string;
  mask: string;
  seq: number;
  ms: number;
  reps: number;
  pairs: number;
  gflops: number;
}

describe('benchmark scripts (tiny sizes)', function () {
  this.timeout(90_000);

  it('cpu --quick --backend js prints a row per pass, dtype and mask and writes its JSON and plot', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'splash-bench-'));
    try {
      const file = path.join(dir, 'cpu.json');
      const plot = path.join(dir, 'cpu.svg');
      const { status, out, stderr } = bench(['cpu', '--quick', '--backend', 'js', '--no-peer', '--out', file, '--plot', plot]);
      assert.equal(status, 0, out);
      // stderr is a pipe here: no progress bar, and nothing else either.
      assert.equal(stderr, '');
      assert.doesNotMatch(out, /\r|\x1b/);
      assert.match(out, /^(peak FMA throughput: \d+\.\d GFLOP\/s|peak: skipped — )/m);
      assert.match(out, /peer: skipped \(--no-peer\)/);
      const masks = ['full', 'causal', 'local64', 'chunked128', 'packed8', 'random50'];
      const printed = [...out.matchAll(/^js\s+(fwd|bwd|bwd-fused)\s+(f32|bf16)\s+(\S+)\s+2\s+256\s+64\s+\d+\.\d/gm)];
      // fwd + bwd for 6 masks × 2 dtypes, plus the fused backward for full and causal × 2 dtypes.
      assert.equal(printed.length, 6 * 2 * 2 + 2 * 2, out);
      assert.deepEqual([...new Set(printed.map((m) => m[3]))], masks);
      assert.match(out, /causal \/ full time, fwd f32/);

      const report = JSON.parse(readFileSync(file, 'utf8')) as { backend: string; rows: CpuRow[] };
      assert.equal(report.backend, 'js');
      assert.equal(report.rows.length, printed.length);
      for (const r of report.rows) assert.ok(r.ms > 0 && r.gflops > 0 && r.reps >= 1, JSON.stringify(r));
      // FLOPs count only allowed pairs, segment ids included (S = 256, 8 documents of 32).
      const pairs = (mask: string) => report.rows.find((r) => r.mask === mask)?.pairs;
      assert.equal(pairs('full'), 256 * 256);
      assert.equal(pairs('causal'), (256 * 257) / 2);
      assert.equal(pairs('packed8'), 8 * ((32 * 33) / 2));
      assert.equal(pairs('chunked128'), 2 * ((128 * 129) / 2));
      // local window 64 (left only): row i sees min(i, 64) + 1 keys.
      let local = 0;
      for (let i = 0; i < 256; i++) local += Math.min(i, 64) + 1;
      assert.equal(pairs('local64'), local);

      // The plot: forward throughput of each dtype in one panel per mask (S = 256 only: one point each).
      const doc = checkSvg(readFileSync(plot, 'utf8'));
      assert.deepEqual(byClass(doc, 'role-legend-label').flatMap(texts), ['splash js f32', 'splash js bf16']);
      const lines = byClass(doc, 'mark-line').flatMap((g) => allElements(g).filter((e) => e.localName === 'path'));
      assert.equal(lines.length, masks.length * 2);
      const all = texts(doc.documentElement as never);
      for (const m of masks) assert.ok(all.includes(m), `panel ${m}`);
      assert.ok(all.includes('forward GFLOP/s') || all.includes('forward GFLOP/s, log scale'), 'y axis title with its unit');
      assert.ok(all.some((t) => t.includes('onnxruntime-node: not run (--no-peer).')), 'the subtitle says the peer did not run');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('mask-info --quick times its three masks', () => {
    const { status, out } = bench(['mask-info', '--quick']);
    assert.equal(status, 0, out);
    const rows = out.split('\n').filter((l) => /\d+\.\d ms\s+heap/.test(l));
    assert.equal(rows.length, 3, out);
  });

  it('js runs on a tiny size (it has no --quick; its size flags serve)', () => {
    const { status, out } = bench(['js', '--heads', '2', '--seq', '128', '--dim', '32', '--repeats', '1']);
    assert.equal(status, 0, out);
    assert.match(out, /^full\s+\|\s+2\s+\|\s+128\s+\|/m);
    assert.match(out, /^causal\s+\|\s+2\s+\|\s+128\s+\|/m);
  });

  it('decode times each case with heads sharing tasks and with one head per task', function () {
    const { path: addonPath } = loadNative();
    if (addonPath === null) this.skip(); // no native addon here
    const { status, out } = bench(['decode', '--heads', '4', '--kv-heads', '1,4', '--dim', '32', '--queries', '1',
      '--keys', '64', '--dtypes', 'float32', '--rounds', '1', '--calls', '1', '--json']);
    assert.equal(status, 0, out);
    const rows = out.trim().split('\n').map((l) => JSON.parse(l) as { kvHeads: number; headsPerTask: number; ms: number; onePerTaskMs: number });
    assert.deepEqual(rows.map((r) => r.kvHeads), [1, 4]);
    for (const r of rows) assert.ok(r.ms > 0 && r.onePerTaskMs > 0 && r.headsPerTask >= 1, JSON.stringify(r));
    assert.equal(rows[1].headsPerTask, 1, 'one query head per kv head: nothing to share');
  });

  it('small-calls times the four entry points per size (js here: it needs no addon)', () => {
    const { status, out } = bench(['small-calls', '--backend', 'js', '--seqs', '16', '--heads', '1', '--dim', '16',
      '--calls', '3', '--rounds', '1', '--json']);
    assert.equal(status, 0, out);
    const rows = out.trim().split('\n').map((l) => JSON.parse(l) as { pass: string; seq: number; us: number });
    assert.deepEqual(rows.map((r) => r.pass), ['forwardSync', 'forward', 'backwardSync', 'backward']);
    for (const r of rows) assert.ok(r.seq === 16 && r.us > 0, JSON.stringify(r));
  });

  it('cpu-isa --quick times every kernel path this CPU has, each against the portable one', function () {
    const { status, out } = bench(['cpu-isa', '--quick', '--json']);
    if (status !== 0 && /cpu backend is not available/.test(out)) this.skip(); // no native addon here
    assert.equal(status, 0, out);
    const report = JSON.parse(out.trim().split('\n').pop() as string) as {
      rows: { path: string; dtype: string; mask: string; pass: string; ms: number; speedup: number }[];
    };
    const paths = [...new Set(report.rows.map((r) => r.path))];
    assert.equal(paths[paths.length - 1], 'generic', `paths ${paths.join(', ')}`);
    // 2 dtypes x 2 masks x 3 passes on every path, each with a time and its ratio to generic (1 there).
    assert.equal(report.rows.length, paths.length * 12);
    for (const r of report.rows) assert.ok(r.ms > 0 && r.speedup > 0, JSON.stringify(r));
    for (const r of report.rows.filter((x) => x.path === 'generic')) assert.equal(r.speedup, 1);
  });

  it('cpu-ab compares two addon builds row by row (here the same build twice)', function () {
    const { path: addonPath } = loadNative();
    if (addonPath === null) this.skip(); // no native addon here
    const { status, out } = bench(['cpu-ab', '--base', addonPath as string, '--new', addonPath as string, '--rounds', '2',
      '--heads', '1', '--seq', '128', '--dim', '32', '--dtypes', 'float32', '--masks', 'full,packed2', '--passes', 'fwd,bwd',
      '--repeats', '1']);
    assert.equal(status, 0, out);
    for (const name of ['fwd float32 full', 'bwd float32 full', 'fwd float32 packed2', 'bwd float32 packed2']) {
      // base ms, new ms, their ratio, then both builds' two rounds
      assert.match(out, new RegExp(`^${name} H=1 S=128\\s+[\\d.]+\\s+[\\d.]+\\s+[\\d.]+\\s+[\\d.]+ [\\d.]+ \\| [\\d.]+ [\\d.]+$`, 'm'));
    }
  });

  it('an unknown benchmark name exits 1 with the list of names', () => {
    const { status, out } = bench(['no-such-bench']);
    assert.equal(status, 1);
    assert.match(out, /unknown benchmark 'no-such-bench'/);
    assert.match(out, /^\s+cpu\s/m);
  });
});
