// CPU benchmark: splash attention forward and backward on the CPU backend, against this machine's
// measured FMA peak and against onnxruntime-node on the same problems. See bench/README.md.
//
//   npm run bench -- cpu [--quick] [--json] [--backend cpu|js|auto] [--sizes 1024,4096]
//                        [--peer-sizes 1024,4096] [--no-peer] [--no-js] [--ort-threads 2] [--out FILE]
//                        [--plot FILE.svg]
//
// --quick    a smoke run in well under 30 s: S=1024 (H=2, S=256, D=64 on the js backend); the peer
//            runs only if an earlier run installed it
// --json     also writes bench/out/cpu.json (--out FILE: there instead)
// --backend  the backend under test; default 'cpu' when backends() reports it available, else 'js'
// --plot     also draws forward throughput against S per mask, beside the peer (needs vega, vega-lite)
//
// On a terminal a progress bar runs on stderr; never with --json, in CI or when stderr is redirected.

import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  backends,
  fromFloat32,
  makeSplashMHA,
  type DType,
  type ForwardWithResiduals,
  type SplashAttentionKernel,
  type SplashOptions,
  type Tensor,
} from '../lib/index';
import { loadPlotting } from '../lib/bench-plot';
import { ProgressBar, shouldShowProgress } from '../lib/progress';
import { randomNormal } from '../lib/random';
import { writeCpuPlot } from './cpu-plot';
import { describePeak, measurePeak, type PeakOutcome } from './peak';
import { ensureOrtInstalled, type InstallInfo, type PeerOp, type PeerResult } from './peers/ort-peer';
import { flag } from './args';
import { pairCounts, problemByName, type Problem } from './problems';
import { timeRuns, type Timing } from './timing';

type BackendChoice = NonNullable<SplashOptions['backend']>;
type Pass = 'fwd' | 'bwd' | 'bwd-fused';

// ---- command line --------------------------------------------------------------------------

const has = (name: string) => process.argv.includes(`--${name}`);
const numbers = (s: string | undefined) => (s ? s.split(',').map(Number) : undefined);

// ---- the problems --------------------------------------------------------------------------

interface MaskSpec {
  name: string;
  build(seq: number): Problem;
}

interface Grid {
  heads: number;
  dim: number;
  sizes: number[];
  dtypes: DType[];
  masks: MaskSpec[];
  fusedMasks: string[]; // masks that also time the fused backward
}

function maskSpecs(window: number, chunk: number, docs: number): MaskSpec[] {
  return ['full', 'causal', `local${window}`, `chunked${chunk}`, `packed${docs}`, 'random50']
    .map((name) => ({ name, build: (s: number) => problemByName(name, s) }));
}

// ---- running splash ------------------------------------------------------------------------

export interface Row {
  backend: string;
  pass: Pass;
  dtype: DType;
  mask: string;
  heads: number;
  seq: number;
  dim: number;
  ms: number;
  reps: number;
  times: number[];
  pairs: number; // allowed (q, kv) pairs per head
  gflops: number; // fwd: 4·D·H·pairs; bwd: 2.5 × that
  pctPeak: number | null;
  density: number; // active (full + partial) blocks / all blocks, from the kernel's MaskInfo
  cores: number; // CPU time / wall time of this process during the timed runs
  disturbed: boolean; // cores < 85 % of the threads the backend runs: other work took cores
}

interface Inputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  dout: Tensor;
}

function makeInputs(heads: number, seq: number, dim: number, dtype: DType): Inputs {
  const shape = [heads, seq, dim];
  const n = heads * seq * dim;
  const t = (seed: number, scale = 1) => fromFloat32(randomNormal(n, seed, scale), shape, dtype);
  // q carries the 1/√D splash leaves to the caller; the peer uses the same seeds and scaling.
  return { q: t(11, 1 / Math.sqrt(dim)), k: t(12), v: t(13), dout: t(14) };
}

/** A row whose process kept fewer than this share of its threads busy was sharing the CPUs. */
const DISTURBED = 0.85;

/** Threads a backend computes on: the JS backend one, native ones every available core. */
function threadsOf(backend: string): number {
  return backend === 'js' || backend === 'reference' ? 1 : os.availableParallelism();
}

interface SplashRunOptions {
  backend: BackendChoice;
  grid: Grid;
  peak: number | null;
  log: (line: string) => void;
  progress: ProgressBar;
}

// ---- progress ------------------------------------------------------------------------------

