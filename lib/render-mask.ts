// renderMaskInfo: the public entry point of the mask pictures. It checks its arguments (messages
// name the argument and give the expected and the actual value) and hands them to the text or the
// SVG renderer.

import { describeValue } from './describe-value';
import type { MaskInfo } from './mask-info';
import type { CheckedRenderOptions, TokenWindow } from './mask-picture';
import { renderMaskText } from './render-mask-text';
import { renderMaskSvg } from './render-mask-svg';

export type { TokenWindow } from './mask-picture';

/** Options of {@link renderMaskInfo}. */
export interface RenderMaskOptions {
  /** `'text'` (default): characters for a terminal; `'svg'`: a standalone SVG document. */
  format?: 'text' | 'svg';
  /** Draw only this head (0-based). Default: every head, heads with the same mask drawn once. */
  head?: number;
  /**
   * Widest picture before the block map is downsampled (the same factor along both axes): for text,
   * characters per grid line including the q labels (default 80, at least 20); for SVG, squares
   * across one head's map (default 64, at least 1).
   */
  maxWidth?: number;
  /**
   * A token window [q0, q1) × [kv0, kv1) drawn element by element beside the block map (`head`, or
   * head 0, of the mask). At most 128 tokens along each axis for SVG; for text, as many as fit in
   * `maxWidth`.
   */
  window?: TokenWindow;
}

/** Default and least `maxWidth` of the text picture, in characters. */
export const DEFAULT_TEXT_WIDTH = 80;
export const MIN_TEXT_WIDTH = 20;
/** Default `maxWidth` of the SVG picture, in squares across one head's map. */
export const DEFAULT_SVG_SQUARES = 64;
/** Largest element window along either axis in an SVG (128² squares stay a few hundred KiB). */
export const MAX_SVG_WINDOW = 128;

const OPTION_NAMES = ['format', 'head', 'maxWidth', 'window'];

/**
 * Draws a {@link MaskInfo}'s block map: which blocks the kernels skip (empty), evaluate the mask on
 * (partial) and run without mask arithmetic (full).
 *
 * - Text: one character per block (`█` full, `▒` partial, `·` empty), rows labelled with their
 *   first q token; a map wider than `maxWidth` is downsampled by a stated factor f, one character
 *   then standing for f × f blocks (partial unless all of them are empty or all full). A stats line
 *   ends the picture.
 * - SVG: one square per block (or per f × f blocks), token axes, a legend with each class's block
 *   count, the stats line, and optionally an element-level view of a small token window.
 *
 * Neither format needs the original mask: partial blocks are read from the MaskInfo's stored blocks
 * or its mask programs.
 *
 * @param info - a MaskInfo from {@link processMask} (or a kernel's `fwdMaskInfo`).
 * @param opts - format, head, maximum width and element window; see {@link RenderMaskOptions}.
 * @returns the picture: lines of text ending in a newline, or an SVG document.
 * @throws TypeError when `info` is not a MaskInfo, an option has the wrong type, `opts.format` is
 *   neither `'text'` nor `'svg'`, or `opts` has an unknown key.
 * @throws RangeError when `opts.head` is not a head of `info`, `opts.maxWidth` is too small or not an
 *   integer, or `opts.window` is empty, outside the sequences or too large.
 *
 * @example
 * ```ts
 * import { CausalMask, processMask, renderMaskInfo } from 'splash-attention';
 *
 * const info = processMask(new CausalMask([1024, 1024]), [128, 128]);
 * console.log(renderMaskInfo(info)); // an 8 × 8 grid of █ ▒ ·
 * const svg = renderMaskInfo(info, { format: 'svg', window: { q: [0, 64], kv: [0, 64] } });
 * ```
 */
