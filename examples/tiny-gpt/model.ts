// A decoder-only transformer in tfjs-core ops: token + position embeddings, pre-norm blocks of
// causal self-attention and an MLP with RMSNorm, a head tied to the embedding, cross-entropy loss.
// Attention is either splash attention (the kernel, through splash-attention/tfjs) or the dense
// softmax(q·kᵀ + mask)·v a tfjs user would write; both see the same causal mask and segment ids.

import * as tf from '@tensorflow/tfjs-core';
import { CausalMask, makeSplashMHA, type SplashAttentionKernel } from 'splash-attention';
import { splashAttention } from 'splash-attention/tfjs';

export interface ModelConfig {
  vocab: number;
  seqLen: number;
  dModel: number;
  heads: number;
  layers: number;
  mlpHidden: number;
}

export type AttentionKind = 'splash' | 'dense';

interface Block {
  norm1: tf.Variable;
  wqkv: tf.Variable;
  wo: tf.Variable;
  norm2: tf.Variable;
  w1: tf.Variable;
  w2: tf.Variable;
}

export interface Model {
  config: ModelConfig;
  tokenEmbedding: tf.Variable;
  positionEmbedding: tf.Variable;
  blocks: Block[];
  finalNorm: tf.Variable;
  /** The causal kernel for [seqLen, seqLen], made once; it keeps the residuals its backward needs. */
  kernel: SplashAttentionKernel;
}

export function createModel(config: ModelConfig, seed: number): Model {
  const { vocab, seqLen, dModel, heads, layers, mlpHidden } = config;
  if (dModel % heads !== 0) throw new RangeError(`dModel: expected a multiple of heads (${heads}), got ${dModel}`);
  let n = seed;
  // Unnamed variables: tfjs names must be unique per process, and tests and benches build several models.
  const normal = (shape: number[], std: number): tf.Variable => tf.variable(tf.randomNormal(shape, 0, std, 'float32', n++));
  const ones = (size: number): tf.Variable => tf.variable(tf.ones([size]));
  // GPT-2's init: 0.02 everywhere, output projections scaled down by the depth of the residual stream.
  const outStd = 0.02 / Math.sqrt(2 * layers);
  return {
    config,
    tokenEmbedding: normal([vocab, dModel], 0.02),
    positionEmbedding: normal([seqLen, dModel], 0.02),
    blocks: Array.from({ length: layers }, () => ({
      norm1: ones(dModel),
      wqkv: normal([dModel, 3 * dModel], 0.02),
      wo: normal([dModel, dModel], outStd),
      norm2: ones(dModel),
      w1: normal([dModel, mlpHidden], 0.02),
      w2: normal([mlpHidden, dModel], outStd),
    })),
    finalNorm: ones(dModel),
    kernel: makeSplashMHA(new CausalMask([seqLen, seqLen]), { saveResiduals: true }),
  };
}

export function parameters(m: Model): tf.Variable[] {
  return [m.tokenEmbedding, m.positionEmbedding, m.finalNorm, ...m.blocks.flatMap((b) => Object.values(b) as tf.Variable[])];
}

export function disposeModel(m: Model): void {
  tf.dispose(parameters(m));
}

function rmsNorm(x: tf.Tensor, gain: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-6))), gain);
}

/** The dense alternative: a [B, 1, T, T] additive mask of 0 (allowed) or -1e9, causal and within a story. */
function denseMaskBias(segmentIds: Int32Array, batch: number, seqLen: number): tf.Tensor {
  const bias = new Float32Array(batch * seqLen * seqLen);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < seqLen; i++) {
      for (let j = 0; j < seqLen; j++) {
        const ok = j <= i && segmentIds[b * seqLen + i] === segmentIds[b * seqLen + j];
        bias[(b * seqLen + i) * seqLen + j] = ok ? 0 : -1e9;
      }
    }
  }
  return tf.tensor4d(bias, [batch, 1, seqLen, seqLen]);
}

function denseAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, bias: tf.Tensor): tf.Tensor {
  return tf.matMul(tf.softmax(tf.add(tf.matMul(q, k, false, true), bias)), v);
}

/** Logits [batch·seqLen, vocab] for input tokens [batch, seqLen]. */
export function forward(m: Model, tokens: Int32Array, segmentIds: Int32Array, batch: number, attention: AttentionKind): tf.Tensor2D {
  const { seqLen, dModel, heads } = m.config;
  const dHead = dModel / heads;
  const bias = attention === 'dense' ? denseMaskBias(segmentIds, batch, seqLen) : null;
  const seg = { q: segmentIds, kv: segmentIds };
  // A one-hot matmul rather than tf.gather: gather's gradient has no kernel on the wasm backend.
  const oneHot = tf.oneHot(tf.tensor1d(tokens, 'int32'), m.config.vocab);
  let x = tf.add(tf.reshape(tf.matMul(oneHot, m.tokenEmbedding), [batch, seqLen, dModel]), m.positionEmbedding);
  x = tf.reshape(x, [batch * seqLen, dModel]);
  // [B·T, d] → [B, H, T, dHead], the layout the kernel takes.
  const toHeads = (t: tf.Tensor): tf.Tensor => tf.transpose(tf.reshape(t, [batch, seqLen, heads, dHead]), [0, 2, 1, 3]);
  for (const blk of m.blocks) {
    const qkv = tf.matMul(rmsNorm(x, blk.norm1), blk.wqkv);
    const [q, k, v] = tf.split(qkv, 3, 1).map(toHeads);
    const qScaled = tf.mul(q, 1 / Math.sqrt(dHead)); // no 1/√d inside either attention: scale q here
    const att = bias ? denseAttention(qScaled, k, v, bias) : splashAttention(m.kernel, qScaled, k, v, { segmentIds: seg });
    x = tf.add(x, tf.matMul(tf.reshape(tf.transpose(att, [0, 2, 1, 3]), [batch * seqLen, dModel]), blk.wo));
    const h = tf.matMul(rmsNorm(x, blk.norm2), blk.w1);
    x = tf.add(x, tf.matMul(tf.mul(h, tf.sigmoid(h)), blk.w2)); // SiLU MLP
  }
  return tf.matMul(rmsNorm(x, m.finalNorm), m.tokenEmbedding, false, true) as tf.Tensor2D;
}

/** Mean cross-entropy in nats per token. */
export function crossEntropy(logits: tf.Tensor2D, targets: Int32Array): tf.Scalar {
  const oneHot = tf.oneHot(tf.tensor1d(targets, 'int32'), logits.shape[1]);
  return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), -1))) as tf.Scalar;
}
