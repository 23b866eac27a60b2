// What the backends do alike to a call on its way into a kernel: dtype codes and the SEQ_MINOR copy of
// an operand.

import type { DType } from '../tensor';
import type { DTypeCode } from './native';

/** The addon's code for each dtype. */
export const DTYPE_CODE: Record<DType, DTypeCode> = { float32: 0, bfloat16: 1, float16: 2 };

/** [slabs, seq, dim] → [slabs, dim, seq] (the SEQ_MINOR physical layout), same array type. */
export function toSeqMinor<T extends Float32Array | Uint16Array>(x: T, slabs: number, seq: number, dim: number): T {
  const y = new (x.constructor as { new (n: number): T })(x.length);
  for (let s = 0; s < slabs; s++) {
    const base = s * seq * dim;
    for (let r = 0; r < seq; r++) {
      const src = base + r * dim;
      for (let c = 0; c < dim; c++) y[base + c * seq + r] = x[src + c];
    }
  }
  return y;
}
