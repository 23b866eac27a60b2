// `npm run bench -- <name> [args…]`: runs one benchmark script of this folder in its own node
// process (each script keeps its own command line, and a benchmark never inherits another's heap,
// JIT state or threads). The exit status is the script's. A name not in the table below runs
// bench/<name>.ts when there is one.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

interface Entry {
  script: string;
  about: string;
  nodeFlags?: string[];
}

const BENCHES: Record<string, Entry> = {
  cpu: {
    script: 'cpu.ts',
    about: 'CPU backend fwd/bwd vs the measured FMA peak and onnxruntime-node  [--quick] [--json] [--plot FILE.svg] [--backend cpu|js] [--sizes …] [--no-peer]',
  },
  'cpu-isa': {
    script: 'cpu-isa.ts',
    about: "the CPU kernel paths this CPU has (NEON, BFDOT, AVX2, AVX-512, portable) side by side  [--quick] [--heads 8] [--seq 2048] [--dim 128] [--json]",
  },
  js: { script: 'js.ts', about: 'JS backend forward throughput  [--heads 8] [--seq 2048] [--dim 128] [--repeats 3]' },
  decode: {
    script: 'decode.ts',
    about: 'decoding-shaped forwards (few queries, long cache, grouped-query heads) against one query head per task  [--heads 32] [--kv-heads 8,32] [--queries 1,16] [--keys 1024,4096] [--dtypes …] [--async] [--json]',
  },
  'small-calls': {
    script: 'small-calls.ts',
    about: 'time per call of small causal calls, sync and async, beside onnxruntime-node  [--backend cpu|js] [--seqs 16,128,512] [--heads 1,8] [--calls 1000] [--no-peer] [--json]',
  },
  'mask-info': {
    script: 'mask-info.ts',
    about: 'processMask time and memory on huge masks  [--quick]',
    nodeFlags: ['--expose-gc'], // steadier heap figures, as the script asks
  },
  soak: {
    script: 'soak.ts',
    about: 'memory over many async forward+backward calls  [--calls 10000] [--in-flight 16] [--backend cpu|js] [--json]',
    nodeFlags: ['--expose-gc'], // memory figures after a collection
  },
  peak: { script: 'peak.ts', about: "this machine's peak FMA throughput (compiles bench/fma-peak.cc)  [--quick] [--threads N]" },
  plot: { script: 'plot.ts', about: 'redraw the plot of a saved cpu.json  [FILE] [--out FILE.svg]' },
  ort: {
    script: path.join('peers', 'ort-peer.ts'),
    about: 'onnxruntime-node alone (installs it into bench/peers on first use)  [--sizes …] [--heads 8] [--dim 128] [--threads 2]',
  },
};

/** Modules in bench/ that are not benchmarks. */
const HELPERS = new Set(['run.ts', 'timing.ts', 'cpu-plot.ts']);

/** Scripts in bench/ that the table does not describe (helpers and peers aside). */
function otherScripts(): string[] {
  const known = new Set([...Object.values(BENCHES).map((e) => e.script), ...HELPERS]);
  return readdirSync(__dirname)
    .filter((f) => f.endsWith('.ts') && !known.has(f))
    .map((f) => f.slice(0, -3))
    .sort();
}

function usage(): string {
  const names = Object.keys(BENCHES);
  const width = Math.max(...names.map((n) => n.length));
  const others = otherScripts();
  return [
    'usage: npm run bench -- <name> [args…]',
    '',
    ...names.map((n) => `  ${n.padEnd(width)}  ${BENCHES[n].about}`),
    ...(others.length ? ['', `also: ${others.join(', ')} (bench/<name>.ts)`] : []),
  ].join('\n');
}

const [name, ...rest] = process.argv.slice(2);
if (!name || name === '--help' || name === '-h') {
  console.log(usage());
  process.exit(name ? 0 : 1);
}
const generic = /^[\w-]+$/.test(name) && !HELPERS.has(`${name}.ts`) && existsSync(path.join(__dirname, `${name}.ts`));
const entry: Entry | undefined = BENCHES[name] ?? (generic ? { script: `${name}.ts`, about: '' } : undefined);
if (!entry) {
  console.error(`unknown benchmark '${name}'\n\n${usage()}`);
  process.exit(1);
}

const root = path.join(__dirname, '..');
const child = spawn(
  process.execPath,
  [...(entry.nodeFlags ?? []), '--import', 'tsx', path.join(__dirname, entry.script), ...rest],
  { cwd: root, stdio: 'inherit' },
);
child.on('error', (e) => {
  console.error(`could not start ${entry.script}: ${e.message}`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal) {
    console.error(`${entry.script} was killed by ${signal}`);
    process.exit(1);
  }
  process.exit(code ?? 1);
});
