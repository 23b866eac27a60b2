// renderMaskInfo: block classes at known positions in the text and SVG pictures, the downsampling
// factor and how cells aggregate blocks, head grouping, the legend and stats line, the element
// window against the mask itself, and argument errors.

import assert from 'node:assert/strict';
import {
  CausalMask, DenseMask, FullMask, LocalMask, MultiHeadMask, makeRandomMask, processMask, renderMaskInfo, type Mask, type MaskInfo,
} from '../lib/index';
import { maskInfoWindow } from '../lib/mask-elements';
import { seededRandom } from '../lib/random';
import { TEXT_SYMBOLS } from '../lib/render-mask-text';
import { byClass, checkSvg, num, texts } from './support/svg';

const [EMPTY, PARTIAL, FULL] = TEXT_SYMBOLS;

/** The grid rows of every head section of a text picture: the lines after each `q\kv` ruler up to a blank line. */
function textGrids(out: string): { heading: string; rows: string[] }[] {
  const lines = out.split('\n');
  const grids: { heading: string; rows: string[] }[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*q\\kv /.test(lines[i]) || lines[i - 1].startsWith('elements')) continue;
    const labelWidth = lines[i].indexOf('q\\kv') + 4;
    const rows: string[] = [];
    for (let j = i + 1; j < lines.length && lines[j] !== ''; j++) rows.push(lines[j].slice(labelWidth + 1));
    grids.push({ heading: lines[i - 1], rows });
  }
  return grids;
}

/** Class of cell (r, c) at downsampling factor f, computed straight from blockMask. */
function expectedCell(info: MaskInfo, head: number, f: number, r: number, c: number): number {
  const seen = new Set<number>();
  for (let qb = r * f; qb < Math.min(info.qBlocks, (r + 1) * f); qb++) {
    for (let kb = c * f; kb < Math.min(info.kvBlocks, (c + 1) * f); kb++) {
      seen.add(info.blockMask[(head * info.qBlocks + qb) * info.kvBlocks + kb]);
    }
  }
  if (seen.size === 1) return [...seen][0];
  return 1;
}

