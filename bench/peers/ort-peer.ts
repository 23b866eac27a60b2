// The CPU benchmark's peer: onnxruntime-node (CPU execution provider) on the same attention problems
// as splash's full and causal masks, through two operators:
//   mha        com.microsoft MultiHeadAttention: q/k/v [B, S, H·D], num_heads, unidirectional=1 for
//              causal, scale=1 (splash does not scale logits; callers scale q)
//   attention  the standard ONNX Attention op (opset 23): q/k/v [B, H, S, D], is_causal, scale=1
// Each is a one-node model written by ./onnx-proto.ts. Inputs are built once in the peer's own
// layout, so the timings hold no transposes. Before timing, both ops are checked against splash's
// reference backend on a small problem (max |error| printed) so the comparison is like for like.
//
// onnxruntime-node lives in bench/peers/node_modules, never in splash-attention's dependencies:
//   npm install --prefix bench/peers --onnxruntime-node-install=skip
// (its postinstall would otherwise download from a host we cannot reach; the CPU binaries ship in
// the npm package). bench/cpu.ts does this on first use (ensureOrtInstalled below).
//
//   npx tsx bench/peers/ort-peer.ts [--sizes 1024,4096] [--heads 8] [--dim 128] [--threads 2]
//                                   [--ops mha,attention] [--masks full,causal] [--json]

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

import { CausalMask, FullMask, fromFloat32, makeSplashMHA, toFloat32 } from '../../lib/index';
import { randomNormal } from '../../lib/random';
import { timeRuns } from '../timing';
import { ElemType, encodeModel, type ModelSpec } from './onnx-proto';

// ---- installation ----------------------------------------------------------------------------

const PEERS_DIR = __dirname;
const ORT_DIR = path.join(PEERS_DIR, 'node_modules', 'onnxruntime-node');

export interface InstallInfo {
  version: string;
  installedNow: boolean;
  seconds?: number; // npm install wall time, when installed by this run
  mib: number; // size of bench/peers/node_modules
  command: string;
}

function wantedVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(PEERS_DIR, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  return pkg.dependencies['onnxruntime-node'];
}

function installedVersion(): string | null {
  const file = path.join(ORT_DIR, 'package.json');
  if (!existsSync(file)) return null;
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

function directoryBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) total += directoryBytes(p);
    else if (entry.isFile()) total += statSync(p).size;
  }
  return total;
}

const INSTALL_ARGS = ['install', '--prefix', PEERS_DIR, '--onnxruntime-node-install=skip', '--no-package-lock', '--no-audit', '--no-fund'];

/**
 * Installs onnxruntime-node into bench/peers unless the pinned version is already there; with
 * `install: false` it throws instead of installing.
 */
export function ensureOrtInstalled(log: (line: string) => void = () => {}, opts: { install?: boolean } = {}): InstallInfo {
  const want = wantedVersion();
  const command = `npm ${INSTALL_ARGS.join(' ').replace(PEERS_DIR, path.relative(process.cwd(), PEERS_DIR) || '.')}`;
  const have = installedVersion();
  if (have === want) {
    return { version: have, installedNow: false, mib: directoryBytes(path.join(PEERS_DIR, 'node_modules')) / 2 ** 20, command };
  }
  if (opts.install === false) {
    throw new Error(`onnxruntime-node ${want} is not installed in bench/peers (${have ? `found ${have}` : 'missing'}); install it with: ${command}`);
  }
  log(`installing onnxruntime-node ${want} into bench/peers (first use): ${command}`);
  const t0 = performance.now();
  const r = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', INSTALL_ARGS, {
    encoding: 'utf8',
    shell: process.platform === 'win32',
    // The same switch as the flag, for npm versions that stop passing unknown flags to install scripts.
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
  });
  const seconds = (performance.now() - t0) / 1000;
  if (r.error || r.status !== 0) {
    throw new Error(`${command} failed (exit ${r.status}): ${(r.stderr || String(r.error)).trim().slice(-800)}`);
  }
  const got = installedVersion();
  if (got !== want) throw new Error(`${command} finished but onnxruntime-node ${want} is not in ${ORT_DIR}`);
  return { version: got, installedNow: true, seconds, mib: directoryBytes(path.join(PEERS_DIR, 'node_modules')) / 2 ** 20, command };
}

