// The plot of a CPU benchmark report: forward throughput against sequence length, one panel per
// mask, splash's backends (each dtype) beside onnxruntime-node's two operators. Used by
// `npm run bench -- cpu --plot FILE` and, from a saved cpu.json, by `npm run bench -- plot`.

import { writePlot, type PlotPoint } from '../lib/bench-plot';
import type { Report } from './cpu';

const DTYPE_SHORT: Record<string, string> = { float32: 'f32', bfloat16: 'bf16', float16: 'f16' };
const PEER_OPS: Record<string, string> = { mha: 'MHA', attention: 'Attention' };

/** Forward rows only: the peer has no backward, and one pass keeps the panels readable. */
export function cpuPlotPoints(report: Report): PlotPoint[] {
  const splash = [...report.rows, ...report.js]
    .filter((r) => r.pass === 'fwd')
    .map((r) => ({ series: `splash ${r.backend} ${DTYPE_SHORT[r.dtype] ?? r.dtype}`, mask: r.mask, seq: r.seq, gflops: r.gflops }));
  const peer = (report.peer.result?.rows ?? []).map((r) => ({
    series: `ORT ${PEER_OPS[r.op] ?? r.op} f32`, mask: r.mask, seq: r.seq, gflops: r.gflops,
  }));
  return [...splash, ...peer];
}

/** Says how many plotted rows ran with fewer busy cores than threads, i.e. while other work took CPUs. */
function disturbance(report: Report): string {
  const splash = [...report.rows, ...report.js].filter((r) => r.pass === 'fwd');
  const peerRows = report.peer.result?.rows ?? [];
  const threads = report.peer.result?.threads ?? 1;
  const low = splash.filter((r) => r.disturbed).length + peerRows.filter((r) => r.cores < 0.85 * threads).length;
  const total = splash.length + peerRows.length;
  return low === 0
    ? 'Every point kept its threads busy (no other load seen).'
    : `${low} of ${total} points ran while other work held CPUs (fewer busy cores than threads): those figures are low.`;
}

export async function writeCpuPlot(file: string, report: Report): Promise<void> {
  const { heads, dim } = report.grid;
  const peer = report.peer.result;
  const day = report.date.slice(0, 10);
  // Short lines: vega sizes the picture to its widest text, and a README shrinks a wide picture.
  const subtitle = [
    `H = ${heads}, D = ${dim}, forward pass; each point is the median of its timed runs after a warm-up.`,
    'GFLOP/s = 4·D·H·(allowed (q, kv) pairs) / time: work a kernel skips earns nothing.',
    ...(peer
      ? [
        `ORT = onnxruntime-node ${peer.ortVersion}, CPU EP, ${peer.threads} threads, credited with the same useful flops;`,
        'MHA = com.microsoft MultiHeadAttention, Attention = the ONNX Attention operator.',
      ]
      : [`onnxruntime-node: not run (${report.peer.reason ?? 'no result'}).`]),
    `${report.machine.cpu}, ${report.machine.cpus} CPUs, node ${report.machine.node}, ${day}.`,
    disturbance(report),
  ];
  await writePlot(file, cpuPlotPoints(report), { title: 'Forward throughput by sequence length', subtitle, yTitle: 'forward GFLOP/s' });
}
