// The CPU kernel paths side by side on this machine: every instruction-set path the CPU has (x86-64:
// avx512_bf16, avx512, avx2, generic; arm64: neon_bf16, neon, generic), each forced through
// SPLASH_CPU_ISA / SPLASH_CPU_BF16 and timed on the same problems, with its speed-up over the portable
// path. Written for real arm64 machines, to show what the NEON tiles and the BFDOT products buy there
// (Graviton 3 and 4, Neoverse V1 / V2 and N2, Apple M2 and later have BF16; Graviton 2 and Ampere Altra
// do not). Under emulation (test/arm64/run-qemu.sh) the times mean nothing: qemu turns each vector
// instruction into several host ones, and BFDOT into a call.
//
//   npm run bench -- cpu-isa [--quick] [--heads 8] [--seq 2048] [--dim 128] [--json]
//
// --quick  a smoke run: H = 2, S = 256, D = 64, one timed run per case
// --json   also prints the rows as one JSON object at the end
// Medians of timed runs after a warm-up (bench/timing.ts); GFLOP/s count allowed (q, kv) pairs only,
// 4·D flops per pair forward and 2.5 times that backward.

import os from 'node:os';

import { lastCpuKernelIsa } from '../lib/backends/cpu';
import { loadNative, type CpuFeatures } from '../lib/backends/native';
import { backends } from '../lib/backends/registry';
import { CausalMask, FullMask, fromFloat32, makeSplashMHA, type DType, type Mask } from '../lib/index';
import { randomNormal } from '../lib/random';
import { timeRuns } from './timing';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : fallback;
}

const quick = process.argv.includes('--quick');
const heads = arg('heads', quick ? 2 : 8);
const seq = arg('seq', quick ? 256 : 2048);
const dim = arg('dim', quick ? 64 : 128);
const fixedReps = quick ? 1 : undefined;

interface Path {
  name: string;
  env: Record<string, string>;
}

/** The kernel paths this CPU can run, best first; the last is always the portable one. */
function paths(f: CpuFeatures): Path[] {
  const out: Path[] = [];
  if (f.neon) {
    if (f.armBf16) out.push({ name: 'neon_bf16', env: { SPLASH_CPU_ISA: 'neon', SPLASH_CPU_BF16: '1' } });
    out.push({ name: 'neon', env: { SPLASH_CPU_ISA: 'neon', SPLASH_CPU_BF16: '0' } });
  }
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx2 && f.fma && f.f16c) {
    if (f.avx512bf16) out.push({ name: 'avx512_bf16', env: { SPLASH_CPU_ISA: 'avx512', SPLASH_CPU_BF16: '1' } });
    out.push({ name: 'avx512', env: { SPLASH_CPU_ISA: 'avx512', SPLASH_CPU_BF16: '0' } });
  }
  if (f.avx2 && f.fma && f.f16c) out.push({ name: 'avx2', env: { SPLASH_CPU_ISA: 'avx2', SPLASH_CPU_BF16: '0' } });
  out.push({ name: 'generic', env: { SPLASH_CPU_ISA: 'generic', SPLASH_CPU_BF16: '0' } });
  return out;
}

interface Row {
  path: string;
  dtype: DType;
  mask: string;
  pass: string;
  ms: number;
  gflops: number;
  speedup: number | null; // generic time / this time, same case
}

async function main(): Promise<void> {
  const cpu = backends().find((b) => b.name === 'cpu');
  if (!cpu?.available) throw new Error(`the cpu backend is not available here: ${cpu?.reason ?? 'unknown reason'}`);
  const features = loadNative().info!.cpuFeatures;
  const all = paths(features);
  console.log(`CPU kernel paths — ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} CPUs, ` +
    `${process.arch}, node ${process.version}: ${all.map((p) => p.name).join(', ')}`);
  console.log(`H = ${heads}, S = ${seq}, D = ${dim}; medians${quick ? ' (--quick: one timed run each)' : ''}`);

  const rows: Row[] = [];
  const shape = [heads, seq, dim];
  for (const dtype of ['float32', 'bfloat16'] as DType[]) {
    const t = (seed: number, scale = 1) => fromFloat32(randomNormal(heads * seq * dim, seed, scale), shape, dtype);
    const [q, k, v, dout] = [t(1, 1 / Math.sqrt(dim)), t(2), t(3), t(4)];
    for (const maskName of ['full', 'causal']) {
      const mask: Mask = maskName === 'causal' ? new CausalMask([seq, seq]) : new FullMask([seq, seq]);
      const pairs = maskName === 'causal' ? (seq * (seq + 1)) / 2 : seq * seq;
      const fwdFlops = 4 * dim * pairs * heads;
      for (const pass of ['fwd', 'bwd', 'bwd-fused']) {
        const kernel = makeSplashMHA(mask, {
          backend: 'cpu', saveResiduals: true, blockSizes: { useFusedBwdKernel: pass === 'bwd-fused' },
        });
        const flops = pass === 'fwd' ? fwdFlops : 2.5 * fwdFlops;
        const times: Record<string, number> = {};
        for (const p of all) {
          const saved = { ...process.env };
          Object.assign(process.env, p.env);
          try {
            const res = kernel.forwardSync(q, k, v);
            const run = pass === 'fwd' ? () => kernel.forwardSync(q, k, v) : () => kernel.backwardSync({ q, k, v, ...res, dout });
            const timing = await timeRuns(run, fixedReps);
            const ran = lastCpuKernelIsa();
            if (ran !== p.name) throw new Error(`asked for the ${p.name} path, the kernels ran ${ran}`);
            times[p.name] = timing.ms;
            rows.push({ path: p.name, dtype, mask: maskName, pass, ms: timing.ms, gflops: flops / timing.ms / 1e6, speedup: null });
          } finally {
            for (const key of Object.keys(p.env)) {
              if (saved[key] === undefined) delete process.env[key];
              else process.env[key] = saved[key];
            }
          }
        }
        for (const r of rows.slice(-all.length)) {
          r.speedup = times.generic / r.ms;
          console.log(`${r.path.padEnd(12)} ${dtype === 'float32' ? 'f32 ' : 'bf16'} ${maskName.padEnd(6)} ${pass.padEnd(9)} ` +
            `${r.ms.toFixed(1).padStart(9)} ms ${r.gflops.toFixed(1).padStart(7)} GFLOP/s ` +
            `${r.speedup.toFixed(2).padStart(6)} x generic`);
        }
      }
    }
  }
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ cpu: os.cpus()[0]?.model ?? null, arch: process.arch, heads, seq, dim, features, rows }));
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
