// A small SVG line chart for the loss curve: series of (x, y) points and labelled horizontal
// reference lines, linear axes with round tick values, axis titles and a legend. No dependencies.

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  color: string;
  width?: number;
  opacity?: number;
}

export interface ReferenceLine {
  name: string;
  y: number;
  color: string;
  dash: string;
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  references?: ReferenceLine[];
  width?: number;
  height?: number;
}

/** Round tick values (1, 2 or 5 × a power of ten apart), about `count` of them, from at or below lo to at or above hi. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  return Array.from({ length: last - first + 1 }, (_, i) => Number(((first + i) * step).toPrecision(12)));
}

const escape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function lineChartSvg(c: Chart): string {
  const width = c.width ?? 800;
  const height = c.height ?? 480;
  const pad = { left: 72, right: 24, top: 48, bottom: 60 };
  const refs = c.references ?? [];
  const xs = c.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = [...c.series.flatMap((s) => s.points.map((p) => p[1])), ...refs.map((r) => r.y)];
  if (xs.length === 0) throw new RangeError('series: expected at least one point, got none');
  const xTicks = niceTicks(Math.min(0, ...xs), Math.max(...xs));
  const yTicks = niceTicks(Math.min(0, ...ys), Math.max(...ys));
  const [x0, x1] = [xTicks[0], xTicks[xTicks.length - 1]];
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const px = (x: number): number => pad.left + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * plotW;
  const py = (y: number): number => pad.top + (1 - (y1 === y0 ? 0.5 : (y - y0) / (y1 - y0))) * plotH;
  const f = (v: number): string => v.toFixed(1);

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="26" text-anchor="middle" font-size="16">${escape(c.title)}</text>`,
  ];
  for (const t of xTicks) {
    out.push(`<line x1="${f(px(t))}" y1="${pad.top}" x2="${f(px(t))}" y2="${pad.top + plotH}" stroke="#e5e5e5"/>`,
      `<text x="${f(px(t))}" y="${pad.top + plotH + 18}" text-anchor="middle">${t}</text>`);
  }
  for (const t of yTicks) {
    out.push(`<line x1="${pad.left}" y1="${f(py(t))}" x2="${pad.left + plotW}" y2="${f(py(t))}" stroke="#e5e5e5"/>`,
      `<text x="${pad.left - 8}" y="${f(py(t) + 4)}" text-anchor="end">${t}</text>`);
  }
  out.push(`<rect x="${pad.left}" y="${pad.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`,
    `<text x="${pad.left + plotW / 2}" y="${height - 16}" text-anchor="middle">${escape(c.xLabel)}</text>`,
    `<text transform="translate(20 ${pad.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(c.yLabel)}</text>`);
  for (const r of refs) {
    out.push(`<line x1="${pad.left}" y1="${f(py(r.y))}" x2="${pad.left + plotW}" y2="${f(py(r.y))}" stroke="${r.color}" stroke-dasharray="${r.dash}" stroke-width="1.5"/>`);
  }
  for (const s of c.series) {
    const d = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${f(px(p[0]))} ${f(py(p[1]))}`).join('');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.5}" stroke-opacity="${s.opacity ?? 1}"/>`);
  }
  // Legend, top right inside the plot: series as solid lines, references with their dashes.
  const entries = [
    ...c.series.map((s) => ({ name: s.name, color: s.color, dash: '', width: s.width ?? 1.5 })),
    ...refs.map((r) => ({ name: `${r.name} (${Number(r.y.toFixed(3))})`, color: r.color, dash: r.dash, width: 1.5 })),
  ];
  const lx = pad.left + plotW - 300;
  out.push(`<rect x="${lx - 8}" y="${pad.top + 8}" width="292" height="${entries.length * 20 + 8}" fill="white" fill-opacity="0.9" stroke="#ccc"/>`);
  entries.forEach((e, i) => {
    const y = pad.top + 24 + i * 20;
    out.push(`<line x1="${lx}" y1="${y - 4}" x2="${lx + 28}" y2="${y - 4}" stroke="${e.color}" stroke-width="${e.width}"${e.dash ? ` stroke-dasharray="${e.dash}"` : ''}/>`,
      `<text x="${lx + 36}" y="${y}">${escape(e.name)}</text>`);
  });
  out.push('</svg>', '');
  return out.join('\n');
}
