// Benchmark plots: the Vega-Lite spec (axes, scales, line labels kept apart) and the SVG Vega
// renders from it, parsed with a strict XML parser: one line per series and panel, the legend,
// the panel headers and the axis titles with their units.

import assert from 'node:assert/strict';
import { PLOT_PACKAGES_HINT, importPackage, plotSpec, renderPlot, type PlotPoint } from '../lib/bench-plot';
import { seededRandom } from '../lib/random';
import { allElements, byClass, checkSvg, texts } from './support/svg';

/** Seeded points: three splash series on every mask, two peer series on full and causal only. */
function samplePoints(seed: number): PlotPoint[] {
  const random = seededRandom(seed);
  const points: PlotPoint[] = [];
  for (const mask of ['full', 'causal', 'local512']) {
    for (const seq of [1024, 2048, 4096]) {
      points.push({ series: 'splash cpu f32', mask, seq, gflops: 150 + 50 * random() });
      points.push({ series: 'splash cpu bf16', mask, seq, gflops: 280 + 60 * random() });
      if (seq === 1024) points.push({ series: 'splash js f32', mask, seq, gflops: 2 + 2 * random() });
      if (mask !== 'local512') {
        // Two peers with almost the same throughput: their labels must still not overlap.
        const ort = 80 + 20 * random();
        points.push({ series: 'ORT MHA f32', mask, seq, gflops: ort });
        points.push({ series: 'ORT Attention f32', mask, seq, gflops: ort * 1.01 });
      }
    }
  }
  return points;
}

/** The parts of the generated spec these tests read. */
interface Axis { title: string; scale: { type: string; base?: number; domain: [number, number] }; axis: { values: number[] } }
interface LayerSpec { encoding: { x: Axis; y: Axis } }
interface Spec {
  facet: { sort: string[] };
  data: { values: (PlotPoint & { kind: string })[] };
  spec: { height: number; layer: LayerSpec[] };
}

describe('benchmark plot spec', () => {
  it('uses log2 sequence lengths with a tick at each, and a log throughput axis for a wide range', () => {
    const spec = plotSpec(samplePoints(1), { title: 't' }) as unknown as Spec;
    const { x, y } = spec.spec.layer[0].encoding;
    assert.deepEqual([x.scale.type, x.scale.base], ['log', 2]);
    assert.deepEqual(x.axis.values, [1024, 2048, 4096]);
    assert.equal(x.title, 'sequence length S (tokens)');
    assert.equal(y.scale.type, 'log'); // 2 to 340 GFLOP/s
    assert.equal(y.title, 'throughput (GFLOP/s), log scale');
    assert.deepEqual(spec.facet.sort, ['full', 'causal', 'local512']);
    const narrow = plotSpec(samplePoints(1).filter((p) => !p.series.includes('js')), { title: 't', yTitle: 'forward (GFLOP/s)' }) as unknown as Spec;
    const ny = narrow.spec.layer[0].encoding.y;
    assert.deepEqual([ny.scale.type, ny.title], ['linear', 'forward (GFLOP/s)']);
  });

  it('labels each line once per panel, at its last point, at least 12 px from the next label', () => {
    const spec = plotSpec(samplePoints(2), { title: 't' }) as unknown as Spec;
    const labels = spec.data.values.filter((v) => v.kind === 'label');
    assert.equal(labels.length, 5 + 5 + 3);
    const { domain } = spec.spec.layer[0].encoding.y.scale;
    const pixel = (v: number) => spec.spec.height * (1 - Math.log(v / domain[0]) / Math.log(domain[1] / domain[0]));
    for (const mask of ['full', 'causal', 'local512']) {
      const px = labels.filter((l) => l.mask === mask).map((l) => pixel(l.gflops)).sort((a, b) => a - b);
      for (let i = 1; i < px.length; i++) assert.ok(px[i] - px[i - 1] >= 12 - 1e-9, `${mask}: labels ${px[i - 1]} and ${px[i]} px`);
      for (const p of px) assert.ok(p >= 0 && p <= spec.spec.height, `${mask}: label at ${p} px is outside the panel`);
      for (const l of labels.filter((x) => x.mask === mask)) {
        const lastSeq = Math.max(...spec.data.values.filter((v) => v.kind === 'point' && v.mask === mask && v.series === l.series).map((v) => v.seq));
        assert.equal(l.seq, lastSeq, `${mask} ${l.series}`);
      }
    }
  });

  it('refuses an empty plot', () => {
    assert.throws(() => plotSpec([], { title: 't' }), /^RangeError: points: expected at least one measured point, got none$/);
  });
});

describe('benchmark plot SVG (vega, headless)', function () {
  this.timeout(30_000);

  it('is well-formed and holds every series, panel, label and axis title', async () => {
    const points = samplePoints(3);
    const svg = await renderPlot(points, { title: 'Forward throughput', subtitle: ['H = 8, D = 128'] });
    const doc = checkSvg(svg);
    // One line path per (panel, series): 3 splash series × 3 panels (js is a single point, still a
    // path) + 2 peer series × 2 panels.
    const lines = byClass(doc, 'mark-line').flatMap((g) => allElements(g).filter((e) => e.localName === 'path'));
    assert.equal(lines.length, 3 * 3 + 2 * 2);
    for (const path of lines) assert.match(path.getAttribute('d') ?? '', /^M[-\d.]+,[-\d.]+/);
    const legend = byClass(doc, 'role-legend-label').flatMap(texts);
    assert.deepEqual(legend, ['splash cpu f32', 'splash cpu bf16', 'splash js f32', 'ORT MHA f32', 'ORT Attention f32']);
    const lineLabels = byClass(doc, 'mark-text', 'role-mark').flatMap(texts);
    assert.equal(lineLabels.length, 13);
    assert.deepEqual([...new Set(lineLabels)].sort(), [...legend].sort());
    const all = texts(doc.documentElement as never);
    for (const mask of ['full', 'causal', 'local512']) assert.ok(all.includes(mask), `panel header ${mask}`);
    assert.ok(all.includes('sequence length S (tokens)'));
    assert.ok(all.includes('throughput (GFLOP/s), log scale'));
    assert.ok(all.includes('Forward throughput') && all.includes('H = 8, D = 128'));
  });

  it('names the packages to install when one is missing', async () => {
    await assert.rejects(importPackage('splash-no-such-package'), (e: Error) =>
      e.message === `plotting needs the optional package 'splash-no-such-package', which is not installed; install it with: ${PLOT_PACKAGES_HINT}`);
  });
});