describe('renderMaskInfo: text', () => {
  it('draws a causal mask with partial blocks on the diagonal, full below, empty above', () => {
    const info = processMask(new CausalMask([1024, 1024]), [128, 128]);
    const out = renderMaskInfo(info);
    const [grid] = textGrids(out);
    assert.equal(grid.rows.length, 8);
    for (let r = 0; r < 8; r++) {
      assert.equal(grid.rows[r].length, 8, grid.rows[r]);
      for (let c = 0; c < 8; c++) assert.equal(grid.rows[r][c], c === r ? PARTIAL : c < r ? FULL : EMPTY, `cell ${r},${c}`);
    }
    assert.match(out, /1 character = 1 block of 128 × 128 tokens/);
    // The stats line: 8 diagonal partial blocks, 28 full below, 28 empty above.
    assert.match(out, /^stats: 64 blocks: 28 full, 8 partial, 28 empty; density 56\.3 %; 0 stored partial blocks$/m);
    assert.match(out, /head 0: 28 full, 8 partial, 28 empty/);
  });

  it('states the legend and labels rows with their first q token', () => {
    const out = renderMaskInfo(processMask(new LocalMask([1024, 1024], [128, 0]), [128, 128]));
    assert.ok(out.includes(`${FULL} full  ${PARTIAL} partial  ${EMPTY} empty`), out);
    const lines = out.split('\n');
    const ruler = lines.findIndex((l) => l.includes('q\\kv'));
    assert.match(lines[ruler], /q\\kv 0\s+1024$/);
    assert.match(lines[ruler + 1], /^\s+0 /);
    assert.match(lines[ruler + 8], /^\s*896 /);
    // A 128-token window back: the diagonal block and the one left of it are partial, nothing is full.
    const [grid] = textGrids(out);
    for (let r = 0; r < 8; r++) {
      for (let c = 0; c < 8; c++) assert.equal(grid.rows[r][c], c === r || c === r - 1 ? PARTIAL : EMPTY, `cell ${r},${c}`);
    }
  });

  it('downsamples a map wider than maxWidth by the stated factor, aggregating blocks per cell', () => {
    // 80 kv blocks; maxWidth 30 leaves 30 - 4 - 1 = 25 columns → factor ceil(80 / 25) = 4 → 20 columns.
    const mask = makeRandomMask([640, 640], 0.5, 11).and(new LocalMask([640, 640], [64, 16]));
    const info = processMask(mask.or(new CausalMask([640, 640], -320)), [8, 8]);
    const out = renderMaskInfo(info, { maxWidth: 30 });
    assert.match(out, /1 character = 4 × 4 blocks \(32 × 32 tokens\), downsampled by 4/);
    const [grid] = textGrids(out);
    assert.equal(grid.rows.length, 20);
    const classes = new Set<string>();
    for (let r = 0; r < 20; r++) {
      assert.equal(grid.rows[r].length, 20);
      for (let c = 0; c < 20; c++) {
        classes.add(grid.rows[r][c]);
        assert.equal(grid.rows[r][c], TEXT_SYMBOLS[expectedCell(info, 0, 4, r, c)], `cell ${r},${c}`);
      }
    }
    assert.equal(classes.size, 3, 'the test mask should show all three classes');
    // One more column of room and the factor stays 4; exactly 80 columns and it is 1.
    assert.match(renderMaskInfo(info, { maxWidth: 4 + 1 + 80 }), /1 character = 1 block of 8 × 8 tokens/);
    assert.match(renderMaskInfo(info, { maxWidth: 4 + 1 + 79 }), /downsampled by 2/);
  });

  it('draws heads with the same mask once, or only the head asked for', () => {
    const causal = new CausalMask([256, 256]);
    const info = processMask(new MultiHeadMask([causal, new FullMask([256, 256]), causal]), [64, 64]);
    const out = renderMaskInfo(info);
    const grids = textGrids(out);
    assert.deepEqual(grids.map((g) => g.heading), [
      'heads 0, 2: 6 full, 4 partial, 6 empty each (same mask)',
      'head 1: 16 full, 0 partial, 0 empty',
    ]);
    assert.deepEqual(grids[1].rows, [FULL.repeat(4), FULL.repeat(4), FULL.repeat(4), FULL.repeat(4)]);
    assert.match(out, /^stats: 48 blocks over 3 heads: 28 full, 8 partial, 12 empty/m);
    const one = textGrids(renderMaskInfo(info, { head: 2 }));
    assert.deepEqual(one.map((g) => g.heading), ['head 2: 6 full, 4 partial, 6 empty']);
  });

  it('shows an element window that matches the mask element by element', () => {
    const mask = makeRandomMask([200, 200], 0.6, 5).or(new LocalMask([200, 200], [3, 3]));
    const info = processMask(mask, [64, 64]);
    const out = renderMaskInfo(info, { window: { q: [50, 90], kv: [60, 130] } });
    const lines = out.split('\n');
    const at = lines.findIndex((l) => l.startsWith('elements of head 0, q [50, 90) × kv [60, 130)'));
    assert.ok(at > 0, out);
    assert.match(lines[at], /█ allowed {2}· masked/);
    const expected = mask.slice(50, 90, 60, 130);
    for (let r = 0; r < 40; r++) {
      const row = lines[at + 2 + r].slice(5); // the q\kv corner is the widest label: 4 characters, then a space
      assert.equal(row.length, 70);
      for (let c = 0; c < 70; c++) assert.equal(row[c], expected[r * 70 + c] ? '█' : '·', `element ${50 + r},${60 + c}`);
    }
  });
});