// ---- the slice of onnxruntime-node's API used here (typed locally: the peer is optional) --------

interface OrtTensor {
  data: unknown;
  dims: readonly number[];
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
export interface OrtModule {
  env: { versions: Record<string, string> };
  Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor;
  InferenceSession: { create(model: Uint8Array, options: Record<string, unknown>): Promise<OrtSession> };
}

export function loadOrt(): OrtModule {
  // Resolved from bench/peers/node_modules, whatever the caller's working directory.
  return require(require.resolve('onnxruntime-node', { paths: [PEERS_DIR] })) as OrtModule;
}

// ---- models --------------------------------------------------------------------------------

export type PeerOp = 'mha' | 'attention';
export type PeerMask = 'full' | 'causal';

export const OP_LABEL: Record<PeerOp, string> = {
  mha: 'com.microsoft MultiHeadAttention',
  attention: 'ONNX Attention (opset 23)',
};

/** A one-node model for (op, mask) at batch 1, `heads` heads of size `dim`, sequence `seq`. */
export function buildModel(op: PeerOp, mask: PeerMask, heads: number, seq: number, dim: number): Uint8Array {
  const causal = mask === 'causal' ? 1 : 0;
  // Shapes in the peer's own layout.
  const shape = op === 'mha' ? [1, seq, heads * dim] : [1, heads, seq, dim];
  const io = (name: string) => ({ name, elemType: ElemType.FLOAT, shape });
  const spec: ModelSpec =
    op === 'mha'
      ? {
          irVersion: 8, // ONNX 1.10+; the com.microsoft contrib op needs nothing newer
          opsets: [
            { domain: '', version: 17 },
            { domain: 'com.microsoft', version: 1 },
          ],
          graph: {
            name: `mha_${mask}`,
            nodes: [
              {
                opType: 'MultiHeadAttention',
                domain: 'com.microsoft',
                name: 'mha',
                inputs: ['q', 'k', 'v'],
                outputs: ['y'],
                attributes: { num_heads: { int: heads }, scale: { float: 1 }, unidirectional: { int: causal } },
              },
            ],
            inputs: [io('q'), io('k'), io('v')],
            outputs: [io('y')],
          },
        }
      : {
          irVersion: 11, // opset 23 came with ONNX 1.18, IR version 11
          opsets: [{ domain: '', version: 23 }],
          graph: {
            name: `attention_${mask}`,
            nodes: [
              {
                opType: 'Attention',
                name: 'attention',
                inputs: ['q', 'k', 'v'],
                outputs: ['y'],
                attributes: { is_causal: { int: causal }, scale: { float: 1 } },
              },
            ],
            inputs: [io('q'), io('k'), io('v')],
            outputs: [io('y')],
          },
        };
  return encodeModel(spec);
}

// ---- running -------------------------------------------------------------------------------

export interface PeerSpec {
  heads: number;
  dim: number;
  sizes: number[];
  ops: PeerOp[];
  masks: PeerMask[];
  threads: number; // intraOpNumThreads
  check: boolean;
  peak?: number; // GFLOP/s, only to print a %peak column
}

export interface PeerRow {
  op: PeerOp;
  mask: PeerMask;
  heads: number;
  seq: number;
  dim: number;
  ms: number; // median
  reps: number;
  times: number[];
  gflops: number; // unmasked work only: 4·D per allowed (q, kv) pair per head
  cores: number; // CPU time / wall time during the timed runs (onnxruntime's threads spin, so ≈ threads)
}

export interface PeerCheck {
  op: PeerOp;
  mask: PeerMask;
  heads: number;
  seq: number;
  dim: number;
  maxAbsError: number;
  maxAbsRef: number;
}

export interface PeerResult {
  ortVersion: string;
  threads: number;
  ops: Record<PeerOp, { supported: boolean; error?: string }>;
  checks: PeerCheck[];
  rows: PeerRow[];
}

export function sessionOptions(threads: number): Record<string, unknown> {
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
}

/** [H, S, D] (splash's layout) → [1, S, H·D] (MultiHeadAttention's). */
function headsToTokens(x: Float32Array, heads: number, seq: number, dim: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < seq; s++) {
      out.set(x.subarray((h * seq + s) * dim, (h * seq + s + 1) * dim), (s * heads + h) * dim);
    }
  }
  return out;
}

