// npm run example:tiny-gpt [-- --seconds 120 --backend wasm|cpu --attention splash|dense ...]
// Trains the tiny transformer on the story grammar for a bounded time, shows a progress bar with the
// loss and tokens/s, samples a few stories and writes loss.svg (and summary.json) to --out.

import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

import { checkStory, END, entropyPerChar, makeBatch, makeRng, VOCAB, type Batch } from './data';
import { createModel, crossEntropy, forward, parameters, type AttentionKind, type Model } from './model';
import { renderLossSvg } from './plot';
import { generate } from './sample';
import { trainStep } from './step';

const USAGE = `usage: npm run example:tiny-gpt [-- options]
  --seconds N       training time budget (default 120)
  --steps N         stop earlier after N steps
  --backend B       tfjs backend: wasm (default) or cpu
  --attention A     splash (default) or dense (tfjs ops, for comparison)
  --seq N --batch N sequence length (128) and rows per step (8)
  --lr X --seed N   Adam learning rate (0.003), seed of weights and data (1)
  --sample-chars N  most characters to sample at the end (600)
  --out DIR         where loss.svg and summary.json go (examples/tiny-gpt/out)`;

function parse(): ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'] {
  try {
    return parseArgs({ options: OPTIONS }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

const OPTIONS = {
  seconds: { type: 'string', default: '120' },
  steps: { type: 'string', default: '100000' },
  backend: { type: 'string', default: 'wasm' },
  attention: { type: 'string', default: 'splash' },
  seq: { type: 'string', default: '128' },
  batch: { type: 'string', default: '8' },
  lr: { type: 'string', default: '0.003' },
  seed: { type: 'string', default: '1' },
  'sample-chars': { type: 'string', default: '600' },
  out: { type: 'string', default: path.join(__dirname, 'out') },
  help: { type: 'boolean', default: false },
} as const;

const args = parse();

function positive(name: string, integer: boolean): number {
  const v = Number(args[name as keyof typeof args]);
  if (!(v > 0) || (integer && !Number.isInteger(v))) {
    throw new RangeError(`--${name}: expected a positive ${integer ? 'integer' : 'number'}, got ${args[name as keyof typeof args]}`);
  }
  return v;
}

function oneOf<T extends string>(name: string, allowed: readonly T[]): T {
  const v = args[name as keyof typeof args] as string;
  if (!(allowed as readonly string[]).includes(v)) throw new TypeError(`--${name}: expected one of ${allowed.join(', ')}, got ${v}`);
  return v as T;
}

/** Mean loss over fixed batches, forward only. */
function evalLoss(model: Model, batches: Batch[], attention: AttentionKind): number {
  const losses = batches.map((b) => tf.tidy(() =>
    crossEntropy(forward(model, b.tokens, b.segmentIds, b.batch, attention), b.targets).dataSync()[0]));
  return losses.reduce((s, x) => s + x, 0) / losses.length;
}

/** One line, redrawn in place on a terminal; every 10 % as its own line otherwise. */
function progress(fraction: number, text: string, state: { lastDecile: number }): void {
  const width = 30;
  const filled = Math.round(Math.min(1, fraction) * width);
  const line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(100 * Math.min(1, fraction)).toFixed(0).padStart(3)}% ${text}`;
  if (process.stderr.isTTY) {
    process.stderr.write(`\r${line}\x1b[K`);
  } else if (Math.floor(fraction * 10) > state.lastDecile) {
    state.lastDecile = Math.floor(fraction * 10);
    process.stderr.write(`${line}\n`);
  }
}

async function main(): Promise<void> {
  if (args.help) {
    console.log(USAGE);
    return;
  }
  const seconds = positive('seconds', false);
  const maxSteps = positive('steps', true);
  const seqLen = positive('seq', true);
  const batchSize = positive('batch', true);
  const lr = positive('lr', false);
  const seed = positive('seed', true);
  const sampleChars = positive('sample-chars', true);
  const backend = oneOf('backend', ['wasm', 'cpu'] as const);
  const attention = oneOf('attention', ['splash', 'dense'] as const);

  tf.enableProdMode(); // no debug checks, no console banner
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend ${backend} failed to initialise`);
  await tf.ready();

  const config = { vocab: VOCAB.length, seqLen, dModel: 64, heads: 4, layers: 2, mlpHidden: 256 };
  const model = createModel(config, seed);
  const optimizer = tf.train.adam(lr);
  const uniform = Math.log(VOCAB.length);
  const floor = entropyPerChar();
  const heldOut = Array.from({ length: 4 }, (_, i) => makeBatch(makeRng(1_000_000 + i), batchSize, seqLen));
  const rng = makeRng(seed);
  const tokensPerStep = batchSize * seqLen;
  const paramCount = parameters(model).reduce((n, p) => n + p.size, 0);
  console.log(`tiny-gpt: ${paramCount.toLocaleString('en-US')} parameters (${config.layers} layers, d=${config.dModel}, ` +
    `${config.heads} heads), seq ${seqLen}, batch ${batchSize}, ` +
    `vocab ${config.vocab}; tfjs backend ${tf.getBackend()}, attention ${attention}` +
    (attention === 'splash' ? ` (kernel backend ${model.kernel.backend})` : ''));
  console.log(`uniform baseline ln(${config.vocab}) = ${uniform.toFixed(3)} nats/char; the grammar's entropy = ${floor.toFixed(3)}`);
  const valBefore = evalLoss(model, heldOut, attention);

  const history: { step: number; seconds: number; loss: number }[] = [];
  const bar = { lastDecile: -1 };
  const start = performance.now();
  let ema = NaN;
  for (let step = 1; step <= maxSteps; step++) {
    const batch = makeBatch(rng, batchSize, seqLen);
    const loss = trainStep(model, optimizer, batch, attention);
    const elapsed = (performance.now() - start) / 1000;
    history.push({ step, seconds: elapsed, loss });
    ema = Number.isNaN(ema) ? loss : 0.9 * ema + 0.1 * loss;
    const tokS = (step * tokensPerStep) / elapsed;
    progress(Math.max(elapsed / seconds, step / maxSteps),
      `step ${step} loss ${ema.toFixed(3)} ${Math.round(tokS).toLocaleString('en-US')} tok/s ${elapsed.toFixed(0)}s`, bar);
    if (elapsed >= seconds) break;
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
  const trainSeconds = history[history.length - 1].seconds;
  const steps = history.length;
  const valAfter = evalLoss(model, heldOut, attention);
  const tail = history.slice(-Math.max(1, Math.floor(steps / 10)));
  const finalTrain = tail.reduce((s, h) => s + h.loss, 0) / tail.length;

  console.log(`${steps} steps in ${trainSeconds.toFixed(1)} s: ${(steps / trainSeconds).toFixed(2)} steps/s, ` +
    `${Math.round((steps * tokensPerStep) / trainSeconds).toLocaleString('en-US')} tokens/s`);
  console.log(`loss: first step ${history[0].loss.toFixed(3)}, last 10 % of steps ${finalTrain.toFixed(3)}; ` +
    `held-out ${valBefore.toFixed(3)} → ${valAfter.toFixed(3)} nats/char (uniform ${uniform.toFixed(3)}, floor ${floor.toFixed(3)})`);

  const sampleRng = makeRng(seed + 7);
  const text = generate(model, 'story of ', { stories: 4, maxChars: sampleChars, temperature: 0.7, rng: sampleRng, attention });
  const stories = text.split(END).filter((s) => s.length > 0);
  const checks = stories.map(checkStory);
  console.log('\nsamples (temperature 0.7, prompt "story of "):');
  for (const s of stories) console.log(`  ${s}`);
  const total = (key: 'sentences' | 'wellFormed' | 'heroKept'): number => checks.reduce((n, c) => n + c[key], 0);
  console.log(`${checks.filter((c) => c.grammatical).length} of ${stories.length} stories follow the grammar throughout; ` +
    `${total('wellFormed')} of ${total('sentences')} sentences are well formed, ${total('heroKept')} of them about the title's hero\n`);

  mkdirSync(args.out!, { recursive: true });
  const svg = await renderLossSvg({
    title: 'tiny-gpt training loss',
    subtitle: `${attention} attention, tfjs ${backend}, seq ${seqLen} × batch ${batchSize}, ${steps} steps in ${trainSeconds.toFixed(0)} s`,
    losses: history.map((h) => [h.step, h.loss]),
    references: [
      { name: `uniform, ln ${config.vocab}`, y: uniform, color: '#c0392b' },
      { name: 'entropy of the grammar', y: floor, color: '#1e8449' },
    ],
  });
  const svgPath = path.join(args.out!, 'loss.svg');
  writeFileSync(svgPath, svg);
  writeFileSync(path.join(args.out!, 'summary.json'), `${JSON.stringify({
    config, backend, attention, lr, seed, steps, trainSeconds, tokensPerStep,
    stepsPerSecond: steps / trainSeconds, tokensPerSecond: (steps * tokensPerStep) / trainSeconds,
    uniform, floor, firstLoss: history[0].loss, finalTrainLoss: finalTrain, heldOutBefore: valBefore, heldOutAfter: valAfter,
    samples: stories, sampleChecks: checks, history,
  }, null, 1)}\n`);
  console.log(`wrote ${svgPath}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