/** Rough cost of timing one case, in units of an f32 full-mask forward of S = 1 on the native
 *  backend: S² × the pass's flops ratio, ×50 on the JS backend. Only the bar's pace depends on it. */
function caseWork(seq: number, pass: Pass, dtype: DType, backend: string): number {
  const passCost = pass === 'fwd' ? 1 : 2.5;
  const dtypeCost = dtype === 'float32' ? 1 : 0.6;
  const backendCost = backend === 'js' || backend === 'reference' ? 50 : 1;
  return seq * seq * passCost * dtypeCost * backendCost;
}

function gridWork(grid: Grid, backend: string): number {
  let total = 0;
  for (const seq of grid.sizes) {
    for (const spec of grid.masks) {
      for (const dtype of grid.dtypes) {
        const passes: Pass[] = grid.fusedMasks.includes(spec.name) ? ['fwd', 'bwd', 'bwd-fused'] : ['fwd', 'bwd'];
        for (const pass of passes) total += caseWork(seq, pass, dtype, backend);
      }
    }
  }
  return total;
}

/** The peer computes every pair (it skips nothing) at about half splash's f32 rate: 2 ops × 2 masks. */
function peerWork(sizes: number[]): number {
  return sizes.reduce((sum, seq) => sum + 4 * 2 * caseWork(seq, 'fwd', 'float32', 'cpu'), 0);
}

async function runSplash({ backend, grid, peak, log, progress }: SplashRunOptions): Promise<Row[]> {
  const rows: Row[] = [];
  for (const seq of grid.sizes) {
    const inputs = new Map<DType, Inputs>(grid.dtypes.map((dt) => [dt, makeInputs(grid.heads, seq, grid.dim, dt)]));
    for (const spec of grid.masks) {
      const problem = spec.build(seq);
      const pairs = pairCounts(problem, 128).allowed; // any block size counts the same allowed pairs
      const flops = 4 * grid.dim * grid.heads * pairs;
      const split = makeSplashMHA(problem.mask, { backend, saveResiduals: true });
      const fused = grid.fusedMasks.includes(spec.name)
        ? makeSplashMHA(problem.mask, { backend, saveResiduals: true, blockSizes: { useFusedBwdKernel: true } })
        : null;
      const density = split.fwdMaskInfo.stats.density;
      for (const dtype of grid.dtypes) {
        const { q, k, v, dout } = inputs.get(dtype) as Inputs;
        const seg = problem.segmentIds;
        const record = (pass: Pass, kernel: SplashAttentionKernel, t: Timing, passFlops: number): void => {
          const gflops = passFlops / t.ms / 1e6;
          const row: Row = {
            backend: kernel.backend, pass, dtype, mask: spec.name, heads: grid.heads, seq, dim: grid.dim,
            ms: t.ms, reps: t.reps, times: t.times, pairs, gflops,
            pctPeak: peak ? (100 * gflops) / peak : null, density, cores: t.cores,
            disturbed: t.cores < DISTURBED * threadsOf(kernel.backend),
          };
          rows.push(row);
          log(formatRow(row));
        };
        const timed = async (pass: Pass, kernel: SplashAttentionKernel, run: () => Promise<unknown>, passFlops: number) => {
          progress.update(`${kernel.backend} ${pass} ${short(dtype)} ${spec.name} S=${seq}`);
          record(pass, kernel, await timeRuns(run), passFlops);
          progress.advance(caseWork(seq, pass, dtype, kernel.backend));
        };
        let residuals: ForwardWithResiduals | undefined;
        await timed('fwd', split, async () => { residuals = await split.forward(q, k, v, seg); }, flops);
        // The backward passes start from the last forward's residuals, as in training.
        const { out, logsumexp } = residuals as ForwardWithResiduals;
        const bwdArgs = { q, k, v, segmentIds: seg, out, logsumexp, dout };
        await timed('bwd', split, () => split.backward(bwdArgs), 2.5 * flops);
        if (fused) await timed('bwd-fused', fused, () => fused.backward(bwdArgs), 2.5 * flops);
      }
    }
  }
  return rows;
}

// ---- the peer ------------------------------------------------------------------------------

interface PeerOutcome {
  ran: boolean;
  reason?: string;
  install?: InstallInfo;
  result?: PeerResult;
}

