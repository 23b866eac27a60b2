#!/usr/bin/env node
// splash-attention command line: info, demo, bench.

import { loadNative } from './backends/native';
import { backends } from './backends/registry';
import { CausalMask } from './mask';
import { makeSplashMHA } from './kernel';
import { randomNormal } from './random';
import { fromFloat32, toFloat32, type Tensor } from './tensor';
import { runBench } from './bench-core';
import type { BackendName } from './validate';

function flag(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`--${name}: expected a positive integer, got ${args[i + 1]}`);
  return v;
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? undefined : args[i + 1];
}

function info(): void {
  const native = loadNative();
  console.log('splash-attention backends:');
  for (const b of backends()) {
    console.log(`  ${b.name.padEnd(10)} ${b.available ? 'available' : 'unavailable'}${b.reason ? `  (${b.reason})` : ''}`);
    for (const d of b.devices ?? []) {
      const cc = d.computeCapability ? `, compute ${d.computeCapability}` : '';
      console.log(`      device ${d.index}: ${d.name}${cc}, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB`);
    }
  }
  if (native.info !== null) {
    console.log(`native addon: ${native.path} (variant ${native.variant}, version ${native.info.version})`);
    const feats = Object.entries(native.info.cpuFeatures).filter(([, on]) => on).map(([f]) => f);
    console.log(`CPU features: ${feats.join(' ') || 'none detected'}; threads: ${native.info.threads}`);
  } else {
    console.log(`native addon: not loaded (${native.error})`);
  }
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = toFloat32(a);
  const y = toFloat32(b);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

async function demo(args: string[]): Promise<void> {
  const heads = flag(args, 'heads', 4);
  const seq = flag(args, 'seq', 512);
  const dim = flag(args, 'dim', 64);
  const backend = (option(args, 'backend') ?? 'auto') as BackendName;
  const mask = new CausalMask([seq, seq]);
  const kernel = makeSplashMHA(mask, { backend, saveResiduals: true });
  const scale = 1 / Math.sqrt(dim); // splash does not scale q: callers do
  const make = (seed: number, s = 1) => fromFloat32(randomNormal(heads * seq * dim, seed, s), [heads, seq, dim], 'float32');
  const q = make(1, scale);
  const k = make(2);
  const v = make(3);
  const dout = make(4);
  console.log(`causal splash attention on '${kernel.backend}': q, k, v [${heads}, ${seq}, ${dim}] float32`);

  let t0 = performance.now();
  const { out, logsumexp } = await kernel.forward(q, k, v);
  const fwdMs = performance.now() - t0;
  t0 = performance.now();
  const grads = await kernel.backward({ q, k, v, out, logsumexp, dout });
  const bwdMs = performance.now() - t0;
  // Causal: seq*(seq+1)/2 allowed pairs per head; forward 4·D flops per pair, backward 2.5× that.
  const fwdFlops = 4 * dim * heads * (seq * (seq + 1)) / 2;
  console.log(`forward  ${fwdMs.toFixed(1)} ms  (${(fwdFlops / fwdMs / 1e6).toFixed(2)} GFLOP/s)`);
  console.log(`backward ${bwdMs.toFixed(1)} ms  (${((2.5 * fwdFlops) / bwdMs / 1e6).toFixed(2)} GFLOP/s)`);

  const ref = makeSplashMHA(mask, { backend: 'reference', saveResiduals: true });
  const r = await ref.forward(q, k, v);
  const rg = await ref.backward({ q, k, v, out: r.out, logsumexp: r.logsumexp, dout });
  console.log('max |error| against the float64 reference:');
  console.log(`  out ${maxAbsDiff(out, r.out).toExponential(2)}  logsumexp ${maxAbsDiff(logsumexp, r.logsumexp).toExponential(2)}`);
  console.log(`  dq ${maxAbsDiff(grads.dq, rg.dq).toExponential(2)}  dk ${maxAbsDiff(grads.dk, rg.dk).toExponential(2)}  dv ${maxAbsDiff(grads.dv, rg.dv).toExponential(2)}`);
}

const USAGE = `usage: splash-attention <command>
  info                         backends, devices, CPU features
  demo [--backend B] [--heads H] [--seq S] [--dim D]
                               causal forward + backward on random data, timed, checked against the reference
  bench [--json] [--backend B] [--seq S]
                               forward/backward timings on a few masks`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'info':
      info();
      return 0;
    case 'demo':
      await demo(rest);
      return 0;
    case 'bench':
      await runBench({
        json: rest.includes('--json'),
        backend: (option(rest, 'backend') ?? 'auto') as BackendName,
        seq: flag(rest, 'seq', 1024),
      });
      return 0;
    default:
      console.error(USAGE);
      return cmd === undefined || cmd === 'help' || cmd === '--help' ? 0 : 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`splash-attention: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
