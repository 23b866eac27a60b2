// The loss curve as an SVG: a Vega-Lite chart (the per-step loss, its centred mean, and labelled
// reference levels) rendered by Vega's headless renderer. Both are devDependencies of the repository.

export interface LossPlot {
  title: string;
  /** A smaller line under the title (the run's settings). */
  subtitle?: string;
  /** [step, loss] per training step. */
  losses: readonly (readonly [number, number])[];
  /** Horizontal reference levels, e.g. the uniform baseline, each drawn dashed with its label. */
  references: readonly { name: string; y: number; color: string }[];
}

/** Centred mean over up to `window` steps, narrower at the ends so that it stays centred (no lag). */
export function centredMean(values: readonly number[], window = 11): number[] {
  const reach = Math.floor(window / 2);
  return values.map((_, i) => {
    const half = Math.min(reach, i, values.length - 1 - i);
    let sum = 0;
    for (let j = i - half; j <= i + half; j++) sum += values[j];
    return sum / (2 * half + 1);
  });
}

const RAW = 'loss per step';
const MEAN = 'centred mean over 11 steps';

/** The Vega-Lite spec of the loss plot (plain data; rendered by renderLossSvg). */
export function lossSpec(p: LossPlot): Record<string, unknown> {
  if (p.losses.length === 0) throw new RangeError('losses: expected at least one step, got none');
  const mean = centredMean(p.losses.map((l) => l[1]));
  const lastStep = p.losses[p.losses.length - 1][0];
  const x = { field: 'step', type: 'quantitative', title: 'training step', scale: { domainMin: 0, nice: true } };
  const y = { field: 'loss', type: 'quantitative', title: 'cross-entropy (nats per character)', scale: { domainMin: 0, nice: true } };
  // One legend for both lines: each layer names its series as a constant colour datum.
  const color = (series: string) => ({
    datum: series, type: 'nominal', title: null,
    scale: { domain: [RAW, MEAN], range: ['#9dbfe3', '#1f4e8c'] },
  });
  const line = (values: { step: number; loss: number }[], series: string, width: number) => ({
    data: { values }, mark: { type: 'line', strokeWidth: width }, encoding: { x, y, color: color(series) },
  });
  // Reference levels: a dashed rule each, labelled at the right end, above the line or (for the
  // lowest, which the loss curve approaches from above) below it.
  const lowest = Math.min(...p.references.map((r) => r.y));
  const refs = p.references.map((r) => ({
    ...r, step: lastStep, label: `${r.name} = ${r.y.toFixed(3)}`, below: r.y === lowest && p.references.length > 1,
  }));
  const refLabel = (below: boolean) => ({
    data: { values: refs.filter((r) => r.below === below) },
    mark: { type: 'text', align: 'right', baseline: below ? 'top' : 'bottom', dy: below ? 4 : -4, fontSize: 12 },
    encoding: {
      x: { field: 'step', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' },
      text: { field: 'label', type: 'nominal' }, color: { field: 'color', type: 'nominal', scale: null },
    },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    // Short lines: without a canvas, Vega estimates text widths generously and a long title widens the SVG.
    title: { text: p.title, subtitle: p.subtitle ?? '', anchor: 'start', fontSize: 15, subtitleFontSize: 12 },
    width: 640,
    height: 360,
    padding: 12,
    background: 'white',
    layer: [
      line(p.losses.map(([step, loss]) => ({ step, loss })), RAW, 1),
      line(p.losses.map(([step], i) => ({ step, loss: mean[i] })), MEAN, 2.5),
      {
        data: { values: refs },
        mark: { type: 'rule', strokeDash: [7, 4], strokeWidth: 1.5 },
        encoding: { y: { field: 'y', type: 'quantitative' }, color: { field: 'color', type: 'nominal', scale: null } },
      },
      refLabel(false),
      refLabel(true),
    ],
    config: {
      font: 'Helvetica, Arial, sans-serif',
      axis: { labelFontSize: 11, titleFontSize: 12 },
      legend: { orient: 'bottom', symbolType: 'stroke', symbolStrokeWidth: 2.5, labelFontSize: 12, labelLimit: 400 },
    },
  };
}

/** Renders the plot to a standalone SVG document. */
export async function renderLossSvg(p: LossPlot): Promise<string> {
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
  const spec = vegaLite.compile(lossSpec(p) as unknown as Parameters<typeof vegaLite.compile>[0]).spec;
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  try {
    return `${await view.toSVG()}\n`;
  } finally {
    view.finalize();
  }
}