async function runPeerChild(sizes: number[], heads: number, dim: number, threads: number, install: boolean,
  peak: number | null, log: (line: string) => void): Promise<PeerOutcome> {
  let info: InstallInfo;
  try {
    // --quick never installs: it uses the peer only if an earlier run put it there.
    info = ensureOrtInstalled(log, { install });
  } catch (e) {
    return { ran: false, reason: (e as Error).message };
  }
  log(
    `onnxruntime-node ${info.version}: bench/peers/node_modules ${info.mib.toFixed(0)} MiB` +
      (info.installedNow ? `, installed by this run in ${info.seconds?.toFixed(1)} s` : ''),
  );
  // A child process, so onnxruntime's thread pool (it spins between runs) never shares a process
  // with splash's. Its progress lines (stderr) are passed through as they come; stdout is the result.
  const script = path.join(__dirname, 'peers', 'ort-peer.ts');
  const args = ['--import', 'tsx', script, '--json', '--sizes', sizes.join(','), '--heads', String(heads),
    '--dim', String(dim), '--threads', String(threads)];
  if (peak) args.push('--peak', String(peak));
  const child = spawn(process.execPath, args, { cwd: path.join(__dirname, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let pending = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    pending += d;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) log(`  ${line}`);
  });
  const status = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
  if (pending) log(`  ${pending}`);
  if (status !== 0) return { ran: false, install: info, reason: `ort-peer exited with status ${status}` };
  const { install: _childInstall, ...result } = JSON.parse(stdout.trim().split('\n').pop() ?? '') as PeerResult & {
    install: InstallInfo;
  };
  return { ran: true, install: info, result };
}

// ---- ratios --------------------------------------------------------------------------------

interface Ratio {
  what: string;
  seq: number;
  value: number;
  target?: string;
  detail: string;
}

function find(rows: Row[], pass: Pass, dtype: DType, mask: string, seq: number): Row | undefined {
  return rows.find((r) => r.pass === pass && r.dtype === dtype && r.mask === mask && r.seq === seq);
}

function ratios(rows: Row[], peer: PeerResult | undefined, localName: string): Ratio[] {
  const out: Ratio[] = [];
  const seqs = [...new Set([...rows, ...(peer?.rows ?? [])].map((r) => r.seq))].sort((a, b) => a - b);
  const peerThreads = peer?.threads ?? 1;
  // '*' marks a ratio taken from a row measured while other work held cores.
  const mark = (...xs: ({ disturbed: boolean } | { cores: number })[]) =>
    xs.some((x) => ('disturbed' in x ? x.disturbed : x.cores < DISTURBED * peerThreads)) ? ' *' : '';
  const backend = rows[0]?.backend ?? '?';
  for (const seq of seqs) {
    // splash vs the peer: speed-up = peer time / splash time, f32 forward.
    for (const mask of ['full', 'causal'] as const) {
      const s = find(rows, 'fwd', 'float32', mask, seq);
      for (const op of ['mha', 'attention'] as PeerOp[]) {
        const p = peer?.rows.find((r) => r.op === op && r.mask === mask && r.seq === seq);
        if (!s || !p) continue;
        out.push({
          what: `speed-up of splash ${backend} over ORT ${op}, ${mask} fwd f32`,
          seq, value: p.ms / s.ms,
          target: mask === 'causal' && op === 'mha' ? '≥ 2.5' : undefined,
          detail: `${p.ms.toFixed(1)} / ${s.ms.toFixed(1)} ms${mark(p, s)}`,
        });
      }
    }
    // causal / full time, per pass and dtype.
    for (const pass of ['fwd', 'bwd', 'bwd-fused'] as Pass[]) {
      for (const dtype of ['float32', 'bfloat16'] as DType[]) {
        const full = find(rows, pass, dtype, 'full', seq);
        const causal = find(rows, pass, dtype, 'causal', seq);
        if (!full || !causal) continue;
        out.push({
          what: `causal / full time, ${pass} ${short(dtype)}`,
          seq, value: causal.ms / full.ms,
          target: pass === 'fwd' ? '≤ 0.55' : undefined,
          detail: `${causal.ms.toFixed(1)} / ${full.ms.toFixed(1)} ms${mark(causal, full)}`,
        });
      }
    }
    for (const op of ['mha', 'attention'] as PeerOp[]) {
      const full = peer?.rows.find((r) => r.op === op && r.mask === 'full' && r.seq === seq);
      const causal = peer?.rows.find((r) => r.op === op && r.mask === 'causal' && r.seq === seq);
      if (!full || !causal) continue;
      out.push({
        what: `causal / full time, ORT ${op} f32`,
        seq, value: causal.ms / full.ms,
        detail: `${causal.ms.toFixed(1)} / ${full.ms.toFixed(1)} ms${mark(causal, full)}`,
      });
    }
    // Local window: time vs (active blocks / all blocks) × full time.
    for (const pass of ['fwd', 'bwd'] as Pass[]) {
      for (const dtype of ['float32', 'bfloat16'] as DType[]) {
        const full = find(rows, pass, dtype, 'full', seq);
        const local = find(rows, pass, dtype, localName, seq);
        if (!full || !local) continue;
        out.push({
          what: `${localName} time / (active-block fraction × full time), ${pass} ${short(dtype)}`,
          seq, value: local.ms / (local.density * full.ms),
          target: pass === 'fwd' && seq === 8192 ? '≤ 1.3' : undefined,
          detail: `${local.ms.toFixed(1)} / (${local.density.toFixed(3)} × ${full.ms.toFixed(1)}) ms${mark(local, full)}`,
        });
      }
    }
    // bf16 / f32 throughput (= f32 time / bf16 time).
    for (const pass of ['fwd', 'bwd'] as Pass[]) {
      for (const mask of ['full', 'causal']) {
        const f = find(rows, pass, 'float32', mask, seq);
        const b = find(rows, pass, 'bfloat16', mask, seq);
        if (!f || !b) continue;
        out.push({
          what: `bf16 / f32 throughput, ${pass} ${mask}`,
          seq, value: f.ms / b.ms,
          target: pass === 'fwd' ? '≥ 1.5 with avx512_bf16' : undefined,
          detail: `${f.ms.toFixed(1)} / ${b.ms.toFixed(1)} ms${mark(f, b)}`,
        });
      }
    }
  }
  return out;
}

