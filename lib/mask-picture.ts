// What the mask pictures show, independent of how they are drawn: heads grouped by identical masks,
// the block map cut into cells (one block each, or f × f blocks when the map is downsampled), and
// the token range of every cell. The text and SVG renderers only lay this out.

import type { MaskInfo } from './mask-info';

/** Block (and cell) classes, as in MaskInfo.blockMask. */
export const EMPTY = 0;
export const PARTIAL = 1;
export const FULL = 2;
/** One of EMPTY, PARTIAL, FULL. */
export type CellClass = typeof EMPTY | typeof PARTIAL | typeof FULL;

/** Names of the classes, indexed by class (also the CSS-style class names in the SVG). */
export const CLASS_NAMES = ['empty', 'partial', 'full'] as const;

/** A token window [q0, q1) × [kv0, kv1) shown element by element. */
export interface TokenWindow {
  /** `[q0, q1)`: first and one-past-last query token. */
  q: readonly [number, number];
  /** `[kv0, kv1)`: first and one-past-last key token. */
  kv: readonly [number, number];
}

/** Options after checking, defaults filled in (what the text and SVG renderers receive). */
export interface CheckedRenderOptions {
  head: number | undefined;
  maxWidth: number;
  window: TokenWindow | undefined;
}

/** How many blocks of each class one head has. */
export interface BlockCounts {
  empty: number;
  partial: number;
  full: number;
}

/** One head's block map, downsampled by `factor` blocks per cell along both axes. */
export interface CellGrid {
  /** Blocks per cell along each axis (1: no downsampling). */
  factor: number;
  rows: number;
  cols: number;
  /** [rows, cols]: EMPTY when every block of the cell is empty, FULL when every one is full, else PARTIAL. */
  cells: Uint8Array;
  /** Tokens one cell spans along q and along kv (the last row and column may be shorter). */
  cellQ: number;
  cellKv: number;
  /** Sequence lengths in tokens, for the token axes. */
  qSeqLen: number;
  kvSeqLen: number;
}

/** Blocks per cell so that `blocks` fit in `maxCells` cells. */
export function downsampleFactor(blocks: number, maxCells: number): number {
  return Math.max(1, Math.ceil(blocks / maxCells));
}

/** Head `head`'s block map, `factor` × `factor` blocks per cell. */
export function cellGrid(info: MaskInfo, head: number, factor: number): CellGrid {
  const { qBlocks, kvBlocks } = info;
  const rows = Math.ceil(qBlocks / factor);
  const cols = Math.ceil(kvBlocks / factor);
  const cells = new Uint8Array(rows * cols);
  const base = head * qBlocks * kvBlocks;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let sawEmpty = false;
      let sawFull = false;
      let sawPartial = false;
      for (let qb = r * factor; qb < Math.min(qBlocks, (r + 1) * factor); qb++) {
        for (let kb = c * factor; kb < Math.min(kvBlocks, (c + 1) * factor); kb++) {
          const kind = info.blockMask[base + qb * kvBlocks + kb];
          if (kind === EMPTY) sawEmpty = true;
          else if (kind === FULL) sawFull = true;
          else sawPartial = true;
        }
      }
      // A mix of empty and full blocks is some-but-not-all allowed: partial, as a block would be.
      cells[r * cols + c] = sawPartial || (sawEmpty && sawFull) ? PARTIAL : sawFull ? FULL : EMPTY;
    }
  }
  return {
    factor, rows, cols, cells,
    cellQ: factor * info.blockQ,
    cellKv: factor * info.blockKv,
    qSeqLen: info.qSeqLen,
    kvSeqLen: info.kvSeqLen,
  };
}

/** Empty, partial and full blocks of one head. */
export function headCounts(info: MaskInfo, head: number): BlockCounts {
  const n = info.qBlocks * info.kvBlocks;
  const counts = { empty: 0, partial: 0, full: 0 };
  for (let i = head * n; i < (head + 1) * n; i++) counts[CLASS_NAMES[info.blockMask[i]]]++;
  return counts;
}

/** The heads to draw, grouped: heads sharing a schedule have the same mask, so one picture serves them. */
export function headGroups(info: MaskInfo, head: number | undefined): number[][] {
  if (head !== undefined) return [[head]];
  const bySchedule = new Map<number, number[]>();
  for (let h = 0; h < info.heads; h++) {
    const s = info.headSchedule[h];
    const group = bySchedule.get(s);
    if (group) group.push(h);
    else bySchedule.set(s, [h]);
  }
  return [...bySchedule.values()];
}

/** "head 2", or "heads 0–3, 6" for a group. */
export function describeHeads(heads: readonly number[]): string {
  if (heads.length === 1) return `head ${heads[0]}`;
  const runs: string[] = [];
  for (let i = 0; i < heads.length; ) {
    let j = i;
    while (j + 1 < heads.length && heads[j + 1] === heads[j] + 1) j++;
    runs.push(j > i ? `${heads[i]}–${heads[j]}` : `${heads[i]}`);
    i = j + 1;
  }
  return `heads ${runs.join(', ')}`;
}

/** "1 block = 128 × 128 tokens" or "1 cell = 4 × 4 blocks (512 × 512 tokens)". */
export function describeScale(info: MaskInfo, factor: number, unit: string): string {
  const tokens = `${factor * info.blockQ} × ${factor * info.blockKv} tokens`;
  return factor === 1 ? `1 ${unit} = 1 block of ${tokens}` : `1 ${unit} = ${factor} × ${factor} blocks (${tokens}), downsampled by ${factor}`;
}

/** The stats line shared by both renderings. */
export function describeStats(info: MaskInfo): string {
  const { empty, partial, full, uniquePartial, density } = info.stats;
  const total = empty + partial + full;
  const scope = info.heads === 1 ? '' : ` over ${info.heads} heads`;
  return (
    `${total} blocks${scope}: ${full} full, ${partial} partial, ${empty} empty; ` +
    `density ${(100 * density).toFixed(1)} %; ${uniquePartial} stored partial blocks`
  );
}
