// This machine's peak single-precision FMA throughput, measured, never assumed: compiles
// bench/fma-peak.cc with the system C++ compiler (g++ or $CXX, -O2 -march=native) into bench/out/
// on first use and runs it. Without a compiler the peak is reported as skipped and the benchmark
// prints no "% of peak" column.
//
//   npx tsx bench/peak.ts [--quick] [--threads N]      (or: npm run bench -- peak)

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface PeakResult {
  gflops: number; // best trial of the best ISA variant, all threads
  medianGflops: number;
  singleThreadGflops: number;
  isa: string;
  threads: number;
  variants: { isa: string; gflops: number; medianGflops: number }[];
  compiler: string;
}

export type PeakOutcome = { ok: true; peak: PeakResult } | { ok: false; reason: string };

const SOURCE = path.join(__dirname, 'fma-peak.cc');
const OUT_DIR = path.join(__dirname, 'out');
const BINARY = path.join(OUT_DIR, process.platform === 'win32' ? 'fma-peak.exe' : 'fma-peak');
const STAMP = `${BINARY}.stamp`;

/** What the binary depends on: its source, the compiler and the CPU (-march=native). */
function buildKey(cxx: string): string {
  const h = createHash('sha256');
  h.update(readFileSync(SOURCE));
  h.update(cxx);
  h.update(os.cpus()[0]?.model ?? '');
  try {
    // The flags line (Features on arm64), so a binary built on another CPU of the same model name is rebuilt.
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    h.update(/^(flags|Features)\s*:.*$/m.exec(cpuinfo)?.[0] ?? '');
  } catch {
    // not Linux: the model name has to do
  }
  return h.digest('hex');
}

function compile(): { ok: true; cxx: string } | { ok: false; reason: string } {
  const cxx = process.env.CXX || 'g++';
  const probe = spawnSync(cxx, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    return { ok: false, reason: `no C++ compiler (${cxx} not found; set CXX) — peak FMA throughput not measured` };
  }
  const version = probe.stdout.split('\n')[0].trim();
  const key = buildKey(version);
  if (existsSync(BINARY) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === key) return { ok: true, cxx: version };
  mkdirSync(OUT_DIR, { recursive: true });
  const args = ['-O2', '-march=native', '-pthread', '-std=c++17', SOURCE, '-o', BINARY];
  const r = spawnSync(cxx, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    return { ok: false, reason: `${cxx} ${args.join(' ')} failed: ${(r.stderr || String(r.error)).trim().slice(0, 400)}` };
  }
  writeFileSync(STAMP, key);
  return { ok: true, cxx: version };
}

/** Compiles (once) and runs the FMA loop; `quick` shortens the trials. */
export function measurePeak(opts: { quick?: boolean; threads?: number } = {}): PeakOutcome {
  const built = compile();
  if (!built.ok) return built;
  // The peak is the best trial: many short trials give other load on the machine the least hold on it.
  const args = opts.quick ? ['--seconds', '0.05', '--trials', '3'] : ['--seconds', '0.1', '--trials', '15'];
  if (opts.threads) args.push('--threads', String(opts.threads));
  try {
    const out = execFileSync(BINARY, args, { encoding: 'utf8' });
    const parsed = JSON.parse(out.trim().split('\n').pop() as string) as Omit<PeakResult, 'compiler'>;
    return { ok: true, peak: { ...parsed, compiler: built.cxx } };
  } catch (e) {
    return { ok: false, reason: `fma-peak failed: ${(e as Error).message}` };
  }
}

export function describePeak(p: PeakOutcome): string {
  if (!p.ok) return `peak: skipped — ${p.reason}`;
  const v = p.peak;
  return (
    `peak FMA throughput: ${v.gflops.toFixed(1)} GFLOP/s f32 (${v.isa}, ${v.threads} threads; ` +
    `${v.singleThreadGflops.toFixed(1)} on one thread; ` +
    v.variants.map((x) => `${x.isa} ${x.gflops.toFixed(1)}`).join(', ') +
    `; ${v.compiler})`
  );
}

if (require.main === module) {
  const i = process.argv.indexOf('--threads');
  const threads = i >= 0 ? Number(process.argv[i + 1]) : undefined;
  const outcome = measurePeak({ quick: process.argv.includes('--quick'), threads });
  console.log(describePeak(outcome));
  if (process.argv.includes('--json')) console.log(JSON.stringify(outcome));
}