describe('renderMaskInfo: SVG', () => {
  it('has one square per block with its class at the right position, token axes and a legend', () => {
    const info = processMask(new CausalMask([1000, 1000]), [128, 128]); // 8 × 8 blocks, the last ragged
    const doc = checkSvg(renderMaskInfo(info, { format: 'svg' }));
    const [map] = byClass(doc, 'block-map');
    assert.equal(map.getAttribute('data-factor'), '1');
    const squares = byClass(doc, 'block');
    assert.equal(squares.length, 64);
    const seen = new Set<string>();
    for (const sq of squares) {
      const r = num(sq, 'data-q-block');
      const c = num(sq, 'data-kv-block');
      seen.add(`${r},${c}`);
      const kind = c === r ? 'partial' : c < r ? 'full' : 'empty';
      assert.ok(sq.getAttribute('class')?.split(' ').includes(kind), `block ${r},${c} is ${sq.getAttribute('class')}`);
      // Squares sit on a grid in block order; the ragged last row and column are narrower.
      const s = num(squares[0], 'x') === 0 ? num(squares[1], 'x') : NaN;
      assert.equal(num(sq, 'x'), c * s);
      assert.equal(num(sq, 'y'), r * s);
      if (c === 7) assert.ok(num(sq, 'width') < num(squares[0], 'width'), 'ragged last column');
    }
    assert.equal(seen.size, 64);
    const legend = byClass(doc, 'legend')[0];
    assert.deepEqual(texts(legend), ['full block: no mask arithmetic', 'partial block: mask evaluated', 'empty block: skipped']);
    for (const key of ['full', 'partial', 'empty']) {
      const swatch = byClass(doc, 'legend-item', key)[0].getElementsByTagName('rect')[0];
      const square = squares.find((sq) => sq.getAttribute('class') === `block ${key}`);
      assert.equal(swatch.getAttribute('fill'), square?.getAttribute('fill'), `legend colour of ${key}`);
    }
    const axisTitles = byClass(doc, 'axis-title').map((t) => t.textContent);
    assert.deepEqual(axisTitles, ['kv position (tokens)', 'q position (tokens)']);
    const xTicks = texts(byClass(doc, 'axis', 'x')[0]).slice(0, -1).map(Number);
    assert.ok(xTicks.length >= 3 && xTicks[0] === 0 && xTicks.every((t) => t % 128 === 0 && t <= 1000), `${xTicks}`);
    assert.match(doc.getElementsByTagName('desc')[0].textContent ?? '', /64 blocks: 28 full, 8 partial, 28 empty/);
  });

  it('downsamples to maxWidth squares across and says so', () => {
    const info = processMask(new LocalMask([4096, 4096], [512, 0]), [64, 64]); // 64 × 64 blocks
    const doc = checkSvg(renderMaskInfo(info, { format: 'svg', maxWidth: 16 }));
    const [map] = byClass(doc, 'block-map');
    assert.equal(map.getAttribute('data-factor'), '4');
    const squares = byClass(doc, 'block');
    assert.equal(squares.length, 16 * 16);
    for (const sq of squares) {
      const r = num(sq, 'data-q-block') / 4;
      const c = num(sq, 'data-kv-block') / 4;
      const kind = ['empty', 'partial', 'full'][expectedCell(info, 0, 4, r, c)];
      assert.equal(sq.getAttribute('class'), `block ${kind}`, `cell ${r},${c}`);
    }
    assert.match(byClass(doc, 'caption')[0].textContent ?? '', /1 square = 4 × 4 blocks \(256 × 256 tokens\), downsampled by 4/);
  });

  it('draws one panel per distinct head mask', () => {
    const a = new CausalMask([512, 512]);
    const info = processMask(new MultiHeadMask([a, new LocalMask([512, 512], [64, 64]), a, a]), [128, 128]);
    const doc = checkSvg(renderMaskInfo(info, { format: 'svg' }));
    assert.deepEqual(byClass(doc, 'block-map').map((m) => m.getAttribute('data-heads')), ['0,2,3', '1']);
    assert.deepEqual(byClass(doc, 'panel-heading').map((h) => h.textContent?.split(':')[0]), ['heads 0, 2–3 (same mask)', 'head 1']);
    const only = checkSvg(renderMaskInfo(info, { format: 'svg', head: 1 }));
    assert.deepEqual(byClass(only, 'block-map').map((m) => m.getAttribute('data-heads')), ['1']);
  });

  it('draws an element window whose runs rebuild the mask exactly, with its legend entries', () => {
    const masks: Mask[] = [
      makeRandomMask([300, 300], 0.5, 21),
      new CausalMask([300, 300]).and(new LocalMask([300, 300], [40, 0])),
    ];
    const info = processMask(new MultiHeadMask(masks), [64, 64]);
    for (const head of [0, 1]) {
      const doc = checkSvg(renderMaskInfo(info, { format: 'svg', head, window: { q: [100, 228], kv: [40, 168] } }));
      const [panel] = byClass(doc, 'element-window');
      assert.equal(panel.getAttribute('data-head'), String(head));
      const rebuilt = new Uint8Array(128 * 128).fill(2);
      for (const run of byClass(doc, 'element')) {
        const q = num(run, 'data-q') - 100;
        const kv = num(run, 'data-kv') - 40;
        const value = run.getAttribute('class')?.includes('allowed') ? 1 : 0;
        for (let i = 0; i < num(run, 'data-length'); i++) rebuilt[q * 128 + kv + i] = value;
      }
      assert.deepEqual(rebuilt, masks[head].slice(100, 228, 40, 168));
      for (const key of ['allowed', 'masked', 'window']) assert.equal(byClass(doc, 'legend-item', key).length, 1, key);
      assert.equal(byClass(doc, 'window-outline').length, 1);
    }
  });
});

