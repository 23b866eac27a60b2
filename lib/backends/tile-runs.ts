// Where a partial tile's allowed pairs lie, in sub-blocks of SPAN × SPAN, so that the js backend's products
// can leave out the sub-blocks that hold none (above a causal diagonal, past a local window's edge, beside
// a packed document), as the native CPU kernels do (native/cpu/tile_spans.h).
//
// Leaving them out changes no result when a masked logit's probability is exactly 0 once its row has seen
// an allowed key: exp(maskValue - logit) underflows for every real logit when maskValue is below
// TRIM_MASK_VALUE_BELOW (the default is -0.7 × float32 max). A row that has seen no allowed key yet gives
// its masked logits probability 1, and what those add is wiped by the rescale by exp(maskValue - m) = 0
// at its first allowed key.

export const SPAN = 16;
export const TRIM_MASK_VALUE_BELOW = -1e30;

/**
 * Runs of a tile's rows that need the same columns, and of its columns that need the same rows: quadruples
 * (first, count, lo, hi) in `rows` / `cols`, `rowCount` / `colCount` of them. Made once per scratch.
 */
export class TileRuns {
  readonly rows: Int32Array;
  readonly cols: Int32Array;
  rowCount = 0;
  colCount = 0;

  constructor(maxRows: number, maxCols: number) {
    this.rows = new Int32Array(4 * Math.max(1, Math.ceil(maxRows / SPAN)));
    this.cols = new Int32Array(4 * Math.max(1, Math.ceil(maxCols / SPAN)));
  }

  /** One run each over the whole nRows × nCols tile. */
  whole(nRows: number, nCols: number): void {
    setRun(this.rows, 0, 0, nRows, 0, nCols);
    setRun(this.cols, 0, 0, nCols, 0, nRows);
    this.rowCount = 1;
    this.colCount = 1;
  }

  /**
   * The runs of mask `mt` ([nRows][nCols], 0 = masked): each group of SPAN rows with the columns, in whole
   * sub-blocks, that hold its allowed pairs, and each group of SPAN columns with the rows that hold its
   * own. Consecutive groups with equal ranges share a run; groups without an allowed pair are left out.
   */
  fromMask(mt: Uint8Array, nRows: number, nCols: number): void {
    const rowGroups = Math.ceil(nRows / SPAN);
    const colGroups = Math.ceil(nCols / SPAN);
    const { rows, cols } = this;
    for (let c = 0; c < colGroups; c++) setRun(cols, c, c * SPAN, Math.min(SPAN, nCols - c * SPAN), nRows, 0);
    for (let g = 0; g < rowGroups; g++) {
      const r0 = g * SPAN;
      const r1 = Math.min(r0 + SPAN, nRows);
      let first = colGroups;
      let last = -1;
      for (let c = 0; c < colGroups; c++) {
        const c0 = c * SPAN;
        const c1 = Math.min(c0 + SPAN, nCols);
        let any = false;
        for (let r = r0; r < r1 && !any; r++) {
          const at = r * nCols;
          for (let j = c0; j < c1; j++) {
            if (mt[at + j] !== 0) {
              any = true;
              break;
            }
          }
        }
        if (!any) continue;
        if (c < first) first = c;
        last = c;
        if (r0 < cols[4 * c + 2]) cols[4 * c + 2] = r0;
        cols[4 * c + 3] = r1;
      }
      setRun(rows, g, r0, r1 - r0, last < 0 ? 0 : first * SPAN, last < 0 ? 0 : Math.min((last + 1) * SPAN, nCols));
    }
    this.rowCount = compact(rows, rowGroups);
    this.colCount = compact(cols, colGroups);
  }
}

function setRun(runs: Int32Array, i: number, first: number, count: number, lo: number, hi: number): void {
  runs[4 * i] = first;
  runs[4 * i + 1] = count;
  runs[4 * i + 2] = lo;
  runs[4 * i + 3] = hi;
}

/** Merges consecutive runs with equal ranges and drops empty ones, in place; returns how many remain. */
function compact(runs: Int32Array, n: number): number {
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const first = runs[4 * i];
    const count = runs[4 * i + 1];
    const lo = runs[4 * i + 2];
    const hi = runs[4 * i + 3];
    if (lo >= hi) continue;
    const k = 4 * (kept - 1);
    if (kept > 0 && runs[k + 2] === lo && runs[k + 3] === hi && runs[k] + runs[k + 1] === first) {
      runs[k + 1] += count;
    } else {
      setRun(runs, kept++, first, count, lo, hi);
    }
  }
  return kept;
}
