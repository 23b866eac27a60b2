// npx tsx examples/tiny-gpt/bench.ts [--seq 1024 --batch 2 --rounds 5 --backends cpu,wasm]
// Training speed of the same model with splash attention and with the dense tfjs attention a user
// would write, in one run: both start from the same weights, take the same batches, and alternate
// step by step so that a busy machine slows both alike. Prints medians; writes out/bench.json.

import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

import { makeBatch, makeRng, VOCAB } from './data';
import { createModel, disposeModel, type AttentionKind } from './model';
import { trainStep } from './step';

const { values: args } = parseArgs({
  options: {
    seq: { type: 'string', default: '1024' },
    batch: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '5' },
    backends: { type: 'string', default: 'cpu,wasm' },
    out: { type: 'string', default: path.join(__dirname, 'out') },
  },
});

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

interface Row {
  backend: string; attention: AttentionKind; seqLen: number; batch: number; rounds: number;
  medianMs: number; stepsPerSecond: number; tokensPerSecond: number; firstLoss: number;
}

async function main(): Promise<void> {
  const seqLen = Number(args.seq);
  const batch = Number(args.batch);
  const rounds = Number(args.rounds);
  for (const [name, v] of [['seq', seqLen], ['batch', batch], ['rounds', rounds]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new RangeError(`--${name}: expected a positive integer, got ${args[name]}`);
  }
  tf.enableProdMode();
  const rows: Row[] = [];
  for (const backend of args.backends!.split(',')) {
    if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend ${backend} failed to initialise`);
    await tf.ready();
    const config = { vocab: VOCAB.length, seqLen, dModel: 64, heads: 4, layers: 2, mlpHidden: 256 };
    const kinds: AttentionKind[] = ['splash', 'dense'];
    const runs = kinds.map((attention) => ({
      attention, model: createModel(config, 1), optimizer: tf.train.adam(3e-3), ms: [] as number[], losses: [] as number[],
    }));
    // Round 0 warms up (kernel set-up, wasm code paths) and is not timed.
    for (let r = 0; r <= rounds; r++) {
      const b = makeBatch(makeRng(100 + r), batch, seqLen);
      for (const run of runs) {
        const t0 = performance.now();
        run.losses.push(trainStep(run.model, run.optimizer, b, run.attention));
        if (r > 0) run.ms.push(performance.now() - t0);
        process.stderr.write(`\r${backend} round ${r}/${rounds} ${run.attention}: ${(performance.now() - t0).toFixed(0)} ms   `);
      }
    }
    process.stderr.write('\n');
    for (const run of runs) {
      const ms = median(run.ms);
      rows.push({
        backend, attention: run.attention, seqLen, batch, rounds, medianMs: ms,
        stepsPerSecond: 1000 / ms, tokensPerSecond: (1000 / ms) * batch * seqLen, firstLoss: run.losses[0],
      });
      disposeModel(run.model);
      run.optimizer.dispose();
    }
  }
  console.log(`tiny-gpt training step, seq ${seqLen} × batch ${batch}, median of ${rounds} steps ` +
    `(load average at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} cores)\n`);
  console.log('| tfjs backend | attention | ms / step | steps/s | tokens/s | splash speed-up | loss at step 1 |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const dense = rows.find((d) => d.backend === r.backend && d.attention === 'dense')!;
    console.log(`| ${r.backend} | ${r.attention} | ${r.medianMs.toFixed(0)} | ${r.stepsPerSecond.toFixed(2)} | ` +
      `${Math.round(r.tokensPerSecond).toLocaleString('en-US')} | ${r.attention === 'splash' ? `${(dense.medianMs / r.medianMs).toFixed(2)}×` : ''} | ` +
      `${r.firstLoss.toFixed(4)} |`);
  }
  mkdirSync(args.out!, { recursive: true });
  writeFileSync(path.join(args.out!, `bench-${seqLen}.json`), `${JSON.stringify({ rows, loadavg: os.loadavg(), cpus: os.cpus().length }, null, 1)}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