// ---- output --------------------------------------------------------------------------------

function short(dtype: DType): string {
  return dtype === 'float32' ? 'f32' : dtype === 'bfloat16' ? 'bf16' : 'f16';
}

const HEADER =
  'backend  pass       dtype  mask           H      S    D       ms   n   GFLOP/s  %peak  blocks  cores';

function formatRow(r: Row): string {
  return (
    `${r.backend.padEnd(8)} ${r.pass.padEnd(10)} ${short(r.dtype).padEnd(6)} ${r.mask.padEnd(12)} ` +
    `${String(r.heads).padStart(3)} ${String(r.seq).padStart(6)} ${String(r.dim).padStart(4)} ` +
    `${r.ms.toFixed(1).padStart(8)} ${String(r.reps).padStart(3)} ${r.gflops.toFixed(1).padStart(9)} ` +
    `${(r.pctPeak === null ? 'n/a' : r.pctPeak.toFixed(1)).padStart(6)} ${(100 * r.density).toFixed(1).padStart(6)}% ` +
    `${r.cores.toFixed(2).padStart(6)}${r.disturbed ? ' *' : ''}`
  );
}

/** Other load on the machine shows as an all-thread peak well short of threads × the one-thread peak. */
function warnIfDisturbed(p: PeakOutcome, log: (line: string) => void): void {
  if (!p.ok) return;
  const expected = p.peak.threads * p.peak.singleThreadGflops;
  if (p.peak.gflops < 0.9 * expected) {
    log(
      `warning: the ${p.peak.threads}-thread peak (${p.peak.gflops.toFixed(1)}) is below ${p.peak.threads} × the one-thread ` +
        `peak (${expected.toFixed(1)}): other work is competing for the cores, and every figure here is low`,
    );
  }
}

function cpuModel(): string {
  return os.cpus()[0]?.model?.trim() ?? 'unknown CPU';
}

// ---- main ----------------------------------------------------------------------------------

export interface Report {
  command: string;
  date: string;
  machine: { cpu: string; cpus: number; loadAverage: number[]; node: string; platform: string };
  backend: string;
  backendNote?: string;
  grid: { heads: number; dim: number; sizes: number[]; dtypes: DType[]; masks: string[]; fusedMasks: string[] };
  peak: PeakOutcome; // measured first
  peakEnd?: PeakOutcome; // measured again last
  peakGflops: number | null; // the larger of the two: what pctPeak is against
  rows: Row[];
  js: Row[];
  peer: PeerOutcome;
  ratios: Ratio[];
  seconds: number;
}

const BACKEND_NAMES: readonly BackendChoice[] = ['auto', 'cuda', 'rocm', 'cpu', 'js', 'reference'];