export function renderMaskInfo(info: MaskInfo, opts: RenderMaskOptions = {}): string {
  checkInfo(info);
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw new TypeError(`opts: expected an object, got ${describeValue(opts)}`);
  }
  for (const key of Object.keys(opts)) {
    if (!OPTION_NAMES.includes(key)) {
      throw new TypeError(`opts.${key}: unknown option; expected one of ${OPTION_NAMES.join(', ')}`);
    }
  }
  const format = opts.format ?? 'text';
  if (format !== 'text' && format !== 'svg') {
    throw new TypeError(`opts.format: expected 'text' or 'svg', got ${describeValue(format)}`);
  }
  const head = checkHead(opts.head, info.heads);
  const maxWidth = format === 'text'
    ? checkInteger(opts.maxWidth, 'opts.maxWidth', DEFAULT_TEXT_WIDTH, MIN_TEXT_WIDTH, 'characters')
    : checkInteger(opts.maxWidth, 'opts.maxWidth', DEFAULT_SVG_SQUARES, 1, 'squares');
  const window = checkWindow(opts.window, info, format === 'svg' ? MAX_SVG_WINDOW : null);
  const checked: CheckedRenderOptions = { head, maxWidth, window };
  return format === 'text' ? renderMaskText(info, checked) : renderMaskSvg(info, checked);
}

function checkInfo(info: unknown): asserts info is MaskInfo {
  const fields = ['heads', 'qBlocks', 'kvBlocks', 'blockQ', 'blockKv', 'qSeqLen', 'kvSeqLen'] as const;
  const i = info as Partial<Record<string, unknown>> | null;
  const ok = typeof info === 'object' && info !== null &&
    fields.every((f) => typeof i?.[f] === 'number' && Number.isInteger(i[f]) && (i[f] as number) > 0) &&
    i?.blockMask instanceof Uint8Array && i.maskNext instanceof Int32Array && i.headSchedule instanceof Int32Array &&
    typeof i.stats === 'object' && i.stats !== null;
  if (!ok) throw new TypeError(`info: expected a MaskInfo from processMask(), got ${describeValue(info)}`);
  const m = info as MaskInfo;
  const blocks = m.heads * m.qBlocks * m.kvBlocks;
  if (m.blockMask.length !== blocks) {
    throw new RangeError(`info.blockMask: expected length ${blocks} (heads × qBlocks × kvBlocks), got ${m.blockMask.length}`);
  }
}

function checkHead(head: unknown, heads: number): number | undefined {
  if (head === undefined) return undefined;
  if (typeof head !== 'number') throw new TypeError(`opts.head: expected an integer in [0, ${heads - 1}], got ${describeValue(head)}`);
  if (!Number.isInteger(head) || head < 0 || head >= heads) {
    throw new RangeError(`opts.head: expected an integer in [0, ${heads - 1}] (the MaskInfo has ${heads} head${heads === 1 ? '' : 's'}), got ${head}`);
  }
  return head;
}

function checkInteger(x: unknown, name: string, fallback: number, min: number, unit: string): number {
  if (x === undefined) return fallback;
  if (typeof x !== 'number') throw new TypeError(`${name}: expected an integer ≥ ${min} (${unit}), got ${describeValue(x)}`);
  if (!Number.isInteger(x) || x < min) throw new RangeError(`${name}: expected an integer ≥ ${min} (${unit}), got ${x}`);
  return x;
}

function checkWindow(window: unknown, info: MaskInfo, maxSide: number | null): TokenWindow | undefined {
  if (window === undefined) return undefined;
  const expected = 'an object { q: [q0, q1], kv: [kv0, kv1] } of token positions';
  if (typeof window !== 'object' || window === null) throw new TypeError(`opts.window: expected ${expected}, got ${describeValue(window)}`);
  const w = window as { q?: unknown; kv?: unknown };
  const range = (r: unknown, axis: 'q' | 'kv', len: number): [number, number] => {
    const name = `opts.window.${axis}`;
    if (!Array.isArray(r) || r.length !== 2 || r.some((x) => typeof x !== 'number')) {
      throw new TypeError(`${name}: expected [start, end] token positions, got ${describeValue(r)}`);
    }
    const [a, b] = r as number[];
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b > len || a >= b) {
      throw new RangeError(`${name}: expected integers 0 ≤ start < end ≤ ${len} (the ${axis} length), got [${a}, ${b}]`);
    }
    if (maxSide !== null && b - a > maxSide) {
      throw new RangeError(`${name}: expected at most ${maxSide} tokens for an element view, got ${b - a} ([${a}, ${b}])`);
    }
    return [a, b];
  };
  return { q: range(w.q, 'q', info.qSeqLen), kv: range(w.kv, 'kv', info.kvSeqLen) };
}
