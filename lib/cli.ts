#!/usr/bin/env node
// splash-attention command line: info, demo, bench, mask.

import { writeFileSync } from 'node:fs';

import { loadNative } from './backends/native';
import { backends } from './backends/registry';
import { CausalMask, MultiHeadMask, type Mask } from './mask';
import { processMask } from './mask-info';
import { MASK_SPEC_HELP, impliedSeqLen, parseMaskSpec } from './mask-spec';
import { renderMaskInfo, type RenderMaskOptions } from './render-mask';
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

function positiveList(text: string, name: string): number[] {
  return text.split(',').map((part) => {
    const v = Number(part);
    if (!Number.isInteger(v) || v <= 0) throw new RangeError(`--${name}: expected positive integers separated by commas, got ${text}`);
    return v;
  });
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

// ---- mask ------------------------------------------------------------------------------------

const MASK_USAGE = `usage: splash-attention mask <spec> | --heads <spec> <spec>… [options]
  draws a mask's block map (processMask): █ full, ▒ partial, · empty blocks, and the block counts
  --seq N          q length in tokens (default 2048, or the total of a docs: spec)
  --kv N           kv length in tokens (default: --seq)
  --block Q,KV     block shape in tokens (default 128,128)
  --heads S S …    one spec per head instead of <spec> (a MultiHeadMask); --head H draws only head H
  --width N        widest grid line in characters (default: the terminal's width, else 80); wider maps are downsampled
  --window Q0:Q1,KV0:KV1
                   also draw the token window [Q0, Q1) × [KV0, KV1) element by element
  --svg FILE       also write the picture as SVG (one square per block, token axes, legend)
exit status 2 for a bad spec or option`;

/** A bad mask spec or option: reported with the usage hint and exit status 2. */
class UsageError extends Error {}

interface MaskArgs {
  specs: string[]; // one per head, or a single 2-D mask's
  multiHead: boolean;
  seq?: number;
  kv?: number;
  block: [number, number];
  head?: number;
  width?: number;
  window?: RenderMaskOptions['window'];
  svg?: string;
}

function positiveInteger(text: string | undefined, option: string): number {
  const n = Number(text);
  if (text === undefined || !Number.isInteger(n) || n <= 0) throw new UsageError(`${option}: expected a positive integer, got ${text ?? 'nothing'}`);
  return n;
}

function parseMaskArgs(args: string[]): MaskArgs {
  const words: string[] = [];
  const heads: string[] = [];
  let sawHeads = false;
  const out: MaskArgs = { specs: [], multiHead: false, block: [128, 128] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--')) {
      words.push(a);
      continue;
    }
    const value = () => {
      const v = args[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${a}: expected a value, got ${v ?? 'nothing'}`);
      return v;
    };
    switch (a) {
      case '--seq': out.seq = positiveInteger(value(), a); break;
      case '--kv': out.kv = positiveInteger(value(), a); break;
      case '--head': {
        const v = value();
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) throw new UsageError(`--head: expected a head index ≥ 0, got ${v}`);
        out.head = n;
        break;
      }
      case '--width': out.width = positiveInteger(value(), a); break;
      case '--svg': out.svg = value(); break;
      case '--block': {
        const v = value();
        const parts = v.split(',');
        if (parts.length !== 2) throw new UsageError(`--block: expected Q,KV (two positive integers), got ${v}`);
        out.block = [positiveInteger(parts[0], '--block Q'), positiveInteger(parts[1], '--block KV')];
        break;
      }
      case '--window': {
        const v = value();
        const m = /^(\d+):(\d+),(\d+):(\d+)$/.exec(v);
        if (!m) throw new UsageError(`--window: expected Q0:Q1,KV0:KV1 (token positions), got ${v}`);
        out.window = { q: [Number(m[1]), Number(m[2])], kv: [Number(m[3]), Number(m[4])] };
        break;
      }
      case '--heads':
        sawHeads = true;
        while (i + 1 < args.length && !args[i + 1].startsWith('--')) heads.push(args[++i]);
        if (heads.length === 0) throw new UsageError('--heads: expected one spec per head, got none');
        break;
      default:
        throw new UsageError(`unknown option ${a}; expected one of --seq, --kv, --block, --heads, --head, --width, --window, --svg`);
    }
  }
  if (sawHeads && words.length > 0) throw new UsageError(`expected either <spec> or --heads, got both ('${words.join(' ')}' and --heads)`);
  if (!sawHeads && words.length === 0) throw new UsageError('expected a mask spec, such as causal or \'causal and local:256,0\', got none');
  out.multiHead = sawHeads;
  out.specs = sawHeads ? heads : [words.join(' ')];
  return out;
}

function maskCommand(args: string[]): number {
  if (args.includes('--help') || args.includes('-h')) {
    console.log(`${MASK_USAGE}\n\n${MASK_SPEC_HELP}`);
    return 0;
  }
  let picture: { text: string; svg?: string };
  let file: string | undefined;
  try {
    const a = parseMaskArgs(args);
    const seq = a.seq ?? a.specs.map(impliedSeqLen).find((n) => n !== undefined) ?? 2048;
    const shape: [number, number] = [seq, a.kv ?? seq];
    const masks: Mask[] = a.specs.map((spec) => parseMaskSpec(spec, shape));
    const info = processMask(a.multiHead ? new MultiHeadMask(masks) : masks[0], a.block);
    const width = a.width ?? (process.stdout.isTTY ? process.stdout.columns : undefined) ?? 80;
    const common = { head: a.head, window: a.window };
    picture = { text: renderMaskInfo(info, { ...common, maxWidth: width }) };
    if (a.svg !== undefined) picture.svg = renderMaskInfo(info, { ...common, format: 'svg' });
    file = a.svg;
  } catch (e) {
    if (e instanceof UsageError || e instanceof TypeError || e instanceof RangeError) {
      // renderMaskInfo names its options; here they came from flags, so name the flags.
      const message = e.message.replace(/^opts\.head\b/, '--head').replace(/^opts\.maxWidth\b/, '--width').replace(/^opts\.window\.(q|kv)\b/, '--window ($1)');
      console.error(`splash-attention mask: ${message}\n(run 'splash-attention mask --help' for the spec grammar and options)`);
      return 2;
    }
    throw e;
  }
  process.stdout.write(picture.text);
  if (file !== undefined && picture.svg !== undefined) {
    writeFileSync(file, picture.svg);
    console.log(`wrote ${file} (${(picture.svg.length / 1024).toFixed(1)} KiB)`);
  }
  return 0;
}

const USAGE = `usage: splash-attention <command>
  info                         backends, devices, CPU features
  demo [--backend B] [--heads H] [--seq S] [--dim D]
                               causal forward + backward on random data, timed, checked against the reference
  bench [--json] [--backend B[,B…]] [--seq S | --sizes S,S…] [--plot FILE.svg]
                               forward/backward timings on a few masks (a progress bar on a terminal);
                               --plot draws throughput against S (needs: npm install vega vega-lite)
  mask <spec> [--seq N] [--kv N] [--block Q,KV] [--heads spec…] [--head H] [--width N] [--window Q0:Q1,KV0:KV1] [--svg FILE]
                               draws the mask's block map; 'splash-attention mask --help' for the options

${MASK_SPEC_HELP}`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'info':
      info();
      return 0;
    case 'demo':
      await demo(rest);
      return 0;
    case 'mask':
      return maskCommand(rest);
    case 'bench': {
      const sizes = option(rest, 'sizes');
      await runBench({
        json: rest.includes('--json'),
        backend: (option(rest, 'backend') ?? 'auto').split(',') as BackendName[],
        seq: flag(rest, 'seq', 1024),
        sizes: sizes === undefined ? undefined : positiveList(sizes, 'sizes'),
        plot: option(rest, 'plot'),
      });
      return 0;
    }
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
