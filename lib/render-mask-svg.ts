// The SVG picture of a MaskInfo: per head (heads with the same mask share one panel) a map with one
// square per block (or per f × f blocks), axes in tokens, and optionally a panel showing a token
// window element by element; a title, a legend and the stats line around them.

import type { MaskInfo } from './mask-info';
import { maskInfoWindow } from './mask-elements';
import {
  CLASS_NAMES, EMPTY, FULL, PARTIAL, cellGrid, describeHeads, describeScale, describeStats, downsampleFactor, headCounts,
  headGroups, type CellGrid, type CheckedRenderOptions, type TokenWindow,
} from './mask-picture';
import { el, escapeXml, estimateTextWidth, text } from './svg';

const FONT = 'Helvetica, Arial, sans-serif';
/** Fill colours by class: empty, partial, full (blue and orange stay apart for colour-blind readers). */
export const CLASS_COLOURS = ['#e6e9ee', '#f0a04b', '#2f5f9e'] as const;
const WINDOW_OUTLINE = '#d62728';
const MARGIN = 16;
/** Height of the title, scale and stats lines above the panels. */
const HEADER_HEIGHT = 62;
const PANEL_GAP = 28;
const MAX_ROW_WIDTH = 1100;
/** Pixel budget of a block map's longer side, and of an element window's. */
const MAP_PX = 360;
const WINDOW_PX = 320;
/** Room around a panel's grid: heading, axis title and tick labels above, tick labels and axis title left. */
const PAD_LEFT = 62;
const PAD_TOP = 60;
const PAD_RIGHT = 12;
const PAD_BOTTOM = 8;

interface Panel {
  width: number;
  height: number;
  /** The panel's SVG, drawn with its top-left corner at (0, 0). */
  body: string;
}