function chooseBackend(requested: string | undefined): { backend: BackendChoice; note?: string } {
  const cpu = backends().find((b) => b.name === 'cpu');
  if (requested !== undefined && !(BACKEND_NAMES as readonly string[]).includes(requested)) {
    throw new Error(`--backend: expected one of ${BACKEND_NAMES.join(', ')}, got '${requested}'`);
  }
  if (requested) {
    if (requested === 'cpu' && !cpu?.available) {
      throw new Error(`--backend cpu: the cpu backend is not available here: ${cpu?.reason ?? 'unknown reason'}`);
    }
    return { backend: requested as BackendChoice };
  }
  if (cpu?.available) return { backend: 'cpu' };
  return {
    backend: 'js',
    note: `the cpu backend is not available (${cpu?.reason ?? 'unknown reason'}), so this run measures the js backend instead`,
  };
}

export async function main(): Promise<Report> {
  const t0 = performance.now();
  const quick = has('quick');
  const json = has('json') || flag('out') !== undefined;
  const plotFile = flag('plot');
  if (plotFile !== undefined) await loadPlotting(); // a missing package fails here, not after the run
  // Table lines go through the progress bar once it is up, so the bar never tears them.
  let progress: ProgressBar | undefined;
  const log = (line: string) => (progress ? progress.log(line) : console.log(line));
  const { backend, note } = chooseBackend(flag('backend'));
  const mainIsJs = backend === 'js' || backend === 'reference';

  // --quick: tiny problems for the JS backend (a smoke run), S = 1024 for a native one.
  const tiny = quick && mainIsJs;
  const window = tiny ? 64 : 512;
  const chunk = tiny ? 128 : 1024;
  const docs = 8;
  const heads = tiny ? 2 : 8;
  const dim = tiny ? 64 : 128;
  const defaultSizes = tiny ? [256] : quick || mainIsJs ? [1024] : [1024, 2048, 4096, 8192];
  const masks = maskSpecs(window, chunk, docs);
  const grid: Grid = {
    heads, dim,
    sizes: numbers(flag('sizes')) ?? defaultSizes,
    dtypes: ['float32', 'bfloat16'],
    masks,
    fusedMasks: ['full', 'causal'],
  };
  const jsGrid: Grid = {
    heads: quick ? 2 : 8,
    dim: quick ? 64 : 128,
    sizes: [quick ? 256 : 1024],
    dtypes: ['float32'],
    masks: maskSpecs(window, chunk, docs).filter((m) => m.name === 'full' || m.name === 'causal'),
    fusedMasks: [],
  };
  const peerSizes = numbers(flag('peer-sizes')) ?? (quick ? grid.sizes : [1024, 2048, 4096, 8192]);
  const ortThreads = Number(flag('ort-threads') ?? 2);
  const runsJs = !mainIsJs && !has('no-js');
  const runsPeer = !has('no-peer');

  const load = os.loadavg();
  log(`splash-attention CPU benchmark${quick ? ' (--quick)' : ''} — ${cpuModel()}, ${os.availableParallelism()} CPUs, node ${process.version}`);
  if (load[0] > 0.5) log(`warning: load average ${load.map((x) => x.toFixed(2)).join(' ')} — other work on this machine skews every figure`);
  const peak = measurePeak({ quick });
  log(describePeak(peak));
  warnIfDisturbed(peak, log);
  const peakGflops = peak.ok ? peak.peak.gflops : null;
  log(`backend under test: ${backend}${note ? ` — ${note}` : ''}`);
  if (mainIsJs && !flag('sizes') && !quick) log(`the ${backend} backend runs S = ${grid.sizes.join(', ')} only (pass --sizes to change)`);
  log(
    `H=${heads}, D=${dim}, masks ${masks.map((m) => m.name).join(', ')}; ` +
      `fwd GFLOP/s = 4·D·H·(allowed pairs) / time, bwd = 2.5 × fwd flops; %peak of the f32 FMA peak; ` +
      `n = timed runs after a warm-up (5; 3 when a run takes > 2 s; 1 when > 8 s); ` +
      `cores = CPU time / wall time; * = under ${DISTURBED * 100} % of the backend's threads, so other work took cores and the row is low`,
  );
  log('');
  log(HEADER);
  const work = gridWork(grid, backend) + (runsJs ? gridWork(jsGrid, 'js') : 0) + (runsPeer ? peerWork(peerSizes) : 0);
  progress = new ProgressBar(work, { enabled: shouldShowProgress(process.stderr, process.env, json), print: (line) => console.log(line) });
  const rows = await runSplash({ backend, grid, peak: peakGflops, log, progress });

  let js: Row[] = [];
  if (runsJs) {
    log('');
    log('JS backend (fallback when the addon cannot load), smaller subset:');
    log(HEADER);
    js = await runSplash({ backend: 'js', grid: jsGrid, peak: peakGflops, log, progress });
  }

  let peer: PeerOutcome;
  log('');
  if (!runsPeer) {
    peer = { ran: false, reason: '--no-peer' };
    log('peer: skipped (--no-peer)');
  } else {
    log(`peer: onnxruntime-node, CPU EP, intraOpNumThreads=${ortThreads}, f32, S = ${peerSizes.join(', ')}`);
    progress.update(`onnxruntime-node peer, S = ${peerSizes.join(', ')}`);
    peer = await runPeerChild(peerSizes, heads, dim, ortThreads, !quick, peakGflops, log);
    progress.advance(peerWork(peerSizes));
    if (!peer.ran) log(`peer: skipped — ${peer.reason}`);
  }
  progress.finish();
  progress = undefined;
  // The peak again: other load during the first measurement shows up as a higher second one.
  let peakEnd: PeakOutcome | undefined;
  let finalPeak = peakGflops;
  if (peak.ok && !quick) {
    peakEnd = measurePeak({ quick });
    if (peakEnd.ok && peakEnd.peak.gflops > peak.peak.gflops) finalPeak = peakEnd.peak.gflops;
    log('');
    log(`peak re-measured at the end: ${peakEnd.ok ? `${peakEnd.peak.gflops.toFixed(1)} GFLOP/s` : peakEnd.reason} (start ${peak.peak.gflops.toFixed(1)})`);
    if (finalPeak && peakGflops && finalPeak > 1.03 * peakGflops) {
      log(`  %peak above is against the start figure; cpu.json uses the larger, ${finalPeak.toFixed(1)}`);
      for (const r of [...rows, ...js]) r.pctPeak = (100 * r.gflops) / finalPeak;
    }
  }
  // Only f32 work is bounded by the f32 FMA peak (bf16 dot-product instructions legitimately beat it).
  const f32 = [...rows, ...js].filter((r) => r.dtype === 'float32');
  const fastest = Math.max(0, ...[...f32, ...(peer.result?.rows ?? [])].map((r) => r.gflops));
  if (finalPeak && fastest > finalPeak) {
    log(`warning: a measured f32 ${fastest.toFixed(1)} GFLOP/s exceeds the measured peak ${finalPeak.toFixed(1)} — the peak measurement was disturbed by other load`);
  }

  const rs = ratios(rows, peer.result, `local${window}`);
  if (rs.length) {
    log('');
    log('ratios (same run):');
    for (const r of rs) {
      log(`  S=${String(r.seq).padEnd(5)} ${r.what.padEnd(72)} ${r.value.toFixed(2).padStart(6)}  (${r.detail}${r.target ? `; target ${r.target}` : ''})`);
    }
  }

  const seconds = (performance.now() - t0) / 1000;
  log('');
  log(`total ${seconds.toFixed(0)} s`);
  const report: Report = {
    command: `npm run bench -- cpu ${process.argv.slice(2).join(' ')}`.trim(),
    date: new Date().toISOString(),
    machine: { cpu: cpuModel(), cpus: os.availableParallelism(), loadAverage: load, node: process.version, platform: `${process.platform}-${process.arch}` },
    backend,
    backendNote: note,
    grid: { heads, dim, sizes: grid.sizes, dtypes: grid.dtypes, masks: masks.map((m) => m.name), fusedMasks: grid.fusedMasks },
    peak, peakEnd, peakGflops: finalPeak, rows, js, peer, ratios: rs, seconds,
  };
  const shown = (file: string) => {
    const relative = path.relative(process.cwd(), file);
    return relative.startsWith('..') ? file : relative;
  };
  if (json) {
    const file = path.resolve(flag('out') ?? path.join(__dirname, 'out', 'cpu.json'));
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    log(`wrote ${shown(file)}`);
  }
  if (plotFile !== undefined) {
    const file = path.resolve(plotFile);
    mkdirSync(path.dirname(file), { recursive: true });
    await writeCpuPlot(file, report);
    log(`wrote ${shown(file)}`);
  }
  return report;
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
