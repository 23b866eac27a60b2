// splash-attention/tfjs: the kernel as a differentiable TensorFlow.js op.
//
// Sits on top of the public API (./index) and nothing else; the package root never loads this file,
// so @tensorflow/tfjs-core stays an optional peer dependency.

/**
 * The kernel as a differentiable TensorFlow.js op, loaded from the `splash-attention/tfjs` subpath. It
 * needs the optional peer dependency `@tensorflow/tfjs-core`: without it, loading this module throws an
 * Error that says what to install.
 *
 * @module splash-attention/tfjs
 */

import type * as TF from '@tensorflow/tfjs-core';
import { SplashAttentionKernel, fromFloat32, tensor, toFloat32, type SegmentIds, type Tensor } from './index';
import { describeValue } from './describe-value';

const INSTALL_HINT =
  'splash-attention/tfjs needs the optional peer dependency @tensorflow/tfjs-core: ' +
  'run `npm install @tensorflow/tfjs-core @tensorflow/tfjs-backend-cpu` ' +
  '(or use @tensorflow/tfjs-node or @tensorflow/tfjs, which include it)';

function loadTfjsCore(): typeof TF {
  try {
    return require('@tensorflow/tfjs-core') as typeof TF;
  } catch (e) {
    // Only a missing tfjs-core itself gets the hint; a broken install keeps its own error.
    const err = e as NodeJS.ErrnoException;
    if (err?.code === 'MODULE_NOT_FOUND' && String(err.message).includes("'@tensorflow/tfjs-core'")) {
      throw new Error(INSTALL_HINT, { cause: e });
    }
    throw e;
  }
}

const tf = loadTfjsCore();

/** The dtype the kernel computes in; tensors in and out stay float32 (TensorFlow.js has no bfloat16). */
export type ComputeDType = 'float32' | 'bfloat16';

/** Options of {@link splashAttention}. An unknown key is a TypeError naming it (`opts.<key>`). */
export interface SplashAttentionOptions {
  /** Packed documents: a query attends a key only when their ids are equal (and the mask allows it). */
  segmentIds?: SegmentIds;
  /**
   * Attention sinks: [H] float32, one logit per query head in every row's softmax denominator (no value).
   * Differentiable like q, k and v. Kept float32 also with computeDtype 'bfloat16'.
   */
  sinks?: TF.Tensor;
  /**
   * 'bfloat16' rounds q, k, v and the output's cotangent to bf16 (nearest even) for the kernel; results
   * come back as float32. Default 'float32'. Any other value is a TypeError.
   */
  computeDtype?: ComputeDType;
}

const OPTION_KEYS: readonly string[] = ['segmentIds', 'sinks', 'computeDtype'];
const COMPUTE_DTYPES: readonly string[] = ['float32', 'bfloat16'];

interface CheckedOptions {
  segmentIds?: SegmentIds;
  sinks?: TF.Tensor;
  computeDtype: ComputeDType;
}

function checkOptions(opts: unknown): CheckedOptions {
  if (opts === undefined) return { computeDtype: 'float32' };
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) {
    throw new TypeError(`opts: expected an object, got ${describeValue(opts)}`);
  }
  const o = opts as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!OPTION_KEYS.includes(key)) {
      throw new TypeError(`opts.${key}: unknown option (expected one of ${OPTION_KEYS.join(', ')})`);
    }
  }
  const computeDtype = o.computeDtype ?? 'float32';
  if (typeof computeDtype !== 'string' || !COMPUTE_DTYPES.includes(computeDtype)) {
    throw new TypeError(`opts.computeDtype: expected 'float32' or 'bfloat16', got ${describeValue(computeDtype)}`);
  }
  // Segment ids and the sinks' shape are checked by the kernel, with the kernel's messages.
  return {
    segmentIds: o.segmentIds as SegmentIds | undefined,
    sinks: o.sinks === undefined ? undefined : checkInput(o.sinks, 'opts.sinks'),
    computeDtype: computeDtype as ComputeDType,
  };
}

function checkInput(x: unknown, name: string): TF.Tensor {
  if (!(x instanceof tf.Tensor)) {
    throw new TypeError(`${name}: expected a tf.Tensor (from the same @tensorflow/tfjs-core), got ${describeValue(x)}`);
  }
  if (x.dtype !== 'float32') {
    throw new TypeError(
      `${name}.dtype: expected 'float32' (TensorFlow.js has no bfloat16; pass computeDtype: 'bfloat16' to compute in it), got '${x.dtype}'`,
    );
  }
  return x;
}

function isResiduals(r: unknown): r is { out: Tensor; logsumexp: Tensor } {
  return r !== null && typeof r === 'object' && 'out' in r && 'logsumexp' in r;
}