describe('maskInfoWindow (elements read back from a MaskInfo)', () => {
  it('equals mask.slice for computable, dense and mixed masks, ragged blocks included', () => {
    const random = seededRandom(3);
    const shape: [number, number] = [203, 157];
    const masks: Mask[] = [
      new CausalMask(shape, 17),
      new LocalMask(shape, [30, 5]).or(new CausalMask(shape, -90)),
      makeRandomMask(shape, 0.3, 8),
      makeRandomMask(shape, 0.9, 9).or(new LocalMask(shape, [2, 2])),
    ];
    const info = processMask(new MultiHeadMask(masks), [32, 48]);
    masks.forEach((mask, head) => {
      for (let trial = 0; trial < 5; trial++) {
        const q0 = Math.floor(random() * 150);
        const kv0 = Math.floor(random() * 100);
        const q1 = q0 + 1 + Math.floor(random() * (203 - q0));
        const kv1 = kv0 + 1 + Math.floor(random() * (157 - kv0));
        assert.deepEqual(maskInfoWindow(info, head, q0, q1, kv0, kv1), mask.slice(q0, q1, kv0, kv1), `head ${head} [${q0}, ${q1}) × [${kv0}, ${kv1})`);
      }
    });
  });

  it('reads the empty and full blocks of a dense mask from their class (a dense mask has no program)', () => {
    const shape: [number, number] = [96, 80];
    const mask = new DenseMask(new CausalMask(shape, 10).toDense(), shape);
    const info = processMask(mask, [16, 16]);
    assert.ok(info.stats.empty > 0 && info.stats.full > 0 && info.stats.partial > 0, JSON.stringify(info.stats));
    assert.deepEqual(maskInfoWindow(info, 0, 0, 96, 0, 80), mask.toDense());
    assert.deepEqual(maskInfoWindow(info, 0, 5, 61, 7, 70), mask.slice(5, 61, 7, 70));
  });
});

