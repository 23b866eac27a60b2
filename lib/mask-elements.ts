// Reads mask elements back out of a MaskInfo: full blocks are all true, empty blocks all false, and a
// partial block comes from its stored dense copy or, for computable masks, from its schedule's mask
// program. The pictures use this for their element-level view, so they need the MaskInfo only.

import type { MaskInfo } from './mask-info';
import { evalMaskProgram } from './mask-program';

const BLOCK_EMPTY = 0;
const BLOCK_FULL = 2;

/**
 * The window [q0, q1) × [kv0, kv1) of head `head`'s mask as 0/1, row-major. The caller checks that
 * the window lies inside the sequence lengths and the head exists.
 */
export function maskInfoWindow(info: MaskInfo, head: number, q0: number, q1: number, kv0: number, kv1: number): Uint8Array {
  const width = kv1 - kv0;
  const out = new Uint8Array((q1 - q0) * width);
  const { blockQ, blockKv, qBlocks, kvBlocks } = info;
  const schedule = info.headSchedule[head];
  const programStart = info.programPtr[schedule];
  const programEnd = info.programPtr[schedule + 1];
  const headBase = head * qBlocks * kvBlocks;
  for (let q = q0; q < q1; q++) {
    const qb = Math.floor(q / blockQ);
    for (let kv = kv0; kv < kv1; kv++) {
      const kb = Math.floor(kv / blockKv);
      const at = headBase + qb * kvBlocks + kb;
      const kind = info.blockMask[at];
      let allowed: boolean;
      if (kind === BLOCK_EMPTY) allowed = false;
      else if (kind === BLOCK_FULL) allowed = true;
      else if (info.maskNext[at] >= 0 && info.partialMaskBlocks !== null) {
        const stored = info.maskNext[at] * blockQ * blockKv;
        allowed = info.partialMaskBlocks[stored + (q - qb * blockQ) * blockKv + (kv - kb * blockKv)] !== 0;
      } else {
        allowed = evalMaskProgram(info.programs, programStart, programEnd, q, kv);
      }
      out[(q - q0) * width + (kv - kv0)] = allowed ? 1 : 0;
    }
  }
  return out;
}