/**
 * Splash attention as a TensorFlow.js op: out = softmax(mask(softcap(scale · q·kᵀ)))·v with the kernel's
 * mask and options (scale 1 unless the kernel sets it: no 1/√d inside), sinks joining each row's softmax.
 * q [B?, H, Sq, D], k and v [B?, Hkv, Skv, D|Dv] (MQA kernels: [B?, Skv, D|Dv]); float32 in and out.
 *
 * The kernel must come from makeSplashMHA / makeSplashMQA with { saveResiduals: true }: the forward's
 * output and logsumexp are kept for the backward (tf.customGrad), which never recomputes the forward.
 * Gradients flow to q, k, v and opts.sinks. The kernel computes synchronously, on the calling thread.
 *
 * @param kernel - a SplashAttentionKernel made with `saveResiduals: true`.
 * @param q - queries, a float32 tf.Tensor.
 * @param k - keys, a float32 tf.Tensor.
 * @param v - values, a float32 tf.Tensor.
 * @param opts - segment ids, sinks and the compute dtype; see {@link SplashAttentionOptions}.
 * @returns out `[B?, H, Sq, Dv]`, a float32 tf.Tensor.
 * @throws TypeError when `kernel` is not a SplashAttentionKernel or was made without saveResiduals,
 *   q, k, v or opts.sinks is not a float32 tf.Tensor of the same tfjs-core, `opts` is not an object or
 *   has an unknown key, or opts.computeDtype is not 'float32' or 'bfloat16'.
 * @throws TypeError / RangeError from the kernel for shapes, segment ids or sinks that do not fit, with
 *   the kernel's messages.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-core/dist/register_all_gradients'; // bare tfjs-core only
 * import '@tensorflow/tfjs-backend-cpu';
 * import { CausalMask, makeSplashMHA } from 'splash-attention';
 * import { splashAttention } from 'splash-attention/tfjs';
 *
 * const kernel = makeSplashMHA(new CausalMask([256, 256]), { saveResiduals: true });
 * const loss = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => tf.sum(splashAttention(kernel, q, k, v));
 * const [dq, dk, dv] = tf.grads(loss)([q, k, v]); // q, k, v: float32 [4, 256, 64]
 * ```
 */
export function splashAttention(
  kernel: SplashAttentionKernel,
  q: TF.Tensor,
  k: TF.Tensor,
  v: TF.Tensor,
  opts?: SplashAttentionOptions,
): TF.Tensor {
  if (!(kernel instanceof SplashAttentionKernel)) {
    throw new TypeError(`kernel: expected a SplashAttentionKernel (makeSplashMHA / makeSplashMQA), got ${describeValue(kernel)}`);
  }
  const { segmentIds, sinks, computeDtype } = checkOptions(opts);
  const inputs = [checkInput(q, 'q'), checkInput(k, 'k'), checkInput(v, 'v')];
  if (sinks) inputs.push(sinks); // a fourth input of the op, so that tfjs asks for its gradient

  // tfjs values → kernel tensors. float32 reads the backend's values without a copy where it can
  // (the kernel never writes its inputs); bfloat16 rounds to nearest even.
  const toKernel = (t: TF.Tensor): Tensor => {
    const values = t.dataSync() as Float32Array;
    return computeDtype === 'float32' ? tensor(values, t.shape, 'float32') : fromFloat32(values, t.shape, 'bfloat16');
  };
  const fromKernel = (t: Tensor): TF.Tensor =>
    tf.tensor(t.dtype === 'float32' ? (t.data as Float32Array) : toFloat32(t), t.shape as number[], 'float32');

  const op = tf.customGrad((...args: (TF.Tensor | TF.GradSaveFunc)[]) => {
    const [qk, kk, vk] = (args.slice(0, 3) as TF.Tensor[]).map(toKernel);
    // Sinks are float32 in every compute dtype (the kernel's contract).
    const sinkInput = sinks ? (args[3] as TF.Tensor) : undefined;
    const sk = sinkInput ? tensor(sinkInput.dataSync() as Float32Array, sinkInput.shape, 'float32') : undefined;
    const fwd: unknown = kernel.forwardSync(qk, kk, vk, segmentIds, sk ? { sinks: sk } : undefined);
    if (!isResiduals(fwd)) {
      throw new TypeError(
        'kernel: expected a kernel made with { saveResiduals: true } (the backward needs the forward\'s logsumexp), got one without',
      );
    }
    // The residuals live in this closure, which tfjs's tape holds until the gradient has run.
    const gradFunc = (dy: TF.Tensor): TF.Tensor[] => {
      const g = kernel.backwardSync({
        q: qk, k: kk, v: vk, segmentIds, out: fwd.out, logsumexp: fwd.logsumexp, dout: toKernel(dy), sinks: sk,
      });
      const grads = [fromKernel(g.dq), fromKernel(g.dk), fromKernel(g.dv)];
      if (sk) {
        if (!g.dsinks) throw new Error('kernel: a backward with sinks returned no dsinks');
        grads.push(fromKernel(g.dsinks));
      }
      return grads;
    };
    return { value: fromKernel(fwd.out), gradFunc };
  });
  return op(...inputs);
}