function tokensToHeads(x: Float32Array, heads: number, seq: number, dim: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let s = 0; s < seq; s++) {
    for (let h = 0; h < heads; h++) {
      out.set(x.subarray((s * heads + h) * dim, (s * heads + h + 1) * dim), (h * seq + s) * dim);
    }
  }
  return out;
}

export function inputs(heads: number, seq: number, dim: number): { q: Float32Array; k: Float32Array; v: Float32Array } {
  const n = heads * seq * dim;
  // Same seeds and scaling as bench/cpu.ts: q carries the 1/√D that splash leaves to the caller.
  return { q: randomNormal(n, 11, 1 / Math.sqrt(dim)), k: randomNormal(n, 12), v: randomNormal(n, 13) };
}

export function feeds(ort: OrtModule, op: PeerOp, x: ReturnType<typeof inputs>, heads: number, seq: number, dim: number) {
  const layout = (a: Float32Array) => (op === 'mha' ? headsToTokens(a, heads, seq, dim) : a);
  const shape = op === 'mha' ? [1, seq, heads * dim] : [1, heads, seq, dim];
  return {
    q: new ort.Tensor('float32', layout(x.q), shape),
    k: new ort.Tensor('float32', layout(x.k), shape),
    v: new ort.Tensor('float32', layout(x.v), shape),
  };
}

async function checkOp(ort: OrtModule, op: PeerOp, mask: PeerMask, threads: number): Promise<PeerCheck> {
  const heads = 2;
  const seq = 200; // not a multiple of any block size
  const dim = 32;
  const x = inputs(heads, seq, dim);
  const session = await ort.InferenceSession.create(buildModel(op, mask, heads, seq, dim), sessionOptions(threads));
  try {
    const y = (await session.run(feeds(ort, op, x, heads, seq, dim))).y.data as Float32Array;
    const got = op === 'mha' ? tokensToHeads(y, heads, seq, dim) : y;
    const m = mask === 'full' ? new FullMask([seq, seq]) : new CausalMask([seq, seq]);
    const shape = [heads, seq, dim];
    const ref = toFloat32(
      makeSplashMHA(m, { backend: 'reference' }).forwardSync(
        fromFloat32(x.q, shape, 'float32'),
        fromFloat32(x.k, shape, 'float32'),
        fromFloat32(x.v, shape, 'float32'),
      ),
    );
    let maxAbsError = 0;
    let maxAbsRef = 0;
    for (let i = 0; i < ref.length; i++) {
      maxAbsError = Math.max(maxAbsError, Math.abs(got[i] - ref[i]));
      maxAbsRef = Math.max(maxAbsRef, Math.abs(ref[i]));
    }
    return { op, mask, heads, seq, dim, maxAbsError, maxAbsRef };
  } finally {
    await session.release();
  }
}

/** Allowed (q, kv) pairs: S² for full, S(S+1)/2 for causal. */
function allowedPairs(mask: PeerMask, seq: number): number {
  return mask === 'full' ? seq * seq : (seq * (seq + 1)) / 2;
}

