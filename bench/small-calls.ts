// Time per call of small attention calls, where a call's fixed cost (argument checks, marshalling,
// allocating the results, waking the threads) is a large part of the whole: decode-sized and short
// prefill calls, as a server makes them one after another.
//   npm run bench -- small-calls [--backend cpu] [--seqs 16,128,512] [--heads 1,8] [--dim 64]
//                                [--calls 1000] [--rounds 7] [--no-peer] [--json]
// Causal masks, f32, q/k/v [H, S, D]. Each case runs forwardSync, backwardSync and the async forward and
// backward (awaited one at a time); a round times --calls calls in a row and the figure is the median
// of the rounds, in microseconds per call. With onnxruntime-node installed in bench/peers (`npm run
// bench -- ort` installs it), its MultiHeadAttention (causal, 2 threads) is timed the same way in the
// same run; its session.run is async only.

import { CausalMask, fromFloat32, makeSplashMHA, type Tensor } from '../lib/index';
import { randomNormal } from '../lib/random';
import { flag } from './args';
import { buildModel, ensureOrtInstalled, feeds, inputs, loadOrt, sessionOptions } from './peers/ort-peer';
import { median } from './timing';

const list = (name: string, fallback: string): number[] => (flag(name) ?? fallback).split(',').map(Number);
const backend = (flag('backend') ?? 'cpu') as 'cpu' | 'js';
const seqs = list('seqs', '16,128,512');
const headCounts = list('heads', '1,8');
const dim = Number(flag('dim') ?? '64');
const calls = Number(flag('calls') ?? '1000');
const rounds = Number(flag('rounds') ?? '7');
const json = process.argv.includes('--json');
const withPeer = !process.argv.includes('--no-peer');

/** Median over rounds of the mean time per call of `calls` calls, in µs; one untimed round first. */
async function perCall(run: () => unknown): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r <= rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) await run();
    if (r > 0) times.push(((performance.now() - t0) * 1000) / calls);
  }
  return median(times);
}

function perCallSync(run: () => unknown): number {
  const times: number[] = [];
  for (let r = 0; r <= rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) run();
    if (r > 0) times.push(((performance.now() - t0) * 1000) / calls);
  }
  return median(times);
}

interface Row {
  backend: string;
  heads: number;
  seq: number;
  dim: number;
  pass: string;
  us: number;
}

function report(row: Row): void {
  if (json) {
    console.log(JSON.stringify(row));
    return;
  }
  console.log(`${row.backend.padEnd(8)} H=${String(row.heads).padEnd(2)} S=${String(row.seq).padEnd(4)} D=${row.dim} ` +
    `${row.pass.padEnd(13)} ${row.us.toFixed(1).padStart(9)} us/call`);
}

/** Our calls for one size: sync and async, forward and backward. */
async function ours(heads: number, seq: number): Promise<void> {
  const shape = [heads, seq, dim];
  const n = heads * seq * dim;
  const t = (seed: number, scale = 1): Tensor => fromFloat32(randomNormal(n, seed, scale), shape, 'float32');
  const q = t(11, 1 / Math.sqrt(dim));
  const k = t(12);
  const v = t(13);
  const dout = t(14);
  const kernel = makeSplashMHA(new CausalMask([seq, seq]), { backend, saveResiduals: true });
  const { out, logsumexp } = kernel.forwardSync(q, k, v) as { out: Tensor; logsumexp: Tensor };
  const bwd = { q, k, v, out, logsumexp, dout };
  const row = (pass: string, us: number): void => report({ backend, heads, seq, dim, pass, us });
  row('forwardSync', perCallSync(() => kernel.forwardSync(q, k, v)));
  row('forward', await perCall(() => kernel.forward(q, k, v)));
  row('backwardSync', perCallSync(() => kernel.backwardSync(bwd)));
  row('backward', await perCall(() => kernel.backward(bwd)));
}

type Peer = (heads: number, seq: number) => Promise<void>;

/** onnxruntime-node's causal MultiHeadAttention on the same sizes, or null when it is not installed. */
function ortPeer(): Peer | null {
  try {
    ensureOrtInstalled(() => {}, { install: false });
  } catch (e) {
    console.log(`peer skipped: ${(e as Error).message}`);
    return null;
  }
  const ort = loadOrt();
  return async (heads, seq) => {
    const session = await ort.InferenceSession.create(buildModel('mha', 'causal', heads, seq, dim), sessionOptions(2));
    try {
      const f = feeds(ort, 'mha', inputs(heads, seq, dim), heads, seq, dim);
      report({ backend: 'ort-mha', heads, seq, dim, pass: 'forward', us: await perCall(() => session.run(f)) });
    } finally {
      await session.release();
    }
  };
}

async function main(): Promise<void> {
  const peer = withPeer && backend === 'cpu' ? ortPeer() : null;
  for (const heads of headCounts) {
    for (const seq of seqs) {
      await ours(heads, seq);
      if (peer !== null) await peer(heads, seq);
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