/** The SVG picture (see renderMaskInfo); options already checked. */
export function renderMaskSvg(info: MaskInfo, opts: CheckedRenderOptions): string {
  const factor = downsampleFactor(Math.max(info.qBlocks, info.kvBlocks), opts.maxWidth);
  const windowHead = opts.head ?? 0;
  const panels: Panel[] = headGroups(info, opts.head).map((heads) =>
    blockPanel(info, heads, factor, heads.includes(windowHead) ? opts.window : undefined));
  if (opts.window) panels.push(windowPanel(info, windowHead, opts.window));

  const title = `Block map of a MaskInfo: q ${info.qSeqLen} × kv ${info.kvSeqLen} tokens, blocks of ${info.blockQ} × ${info.blockKv}`;
  const scale = `${describeScale(info, factor, 'square')}.`;
  const stats = `${describeStats(info)}.`;
  const legendRows = legendItems(opts.window !== undefined);

  // Flow the panels left to right, wrapping rows at MAX_ROW_WIDTH.
  const placed: string[] = [];
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  let width = 0;
  for (const p of panels) {
    if (x > 0 && x + p.width > MAX_ROW_WIDTH) {
      x = 0;
      y += rowHeight + PANEL_GAP;
      rowHeight = 0;
    }
    placed.push(el('g', { transform: `translate(${MARGIN + x}, ${MARGIN + HEADER_HEIGHT + y})` }, p.body));
    x += p.width + PANEL_GAP;
    width = Math.max(width, x - PANEL_GAP);
    rowHeight = Math.max(rowHeight, p.height);
  }
  const legendTop = MARGIN + HEADER_HEIGHT + y + rowHeight + 16;
  const legendWidth = Math.max(...legendRows.map(legendRowWidth));
  width = Math.max(width, estimateTextWidth(title, 15), estimateTextWidth(scale, 12), estimateTextWidth(stats, 12), legendWidth) + 2 * MARGIN;
  const height = legendTop + LEGEND_ROW * legendRows.length + MARGIN;

  return `${el('svg', {
    xmlns: 'http://www.w3.org/2000/svg',
    width: Math.ceil(width), height: Math.ceil(height), viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`,
    role: 'img', 'aria-labelledby': 'mask-title mask-desc', 'font-family': FONT,
  }, [
    el('title', { id: 'mask-title' }, escapeXml(title)),
    el('desc', { id: 'mask-desc' }, escapeXml(`${scale} ${stats}`)),
    el('rect', { width: '100%', height: '100%', fill: 'white' }),
    text(title, { class: 'title', x: MARGIN, y: MARGIN + 14, 'font-size': 15, 'font-weight': 'bold' }),
    text(scale, { class: 'caption', x: MARGIN, y: MARGIN + 33, 'font-size': 12, fill: '#333' }),
    text(stats, { class: 'stats', x: MARGIN, y: MARGIN + 50, 'font-size': 12, fill: '#333' }),
    ...placed,
    el('g', { class: 'legend', transform: `translate(${MARGIN}, ${legendTop})` }, legendRows.flatMap(drawLegendRow)),
  ])}\n`;
}

// ---- panels --------------------------------------------------------------------------------------

function blockPanel(info: MaskInfo, heads: number[], factor: number, window: TokenWindow | undefined): Panel {
  const grid = cellGrid(info, heads[0], factor);
  const s = cellPixels(Math.max(grid.rows, grid.cols), MAP_PX, 3, 28);
  const gridW = (grid.kvSeqLen / grid.cellKv) * s;
  const gridH = (grid.qSeqLen / grid.cellQ) * s;
  const counts = headCounts(info, heads[0]);
  const heading = `${describeHeads(heads)}${heads.length > 1 ? ' (same mask)' : ''}: ${counts.full} full, ${counts.partial} partial, ${counts.empty} empty`;
  const gap = s >= 6 ? 1 : 0; // a hairline between squares once they are big enough to spare it
  const squares: string[] = [];
  for (let r = 0; r < grid.rows; r++) {
    for (let c = 0; c < grid.cols; c++) {
      const kind = grid.cells[r * grid.cols + c];
      // The last row and column may be ragged: draw them at their real token extent.
      const w = (Math.min(grid.cellKv, grid.kvSeqLen - c * grid.cellKv) / grid.cellKv) * s;
      const h = (Math.min(grid.cellQ, grid.qSeqLen - r * grid.cellQ) / grid.cellQ) * s;
      squares.push(el('rect', {
        class: `block ${CLASS_NAMES[kind]}`, 'data-q-block': r * factor, 'data-kv-block': c * factor,
        x: c * s, y: r * s, width: Math.max(w - gap, 0.5), height: Math.max(h - gap, 0.5), fill: CLASS_COLOURS[kind],
      }));
    }
  }
  const parts = [
    el('g', { class: 'squares' }, squares),
    axes(gridW, gridH, { start: 0, end: grid.kvSeqLen, unit: grid.cellKv, px: s }, { start: 0, end: grid.qSeqLen, unit: grid.cellQ, px: s }),
  ];
  if (window) {
    const [q0, q1] = window.q;
    const [kv0, kv1] = window.kv;
    parts.push(el('rect', {
      class: 'window-outline', x: (kv0 / grid.cellKv) * s, y: (q0 / grid.cellQ) * s,
      width: Math.max(((kv1 - kv0) / grid.cellKv) * s, 2), height: Math.max(((q1 - q0) / grid.cellQ) * s, 2),
      fill: 'none', stroke: WINDOW_OUTLINE, 'stroke-width': 2,
    }));
  }
  return framePanel(heading, gridW, gridH, parts, {
    class: 'block-map', 'data-heads': heads.join(','), 'data-factor': factor, 'data-rows': grid.rows, 'data-cols': grid.cols,
  });
}

function windowPanel(info: MaskInfo, head: number, window: TokenWindow): Panel {
  const [q0, q1] = window.q;
  const [kv0, kv1] = window.kv;
  const rows = q1 - q0;
  const cols = kv1 - kv0;
  const bits = maskInfoWindow(info, head, q0, q1, kv0, kv1);
  const e = cellPixels(Math.max(rows, cols), WINDOW_PX, 2, 16);
  // One rectangle per run of equal elements in a row keeps a 128 × 128 window small; a hairline
  // pattern on top still shows the individual elements once they are big enough.
  const runs: string[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; ) {
      const value = bits[r * cols + c];
      let end = c + 1;
      while (end < cols && bits[r * cols + end] === value) end++;
      runs.push(el('rect', {
        class: `element ${value ? 'allowed' : 'masked'}`, 'data-q': q0 + r, 'data-kv': kv0 + c, 'data-length': end - c,
        x: c * e, y: r * e, width: (end - c) * e, height: e, fill: CLASS_COLOURS[value ? FULL : EMPTY],
      }));
      c = end;
    }
  }
  const hairlines = e >= 6
    ? el('path', { class: 'element-grid', d: gridPath(rows, cols, e), stroke: 'white', 'stroke-width': 1, fill: 'none' })
    : '';
  const heading = `elements of head ${head}: q [${q0}, ${q1}) × kv [${kv0}, ${kv1})`;
  return framePanel(heading, cols * e, rows * e, [
    el('g', { class: 'squares' }, runs),
    hairlines,
    axes(cols * e, rows * e, { start: kv0, end: kv1, unit: 1, px: e }, { start: q0, end: q1, unit: 1, px: e }),
    el('rect', { x: 0, y: 0, width: cols * e, height: rows * e, fill: 'none', stroke: WINDOW_OUTLINE, 'stroke-width': 2 }),
  ], { class: 'element-window', 'data-head': head, 'data-rows': rows, 'data-cols': cols });
}

/** Lines between the elements of a rows × cols grid of e-pixel squares. */
function gridPath(rows: number, cols: number, e: number): string {
  const d: string[] = [];
  for (let c = 1; c < cols; c++) d.push(`M${c * e} 0V${rows * e}`);
  for (let r = 1; r < rows; r++) d.push(`M0 ${r * e}H${cols * e}`);
  return d.join('');
}

/** Size of one square: the budget split over the longer side, clamped to [min, max] pixels. */
function cellPixels(cells: number, budget: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, Math.floor(budget / cells)));
}

function framePanel(heading: string, gridW: number, gridH: number, parts: string[], attrs: Record<string, string | number>): Panel {
  const width = Math.max(PAD_LEFT + gridW + PAD_RIGHT, estimateTextWidth(heading, 13));
  return {
    width,
    height: PAD_TOP + gridH + PAD_BOTTOM,
    body: el('g', attrs, [
      text(heading, { class: 'panel-heading', x: 0, y: 13, 'font-size': 13, 'font-weight': 'bold' }),
      el('g', { transform: `translate(${PAD_LEFT}, ${PAD_TOP})` }, parts),
    ]),
  };
}

// ---- axes ----------------------------------------------------------------------------------------

interface AxisScale {
  start: number; // first token shown
  end: number; // one past the last
  unit: number; // tokens per square
  px: number; // pixels per square
}

/** Tick positions: multiples of the smallest step (unit × 2^k tokens) whose labels sit `minPx` apart. */
export function ticks({ start, end, unit, px }: AxisScale, minPx: number): number[] {
  let step = unit;
  while ((step / unit) * px < minPx) step *= 2;
  const out: number[] = [];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) out.push(t);
  return out;
}

function axes(gridW: number, gridH: number, x: AxisScale, y: AxisScale): string {
  const xPos = (t: number) => ((t - x.start) / x.unit) * x.px;
  const yPos = (t: number) => ((t - y.start) / y.unit) * y.px;
  const longest = String(x.end).length;
  const xTicks = ticks(x, estimateTextWidth('0'.repeat(longest), 10) + 12).map((t) => [
    el('line', { x1: xPos(t), x2: xPos(t), y1: -4, y2: 0, stroke: '#555' }),
    text(String(t), { x: xPos(t), y: -7, 'font-size': 10, 'text-anchor': 'middle', fill: '#333' }),
  ].join(''));
  const yTicks = ticks(y, 16).map((t) => [
    el('line', { x1: -4, x2: 0, y1: yPos(t), y2: yPos(t), stroke: '#555' }),
    text(String(t), { x: -7, y: yPos(t) + 3.5, 'font-size': 10, 'text-anchor': 'end', fill: '#333' }),
  ].join(''));
  return [
    el('g', { class: 'axis x' }, [
      ...xTicks,
      text('kv position (tokens)', { class: 'axis-title', x: gridW / 2, y: -24, 'font-size': 12, 'text-anchor': 'middle' }),
    ]),
    el('g', { class: 'axis y' }, [
      ...yTicks,
      text('q position (tokens)', {
        class: 'axis-title', transform: `translate(${-PAD_LEFT + 12}, ${gridH / 2}) rotate(-90)`, 'font-size': 12, 'text-anchor': 'middle',
      }),
    ]),
  ].join('\n');
}

// ---- legend --------------------------------------------------------------------------------------

interface LegendItem {
  key: string;
  label: string;
  fill: string;
  outline?: boolean;
}

/** Legend rows: the block classes, then (with a window) the element classes and the outline. */
function legendItems(withWindow: boolean): LegendItem[][] {
  const rows: LegendItem[][] = [[
    { key: 'full', label: 'full block: no mask arithmetic', fill: CLASS_COLOURS[FULL] },
    { key: 'partial', label: 'partial block: mask evaluated', fill: CLASS_COLOURS[PARTIAL] },
    { key: 'empty', label: 'empty block: skipped', fill: CLASS_COLOURS[EMPTY] },
  ]];
  if (withWindow) {
    rows.push([
      { key: 'allowed', label: 'allowed token pair', fill: CLASS_COLOURS[FULL] },
      { key: 'masked', label: 'masked token pair', fill: CLASS_COLOURS[EMPTY] },
      { key: 'window', label: 'element window', fill: 'none', outline: true },
    ]);
  }
  return rows;
}

const LEGEND_ROW = 22;

function legendItemWidth(item: LegendItem): number {
  return 22 + estimateTextWidth(item.label, 12) + 18;
}

function legendRowWidth(items: LegendItem[]): number {
  return items.reduce((w, item) => w + legendItemWidth(item), 0);
}

function drawLegendRow(items: LegendItem[], row: number): string[] {
  let x = 0;
  const y = row * LEGEND_ROW;
  return items.map((item) => {
    const swatch = el('rect', {
      x, y, width: 14, height: 14, fill: item.fill,
      stroke: item.outline ? WINDOW_OUTLINE : '#999', 'stroke-width': item.outline ? 2 : 0.5,
    });
    const label = text(item.label, { x: x + 20, y: y + 11.5, 'font-size': 12 });
    x += legendItemWidth(item);
    return el('g', { class: `legend-item ${item.key}` }, [swatch, label]);
  });
}
