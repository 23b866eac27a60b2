// Benchmark plots: throughput against sequence length, one panel per mask, one labelled line per
// implementation. The chart is a Vega-Lite spec rendered to SVG by Vega's headless renderer. Both are
// optional packages, loaded only when a plot is asked for, so the library never pulls them in.

import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** One measured point of a plot. */
export interface PlotPoint {
  /** The line it belongs to, e.g. `splash cpu f32` or `ORT MHA f32`; also its label. */
  series: string;
  /** The panel: the mask it was measured on. */
  mask: string;
  /** Sequence length in tokens. */
  seq: number;
  /** Throughput in GFLOP/s (unmasked work only). */
  gflops: number;
}

/** Titles of a plot. */
export interface PlotOptions {
  /** The headline. */
  title: string;
  /** Lines under the title: problem sizes, how figures were taken, the machine. */
  subtitle?: string[];
  /** The y axis title, with its unit. Default: `throughput (GFLOP/s)`. */
  yTitle?: string;
}

/** Top-level Vega-Lite spec, kept as plain data (the package has no Vega-Lite types at run time). */
export type VegaLiteSpec = Record<string, unknown>;

const FONT = 'Helvetica, Arial, sans-serif';
const PANEL_WIDTH = 280;
const PANEL_HEIGHT = 220;
/** Share of a panel's width left of the last measured length; the rest holds the line labels. */
const POINTS_SHARE = 0.66;
/** Least vertical distance between two line labels, in pixels (10 px text). */
const LABEL_GAP = 12;
/** Line colours: dark enough for 10 px labels on white, distinct in hue. */
const PALETTE = ['#1f66b0', '#e8710a', '#c22f2f', '#2e8b3a', '#7b4fb0', '#8c564b', '#c2418f', '#5f6b7a'];

/**
 * The Vega-Lite spec of a throughput plot. The x axis is logarithmic (base 2) with a tick at every
 * measured length; the y axis is logarithmic when the figures span more than 20×, so that a slow
 * fallback and a fast kernel are both readable. Each line is labelled at its right end; labels that
 * would overlap are pushed apart (positions are computed here, where the scales are known).
 */
export function plotSpec(points: readonly PlotPoint[], opts: PlotOptions): VegaLiteSpec {
  if (points.length === 0) throw new RangeError('points: expected at least one measured point, got none');
  const seqs = [...new Set(points.map((p) => p.seq))].sort((a, b) => a - b);
  const masks = [...new Set(points.map((p) => p.mask))];
  const series = [...new Set(points.map((p) => p.series))];
  const yScale = throughputScale(points.map((p) => p.gflops));
  const xLo = Math.log2(seqs[0] / 1.5);
  const xHi = xLo + (Math.log2(seqs[seqs.length - 1]) - xLo) / POINTS_SHARE;
  const x = {
    field: 'seq', type: 'quantitative', title: 'sequence length S (tokens)',
    scale: { type: 'log', base: 2, domain: [2 ** xLo, 2 ** xHi] },
    axis: { values: seqs, format: 'd', grid: true },
  };
  const yTitle = `${opts.yTitle ?? 'throughput (GFLOP/s)'}${yScale.type === 'log' ? ', log scale' : ''}`;
  const y = {
    field: 'gflops', type: 'quantitative', title: yTitle,
    scale: { type: yScale.type, domain: yScale.domain }, axis: { values: yScale.ticks },
  };
  const legend = { orient: 'bottom', columns: 3, labelLimit: 320 };
  const color = {
    field: 'series', type: 'nominal', title: 'implementation', sort: series, legend,
    scale: { domain: series, range: series.map((_, i) => PALETTE[i % PALETTE.length]) },
  };
  const shape = { field: 'series', type: 'nominal', sort: series, legend };
  const rows = [
    ...points.map((p) => ({ ...p, kind: 'point' })),
    ...lineLabels(points, masks, yScale).map((l) => ({ ...l, kind: 'label' })),
  ];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: opts.title, subtitle: opts.subtitle ?? [], anchor: 'start', fontSize: 15, subtitleFontSize: 11, offset: 14 },
    background: 'white',
    padding: 12,
    bounds: 'flush',
    spacing: 36,
    data: { values: rows },
    facet: { field: 'mask', type: 'nominal', title: null, sort: masks, header: { labelFontSize: 13, labelFontWeight: 'bold' } },
    columns: Math.min(3, masks.length),
    spec: {
      width: PANEL_WIDTH,
      height: PANEL_HEIGHT,
      layer: [
        {
          transform: [{ filter: "datum.kind === 'point'" }],
          mark: { type: 'line', point: { size: 45, filled: true }, strokeWidth: 2 },
          encoding: { x, y, color, shape },
        },
        {
          transform: [{ filter: "datum.kind === 'label'" }],
          mark: { type: 'text', align: 'left', baseline: 'middle', dx: 8, fontSize: 10 },
          encoding: { x, y, color, text: { field: 'series', type: 'nominal' } },
        },
      ],
    },
    config: { font: FONT, axis: { labelFontSize: 10, titleFontSize: 11 }, legend: { labelFontSize: 11, titleFontSize: 11 } },
  };
}

