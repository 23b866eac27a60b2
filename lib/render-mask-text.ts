// The terminal picture of a MaskInfo: one character per block (or per f × f blocks when the map is
// wider than the line allows), rows labelled with their first q token, a kv ruler on top.

import type { MaskInfo } from './mask-info';
import { maskInfoWindow } from './mask-elements';
import {
  EMPTY, FULL, cellGrid, describeHeads, describeScale, describeStats, downsampleFactor, headCounts, headGroups,
  type CellGrid, type CheckedRenderOptions, type TokenWindow,
} from './mask-picture';

/** Characters for empty, partial and full (indexed by class). */
export const TEXT_SYMBOLS = ['·', '▒', '█'] as const;
const ALLOWED = '█';
const MASKED = '·';
const CORNER = 'q\\kv';

/** The text picture (see renderMaskInfo); options already checked. */
export function renderMaskText(info: MaskInfo, opts: CheckedRenderOptions): string {
  const labelWidth = Math.max(CORNER.length, String(info.qSeqLen).length);
  const gridWidth = opts.maxWidth - labelWidth - 1;
  if (opts.window && opts.window.kv[1] - opts.window.kv[0] > gridWidth) {
    const [a, b] = opts.window.kv;
    throw new RangeError(
      `opts.window.kv: expected at most ${gridWidth} tokens (maxWidth ${opts.maxWidth} less the q labels), got ${b - a} ([${a}, ${b}])`,
    );
  }
  const factor = downsampleFactor(info.kvBlocks, gridWidth);
  const lines = [
    `MaskInfo: q ${info.qSeqLen} × kv ${info.kvSeqLen} tokens in ${info.qBlocks} × ${info.kvBlocks} blocks of ` +
      `${info.blockQ} × ${info.blockKv}; ${info.heads} head${info.heads === 1 ? '' : 's'}`,
    `${describeScale(info, factor, 'character')}    ${TEXT_SYMBOLS[FULL]} full  ${TEXT_SYMBOLS[1]} partial  ${TEXT_SYMBOLS[EMPTY]} empty`,
  ];
  for (const heads of headGroups(info, opts.head)) {
    const counts = headCounts(info, heads[0]);
    const same = heads.length > 1 ? ' each (same mask)' : '';
    lines.push('', `${describeHeads(heads)}: ${counts.full} full, ${counts.partial} partial, ${counts.empty} empty${same}`);
    lines.push(...drawGrid(cellGrid(info, heads[0], factor), labelWidth));
  }
  if (opts.window) lines.push('', ...drawWindow(info, opts.head ?? 0, opts.window, labelWidth));
  lines.push('', `stats: ${describeStats(info)}`);
  return `${lines.join('\n')}\n`;
}

function drawGrid(grid: CellGrid, labelWidth: number): string[] {
  const lines = [ruler(labelWidth, grid.cols, 0, grid.kvSeqLen)];
  const step = labelStep(grid.rows);
  for (let r = 0; r < grid.rows; r++) {
    let row = '';
    for (let c = 0; c < grid.cols; c++) row += TEXT_SYMBOLS[grid.cells[r * grid.cols + c]];
    const label = r % step === 0 ? String(r * grid.cellQ) : '';
    lines.push(`${label.padStart(labelWidth)} ${row}`);
  }
  return lines;
}

function drawWindow(info: MaskInfo, head: number, window: TokenWindow, labelWidth: number): string[] {
  const [q0, q1] = window.q;
  const [kv0, kv1] = window.kv;
  const width = kv1 - kv0;
  const bits = maskInfoWindow(info, head, q0, q1, kv0, kv1);
  const lines = [
    `elements of head ${head}, q [${q0}, ${q1}) × kv [${kv0}, ${kv1}), 1 character = 1 token pair:  ${ALLOWED} allowed  ${MASKED} masked`,
    ruler(labelWidth, width, kv0, kv1),
  ];
  const step = labelStep(q1 - q0);
  for (let r = 0; r < q1 - q0; r++) {
    let row = '';
    for (let c = 0; c < width; c++) row += bits[r * width + c] ? ALLOWED : MASKED;
    const label = r % step === 0 ? String(q0 + r) : '';
    lines.push(`${label.padStart(labelWidth)} ${row}`);
  }
  return lines;
}

/** Every row labelled up to 32 rows; beyond, about 16 labels. */
function labelStep(rows: number): number {
  return rows <= 32 ? 1 : Math.ceil(rows / 16);
}

/** The header line: the corner label, then the first kv token over the first column and the end
 *  token right-aligned over the last one (just the first when the grid is too narrow for both). */
function ruler(labelWidth: number, cols: number, start: number, end: number): string {
  const first = String(start);
  const last = String(end);
  const both = cols >= first.length + 1 + last.length;
  const marks = both ? first + last.padStart(cols - first.length) : first;
  return `${CORNER.padStart(labelWidth)} ${marks}`;
}
