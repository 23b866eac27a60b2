// One optimisation step on one batch: forward, cross-entropy, gradients of every parameter, Adam.

import * as tf from '@tensorflow/tfjs-core';
import type { Batch } from './data';
import { crossEntropy, forward, parameters, type AttentionKind, type Model } from './model';

/** Returns the batch's loss (nats per token) before the update. */
export function trainStep(model: Model, optimizer: tf.Optimizer, batch: Batch, attention: AttentionKind): number {
  const loss = optimizer.minimize(
    () => crossEntropy(forward(model, batch.tokens, batch.segmentIds, batch.batch, attention), batch.targets),
    true,
    parameters(model),
  );
  if (!loss) throw new Error('optimizer.minimize returned no loss');
  const value = loss.dataSync()[0];
  loss.dispose();
  return value;
}