describe('renderMaskInfo: argument errors', () => {
  const info = processMask(new MultiHeadMask([new CausalMask([256, 256]), new FullMask([256, 256])]), [64, 64]);
  const cases: [string, () => unknown, ErrorConstructor, RegExp][] = [
    ['info not a MaskInfo', () => renderMaskInfo({} as MaskInfo), TypeError, /^info: expected a MaskInfo from processMask\(\), got Object$/],
    ['info a mask', () => renderMaskInfo(new CausalMask([8, 8]) as unknown as MaskInfo), TypeError, /^info: .* got CausalMask$/],
    ['blockMask of the wrong length', () => renderMaskInfo({ ...info, blockMask: new Uint8Array(3) }), RangeError,
      /^info\.blockMask: expected length 32 \(heads × qBlocks × kvBlocks\), got 3$/],
    ['opts not an object', () => renderMaskInfo(info, 'svg' as never), TypeError, /^opts: expected an object, got string 'svg'$/],
    ['unknown option', () => renderMaskInfo(info, { colour: 'red' } as never), TypeError, /^opts\.colour: unknown option; expected one of format, head, maxWidth, window$/],
    ['unknown format', () => renderMaskInfo(info, { format: 'png' as never }), TypeError, /^opts\.format: expected 'text' or 'svg', got string 'png'$/],
    ['head not a number', () => renderMaskInfo(info, { head: '1' as never }), TypeError, /^opts\.head: expected an integer in \[0, 1\], got string '1'$/],
    ['head out of range', () => renderMaskInfo(info, { head: 2 }), RangeError, /^opts\.head: expected an integer in \[0, 1\] \(the MaskInfo has 2 heads\), got 2$/],
    ['head not an integer', () => renderMaskInfo(info, { head: 0.5 }), RangeError, /^opts\.head: .* got 0\.5$/],
    ['maxWidth too small for text', () => renderMaskInfo(info, { maxWidth: 19 }), RangeError, /^opts\.maxWidth: expected an integer ≥ 20 \(characters\), got 19$/],
    ['maxWidth 0 squares', () => renderMaskInfo(info, { format: 'svg', maxWidth: 0 }), RangeError, /^opts\.maxWidth: expected an integer ≥ 1 \(squares\), got 0$/],
    ['maxWidth NaN', () => renderMaskInfo(info, { maxWidth: NaN }), RangeError, /^opts\.maxWidth: .* got NaN$/],
    ['window not an object', () => renderMaskInfo(info, { window: [0, 8] as never }), TypeError, /^opts\.window\.q: expected \[start, end\] token positions, got undefined$/],
    ['window outside the sequence', () => renderMaskInfo(info, { window: { q: [0, 8], kv: [250, 300] } }), RangeError,
      /^opts\.window\.kv: expected integers 0 ≤ start < end ≤ 256 \(the kv length\), got \[250, 300\]$/],
    ['empty window', () => renderMaskInfo(info, { window: { q: [5, 5], kv: [0, 8] } }), RangeError, /^opts\.window\.q: .* got \[5, 5\]$/],
    ['SVG window too large', () => renderMaskInfo(info, { format: 'svg', window: { q: [0, 129], kv: [0, 8] } }), RangeError,
      /^opts\.window\.q: expected at most 128 tokens for an element view, got 129 \(\[0, 129\]\)$/],
    ['text window wider than the line', () => renderMaskInfo(info, { maxWidth: 40, window: { q: [0, 8], kv: [0, 40] } }), RangeError,
      /^opts\.window\.kv: expected at most 35 tokens \(maxWidth 40 less the q labels\), got 40 \(\[0, 40\]\)$/],
  ];
  for (const [what, call, cls, message] of cases) {
    it(`${what} → ${cls.name}`, () => {
      assert.throws(call, (e: unknown) => e instanceof cls && message.test((e as Error).message), `expected ${cls.name} matching ${message}`);
    });
  }
});
