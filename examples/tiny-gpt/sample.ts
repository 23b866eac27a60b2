// Text from the trained model, one character at a time. The context is the last seqLen characters,
// padded at the end (the causal mask keeps padding out of every earlier position) and cut into
// stories by segment ids exactly as in training.

import * as tf from '@tensorflow/tfjs-core';
import { END, decode, encode } from './data';
import { forward, type AttentionKind, type Model } from './model';

/** Segment ids for a context: a new story starts after every END. */
function storyIds(tokens: readonly number[], endId: number): Int32Array {
  const ids = new Int32Array(tokens.length);
  let id = 1;
  tokens.forEach((t, i) => {
    ids[i] = id;
    if (t === endId) id++;
  });
  return ids;
}

/** Continues `prompt` until `stories` stories have ended or `maxChars` characters are added. */
export function generate(model: Model, prompt: string, opts: {
  stories: number; maxChars: number; temperature: number; rng: () => number; attention?: AttentionKind;
}): string {
  const { seqLen, vocab } = model.config;
  const endId = encode(END)[0];
  const tokens = encode(prompt);
  let ended = 0;
  for (let n = 0; n < opts.maxChars && ended < opts.stories; n++) {
    const context = tokens.slice(-seqLen);
    const last = context.length - 1;
    const padded = Int32Array.from({ length: seqLen }, (_, i) => (i < context.length ? context[i] : endId));
    const seg = storyIds(Array.from(padded), endId);
    const probs = tf.tidy(() => {
      const logits = forward(model, padded, seg, 1, opts.attention ?? 'splash');
      const row = tf.slice(logits, [last, 0], [1, vocab]);
      return tf.softmax(tf.div(row, opts.temperature)).dataSync() as Float32Array;
    });
    // Inverse-CDF draw from the tempered distribution.
    let u = opts.rng();
    let next = vocab - 1;
    for (let i = 0; i < vocab; i++) {
      u -= probs[i];
      if (u <= 0) {
        next = i;
        break;
      }
    }
    tokens.push(next);
    if (next === endId) ended++;
  }
  return decode(tokens);
}