interface YScale {
  type: 'log' | 'linear';
  domain: [number, number];
  /** Tick (and grid line) values: 1, 2, 5 × 10^k. */
  ticks: number[];
  /** Pixels from the panel's top for a value. */
  pixel(v: number): number;
}

/** Log from 10^floor to 10^ceil when the values span over 20×, else linear from 0 with 10 % headroom. */
function throughputScale(values: number[]): YScale {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  if (lo > 0 && hi / lo > 20) {
    const d0 = 10 ** Math.floor(Math.log10(lo));
    const d1 = 10 ** Math.ceil(Math.log10(hi));
    const span = Math.log(d1) - Math.log(d0);
    const ticks: number[] = [];
    for (let p = d0; p <= d1 * 1.0001; p *= 10) for (const m of [1, 2, 5]) if (m * p <= d1 * 1.0001) ticks.push(m * p);
    return { type: 'log', domain: [d0, d1], ticks, pixel: (v) => PANEL_HEIGHT * (1 - (Math.log(v) - Math.log(d0)) / span) };
  }
  const top = niceCeil(1.1 * Math.max(hi, 1e-9));
  const ticks = [0, 0.2, 0.4, 0.6, 0.8, 1].map((f) => Number((f * top).toPrecision(6)));
  return { type: 'linear', domain: [0, top], ticks, pixel: (v) => PANEL_HEIGHT * (1 - v / top) };
}

/** The smallest 1, 2 or 5 × 10^k at or above x. */
function niceCeil(x: number): number {
  const p = 10 ** Math.floor(Math.log10(x));
  return ([1, 2, 5, 10].find((m) => m * p >= x) ?? 10) * p;
}

/** One label per line and panel at the line's last point, moved apart vertically where they would overlap. */
function lineLabels(points: readonly PlotPoint[], masks: string[], yScale: YScale): PlotPoint[] {
  const out: PlotPoint[] = [];
  for (const mask of masks) {
    const last = new Map<string, PlotPoint>();
    for (const p of points) {
      if (p.mask !== mask) continue;
      const seen = last.get(p.series);
      if (!seen || p.seq > seen.seq) last.set(p.series, p);
    }
    // Greedy from the top: each label at its point, or LABEL_GAP below the one above it.
    const labels = [...last.values()].map((p) => ({ p, px: yScale.pixel(p.gflops) })).sort((a, b) => a.px - b.px);
    for (let i = 1; i < labels.length; i++) labels[i].px = Math.max(labels[i].px, labels[i - 1].px + LABEL_GAP);
    // Then back up from the bottom edge if the stack ran past it.
    const overflow = labels.length ? labels[labels.length - 1].px - PANEL_HEIGHT : 0;
    if (overflow > 0) for (const l of labels) l.px -= overflow;
    for (const { p, px } of labels) out.push({ ...p, gflops: valueAt(yScale, px) });
  }
  return out;
}

/** The value the scale puts at pixel `px` (inverse of yScale.pixel). */
function valueAt(yScale: YScale, px: number): number {
  const t = 1 - px / PANEL_HEIGHT;
  const [d0, d1] = yScale.domain;
  return yScale.type === 'log' ? Math.exp(Math.log(d0) + t * (Math.log(d1) - Math.log(d0))) : d0 + t * (d1 - d0);
}

// ---- rendering -------------------------------------------------------------------------------

/** How to install what a plot needs, for the error when it is missing. */
export const PLOT_PACKAGES_HINT = 'npm install --no-save vega vega-lite  (Node 20 or later)';

interface VegaModules {
  vega: {
    parse(spec: unknown): unknown;
    View: new (runtime: unknown, opts: { renderer: string }) => { toSVG(): Promise<string>; finalize(): void };
  };
  vegaLite: { compile(spec: unknown): { spec: unknown } };
}

let loaded: Promise<VegaModules> | undefined;

/** A real dynamic import, which TypeScript's CommonJS output would otherwise turn into require(). */
const importModule = new Function('url', 'return import(url)') as (url: string) => Promise<unknown>;

/** Imports an optional ESM package by name, or fails saying how to install it. */
export async function importPackage(name: string): Promise<unknown> {
  let resolved: string;
  try {
    resolved = require.resolve(name);
  } catch {
    throw new Error(`plotting needs the optional package '${name}', which is not installed; install it with: ${PLOT_PACKAGES_HINT}`);
  }
  return importModule(pathToFileURL(resolved).href);
}

/**
 * Loads vega and vega-lite (once). Call it before a long benchmark so a missing package fails the
 * run at its start, not after the measurements.
 */
export function loadPlotting(): Promise<VegaModules> {
  loaded ??= Promise.all([importPackage('vega'), importPackage('vega-lite')]).then(
    ([vega, vegaLite]) => ({ vega, vegaLite }) as VegaModules,
  );
  return loaded;
}

/** The plot as a standalone SVG document. */
export async function renderPlot(points: readonly PlotPoint[], opts: PlotOptions): Promise<string> {
  const spec = plotSpec(points, opts);
  const { vega, vegaLite } = await loadPlotting();
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return `${await view.toSVG()}\n`;
  } finally {
    view.finalize();
  }
}

/** Renders the plot and writes it to `file`. */
export async function writePlot(file: string, points: readonly PlotPoint[], opts: PlotOptions): Promise<void> {
  writeFileSync(file, await renderPlot(points, opts));
}
