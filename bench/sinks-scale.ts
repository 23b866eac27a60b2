// npm run bench -- sinks-scale [--seq 4096] [--heads 8] [--dim 128] [--rounds 7] [--backend cpu]
//
// What sinks and a softmax scale cost the forward: the same f32 causal forward plain, with scale, with
// sinks, and with both, timed in interleaved rounds (one of each per round, so drift on a shared machine
// hits every variant alike); medians and ratios to the plain forward.

import { CausalMask, fromFloat32, makeSplashMHA, tensor, type SplashOptions, type Tensor } from '../lib/index';
import { randomNormal } from '../lib/random';
import { median } from './timing';

function option(name: string, fallback: number | string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : String(fallback);
}

async function main(): Promise<void> {
  const s = Number(option('seq', 4096));
  const h = Number(option('heads', 8));
  const d = Number(option('dim', 128));
  const rounds = Number(option('rounds', 7));
  const backend = option('backend', 'cpu') as SplashOptions['backend'];
  const t = (seed: number): Tensor => fromFloat32(randomNormal(h * s * d, seed, 0.3), [h, s, d], 'float32');
  const [q, k, v] = [t(1), t(2), t(3)];
  const sinks = tensor(Float32Array.from({ length: h }, (_, i) => (i % 3) - 1), [h]);
  const mask = new CausalMask([s, s]);
  const variants: [string, SplashOptions, Tensor | undefined][] = [
    ['plain', { backend }, undefined],
    ['scale', { backend, scale: 1 / Math.sqrt(d) }, undefined],
    ['sinks', { backend }, sinks],
    ['scale + sinks', { backend, scale: 1 / Math.sqrt(d) }, sinks],
  ];
  const kernels = variants.map(([, opts]) => makeSplashMHA(mask, { ...opts, saveResiduals: true }));
  const times = variants.map(() => [] as number[]);
  for (let r = -1; r < rounds; r++) { // round -1 warms up
    for (let i = 0; i < variants.length; i++) {
      const t0 = performance.now();
      await kernels[i].forward(q, k, v, undefined, { sinks: variants[i][2] });
      if (r >= 0) times[i].push(performance.now() - t0);
    }
  }
  const base = median(times[0]);
  console.log(`forward, f32 causal, H=${h} S=${s} D=${d}, ${backend}, median of ${rounds} interleaved rounds`);
  variants.forEach(([name], i) => {
    const ms = median(times[i]);
    console.log(`${name.padEnd(14)} ${ms.toFixed(1).padStart(9)} ms   ${(ms / base).toFixed(3)} x plain`);
  });
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
