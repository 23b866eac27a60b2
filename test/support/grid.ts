// Data and grid builders shared by the backend tests (cpu-backend, js-backend): seeded random tensors,
// JAX-style random masks, the axis values of JAX's splash test grid and a seeded cycler over them.

import { DenseMask, fromFloat32, makeRandomMask, type DType, type Tensor } from '../../lib/index';
import { randomNormal } from '../../lib/random';

export function randTensor(shape: number[], seed: number, dtype: DType, scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return fromFloat32(randomNormal(n, seed, scale), shape, dtype);
}

/** makeRandomMask with column 0 forced on, as in the JAX tests (every row keeps a key). */
export function randomMask(sq: number, skv: number, sparsity: number, seed: number): DenseMask {
  const data = makeRandomMask([sq, skv], sparsity, seed).toDense();
  for (let i = 0; i < sq; i++) data[i * skv] = 1;
  return new DenseMask(data, [sq, skv]);
}

// ---- axes of the splash test grid ---------------------------------------------------------------

export const SEQS: [number, number][] = [
  ...[128, 256, 512, 1024].flatMap((a) => [128, 256, 512, 1024].map((b): [number, number] => [a, b])),
  [200, 328],
  [328, 200],
];
export const DIMS = [64, 128, 256];
/** [q heads, kv heads]; kv heads 0 = MQA (k, v without a head dim). */
export const HEADS: [number, number][] = [[1, 1], [2, 2], [4, 1], [8, 4], [6, 2], [4, 0]];
export const SOFT_CAPS = [null, 1, 5, 20, 50];
export const BLOCKS = [64, 128, 256];
export const BATCHES = [0, 2]; // 0: no batch dimension

/** Each call returns the next value of a seeded shuffle that visits every value once per cycle. */
export function cycler<T>(values: readonly T[], rand: () => number): () => T {
  let order: T[] = [];
  return () => {
    if (order.length === 0) {
      order = [...values];
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
    }
    return order.pop() as T;
  };
}
