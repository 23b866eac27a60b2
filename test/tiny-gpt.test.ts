// examples/tiny-gpt: its data, its plot, its model on splash vs dense attention, a few training
// steps that must lower the loss, and the npm script's program end to end on a tiny size.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-cpu';

import { checkStory, decode, END, encode, entropyPerChar, makeBatch, makeRng, story, storyStats, VOCAB } from '../examples/tiny-gpt/data';
import { createModel, crossEntropy, disposeModel, forward, parameters, type AttentionKind } from '../examples/tiny-gpt/model';
import { centredMean, lossSpec } from '../examples/tiny-gpt/plot';
import { trainStep } from '../examples/tiny-gpt/step';
import { relErr } from './support/compare';

const root = path.join(__dirname, '..');
const small = (seqLen: number) => ({ vocab: VOCAB.length, seqLen, dModel: 32, heads: 4, layers: 2, mlpHidden: 64 });

describe('examples/tiny-gpt', function () {
  this.timeout(60_000);
  before(async () => {
    // tfjs's test mode: every kernel run is checked for leaked backend data (and no console banner).
    tf.env().set('IS_TEST', true);
    await tf.setBackend('cpu');
  });

  describe('data', () => {
    it('packs whole stories per row, targets are the next character, segment ids count stories', () => {
      const b = makeBatch(makeRng(4), 3, 200);
      const endId = encode(END)[0];
      for (let r = 0; r < 3; r++) {
        const row = (a: Int32Array) => Array.from(a.subarray(r * 200, (r + 1) * 200));
        const [tokens, targets, seg] = [row(b.tokens), row(b.targets), row(b.segmentIds)];
        assert.ok(decode(tokens).startsWith('story of '), `row ${r} starts a story`);
        assert.deepEqual(tokens.slice(1), targets.slice(0, -1), `row ${r}: target i is token i + 1`);
        for (let i = 1; i < 200; i++) {
          assert.equal(seg[i], seg[i - 1] + (tokens[i - 1] === endId ? 1 : 0), `row ${r} position ${i}: a new id after each END`);
        }
        assert.ok(seg[199] >= 2, `row ${r} holds more than one story`);
      }
    });

    it('the entropy rate uses the generator\'s own expected story length', () => {
      const rng = makeRng(9);
      let chars = 0;
      const n = 20_000;
      for (let i = 0; i < n; i++) chars += story(rng).length;
      // Sample mean of 20k stories (sd ≈ 35 chars): within 1 % of the expectation by a wide margin.
      assert.ok(Math.abs(chars / n - storyStats().chars) / storyStats().chars < 0.01, `mean length ${chars / n} vs ${storyStats().chars}`);
      assert.ok(entropyPerChar() > 0.1 && entropyPerChar() < Math.log(VOCAB.length));
    });

    it('checkStory accepts the generator\'s stories and counts broken sentences and lost heroes', () => {
      const rng = makeRng(5);
      for (let i = 0; i < 200; i++) {
        const c = checkStory(story(rng).slice(0, -1));
        assert.ok(c.grammatical && c.sentences >= 2 && c.wellFormed === c.sentences && c.heroKept === c.sentences);
      }
      assert.deepEqual(checkStory('story of ada: ada sees the red cat. bob sees the old box today.'),
        { grammatical: true, sentences: 2, wellFormed: 2, heroKept: 1 });
      assert.deepEqual(checkStory('story of ada: ada sees the red. ada sees the odd cup.'),
        { grammatical: false, sentences: 2, wellFormed: 1, heroKept: 1 });
      assert.deepEqual(checkStory('story of ada: ada sees the red cat.'),
        { grammatical: false, sentences: 1, wellFormed: 1, heroKept: 1 }, 'one sentence is too few');
      assert.deepEqual(checkStory('stor of ada: ada sees the red cat. ada sees the red cat.'),
        { grammatical: false, sentences: 2, wellFormed: 1, heroKept: 0 }, 'no title: its words make the first sentence');
    });
  });

  describe('plot', () => {
    it('centredMean smooths with a window that stays centred at the ends', () => {
      assert.deepEqual(centredMean([1, 2, 3, 4, 5], 3), [1, 2, 3, 4, 5], 'a straight line is kept, ends too');
      assert.deepEqual(centredMean([0, 0, 9, 0, 0, 0], 3), [0, 3, 3, 3, 0, 0]);
      assert.deepEqual(centredMean([6, 0, 0, 0, 0, 0, 0], 5), [6, 2, 1.2, 0, 0, 0, 0]);
    });

    it('lossSpec: titled axes with units, both lines, every reference labelled with its value', () => {
      const spec = lossSpec({
        title: 'T', losses: [[1, 3.3], [2, 2.9], [3, 2.2]],
        references: [{ name: 'uniform', y: 3.296, color: '#f00' }, { name: 'floor', y: 0.262, color: '#0a0' }],
      });
      const text = JSON.stringify(spec);
      for (const t of ['"training step"', '"cross-entropy (nats per character)"', '"uniform = 3.296"', '"floor = 0.262"']) {
        assert.ok(text.includes(t), `spec lacks ${t}`);
      }
      const layers = spec.layer as { data: { values: { loss?: number }[] } }[];
      assert.deepEqual(layers[0].data.values.map((r) => r.loss), [3.3, 2.9, 2.2], 'raw losses');
      assert.equal(layers[1].data.values.length, 3, 'the mean has one point per step');
      assert.throws(() => lossSpec({ title: 'T', losses: [], references: [] }), RangeError);
    });
  });

  describe('model', () => {
    it('splash and dense attention give the same loss and parameter gradients (causal, packed stories)', () => {
      const model = createModel(small(96), 3);
      const b = makeBatch(makeRng(6), 2, 96);
      const lossAndGrads = (attention: AttentionKind) => tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() =>
          crossEntropy(forward(model, b.tokens, b.segmentIds, b.batch, attention), b.targets), parameters(model));
        return { loss: value.dataSync()[0], grads: parameters(model).map((p) => grads[p.name].dataSync() as Float32Array) };
      });
      const s = lossAndGrads('splash');
      const d = lossAndGrads('dense');
      disposeModel(model);
      // f32 through the same network; only the attention's summation order differs.
      assert.ok(Math.abs(s.loss - d.loss) <= 1e-5 * d.loss, `loss ${s.loss} vs ${d.loss}`);
      s.grads.forEach((g, i) => {
        const e = relErr(g, d.grads[i], `grad ${i}`);
        assert.ok(e <= 1e-4, `parameter ${i}: gradient relative error ${e}`);
      });
    });

    it('a few Adam steps lower the loss', () => {
      const model = createModel(small(64), 1);
      const optimizer = tf.train.adam(3e-3);
      const rng = makeRng(2);
      const before = tf.memory().numTensors;
      const losses = Array.from({ length: 6 }, () => trainStep(model, optimizer, makeBatch(rng, 4, 64), 'splash'));
      const leaked = tf.memory().numTensors - before;
      disposeModel(model);
      optimizer.dispose();
      // From ln 27 ≈ 3.30 the first steps learn the character frequencies; seeded, the 6th step is
      // 0.35 nats lower. Fresh batches each step, so require a clear drop, not a monotone one.
      assert.ok(Math.abs(losses[0] - Math.log(VOCAB.length)) < 0.1, `initial loss ${losses[0]} near uniform`);
      assert.ok(losses[5] < losses[0] - 0.2, `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
      // Adam keeps two moments per parameter, made on the first step (its beta powers exist from its
      // constructor on); a tensor left behind by any step would show up six times over.
      assert.equal(leaked, 2 * parameters(model).length, `${leaked} tensors left after 6 steps`);
    });
  });

  it('npm run example:tiny-gpt\'s program trains, samples and writes loss.svg (3 tiny steps)', function () {
    const out = mkdtempSync(path.join(tmpdir(), 'tiny-gpt-'));
    try {
      const stdout = execFileSync(process.execPath, ['--import', 'tsx', 'examples/tiny-gpt/train.ts',
        '--steps', '3', '--seq', '64', '--batch', '2', '--sample-chars', '40', '--out', out],
      { cwd: root, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
      assert.match(stdout, /^3 steps in [\d.]+ s: [\d.]+ steps\/s, [\d,]+ tokens\/s$/m);
      assert.match(stdout, /samples \(temperature 0\.7/);
      const summary = JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8')) as { steps: number; history: unknown[]; backend: string };
      assert.equal(summary.steps, 3);
      assert.equal(summary.history.length, 3);
      assert.equal(summary.backend, 'wasm');
      assert.ok(existsSync(path.join(out, 'loss.svg')));
      const svg = readFileSync(path.join(out, 'loss.svg'), 'utf8');
      assert.match(svg, /^<svg [^>]*width="\d+"/);
      for (const t of ['training step', 'cross-entropy (nats per character)', 'uniform, ln 27 = 3.296']) assert.ok(svg.includes(t), `loss.svg lacks ${t}`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('bench.ts runs on a tiny size and both attentions report the same first loss', () => {
    const out = mkdtempSync(path.join(tmpdir(), 'tiny-gpt-bench-'));
    try {
      const stdout = execFileSync(process.execPath, ['--import', 'tsx', 'examples/tiny-gpt/bench.ts',
        '--seq', '64', '--batch', '1', '--rounds', '1', '--backends', 'cpu', '--out', out],
      { cwd: root, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
      const rows = [...stdout.matchAll(/^\| cpu \| (splash|dense) \| (\d+) \| [\d.]+ \| [\d,]+ \| [^|]* \| ([\d.]+) \|$/gm)];
      assert.deepEqual(rows.map((r) => r[1]), ['splash', 'dense'], stdout);
      assert.equal(rows[0][3], rows[1][3], 'first-step losses differ');
      assert.ok(existsSync(path.join(out, 'bench-64.json')));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