export async function runPeer(spec: PeerSpec, log: (line: string) => void = () => {}): Promise<PeerResult> {
  const ort = loadOrt();
  const result: PeerResult = {
    ortVersion: ort.env.versions.node ?? ort.env.versions.common ?? 'unknown',
    threads: spec.threads,
    ops: { mha: { supported: false }, attention: { supported: false } },
    checks: [],
    rows: [],
  };
  const ops: PeerOp[] = [];
  for (const op of spec.ops) {
    try {
      // Creating the session is where an unsupported op, opset or attribute is reported.
      const session = await ort.InferenceSession.create(buildModel(op, 'causal', 1, 16, 8), sessionOptions(1));
      await session.release();
      result.ops[op] = { supported: true };
      ops.push(op);
    } catch (e) {
      result.ops[op] = { supported: false, error: (e as Error).message.split('\n')[0] };
    }
  }
  for (const op of spec.ops) {
    const s = result.ops[op];
    log(`${OP_LABEL[op]}: ${s.supported ? 'supported' : `NOT SUPPORTED by onnxruntime-node ${result.ortVersion} — ${s.error}`}`);
  }
  if (spec.check) {
    for (const op of ops) {
      for (const mask of spec.masks) {
        const c = await checkOp(ort, op, mask, spec.threads);
        result.checks.push(c);
        log(
          `check ${op} ${mask} against splash's reference backend (H=${c.heads} S=${c.seq} D=${c.dim}): ` +
            `max |err| ${c.maxAbsError.toExponential(2)} (max |out| ${c.maxAbsRef.toFixed(2)})`,
        );
      }
    }
  }
  log(`${'op'.padEnd(10)} ${'mask'.padEnd(7)} ${'H'.padStart(3)} ${'S'.padStart(6)} ${'D'.padStart(4)} ${'ms'.padStart(8)} ${'n'.padStart(3)} ${'GFLOP/s'.padStart(9)} ${'%peak'.padStart(6)} ${'cores'.padStart(6)}`);
  for (const seq of spec.sizes) {
    const x = inputs(spec.heads, seq, spec.dim);
    for (const op of ops) {
      const f = feeds(ort, op, x, spec.heads, seq, spec.dim);
      for (const mask of spec.masks) {
        const session = await ort.InferenceSession.create(buildModel(op, mask, spec.heads, seq, spec.dim), sessionOptions(spec.threads));
        try {
          const { ms, reps, times, cores } = await timeRuns(() => session.run(f));
          const flops = 4 * spec.dim * spec.heads * allowedPairs(mask, seq);
          const row: PeerRow = { op, mask, heads: spec.heads, seq, dim: spec.dim, ms, reps, times, gflops: flops / ms / 1e6, cores };
          result.rows.push(row);
          const pct = spec.peak ? ((100 * row.gflops) / spec.peak).toFixed(1) : 'n/a';
          log(
            `${op.padEnd(10)} ${mask.padEnd(7)} ${String(spec.heads).padStart(3)} ${String(seq).padStart(6)} ` +
              `${String(spec.dim).padStart(4)} ${ms.toFixed(1).padStart(8)} ${String(reps).padStart(3)} ` +
              `${row.gflops.toFixed(1).padStart(9)} ${pct.padStart(6)} ${cores.toFixed(2).padStart(6)}` +
              // as in bench/cpu.ts: '*' = fewer cores busy than threads asked for, other work took them
              (cores < 0.85 * spec.threads ? ' *' : ''),
          );
        } finally {
          await session.release();
        }
      }
    }
  }
  return result;
}

// ---- command line --------------------------------------------------------------------------

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function list<T extends string>(name: string, fallback: T[]): T[] {
  const v = flag(name);
  return v ? (v.split(',') as T[]) : fallback;
}

if (require.main === module) {
  const json = process.argv.includes('--json');
  // With --json, stdout carries only the result; progress goes to stderr.
  const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);
  const spec: PeerSpec = {
    heads: Number(flag('heads') ?? 8),
    dim: Number(flag('dim') ?? 128),
    sizes: list('sizes', ['1024', '2048', '4096', '8192']).map(Number),
    ops: list<PeerOp>('ops', ['mha', 'attention']),
    masks: list<PeerMask>('masks', ['full', 'causal']),
    threads: Number(flag('threads') ?? 2),
    check: !process.argv.includes('--no-check'),
    peak: flag('peak') ? Number(flag('peak')) : undefined,
  };
  (async () => {
    const install = ensureOrtInstalled(log);
    log(
      `onnxruntime-node ${install.version}: bench/peers/node_modules ${install.mib.toFixed(0)} MiB` +
        (install.installedNow ? `, installed by this run in ${install.seconds?.toFixed(1)} s` : ''),
    );
    const result = await runPeer(spec, log);
    if (json) process.stdout.write(`${JSON.stringify({ install, ...result })}\n`);
  })().catch((e: unknown) => {
    console.error(e instanceof Error ? e.stack ?? e.message : e);
    process.exit(1);
  });
}
