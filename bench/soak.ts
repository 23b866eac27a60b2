// npm run bench -- soak [--calls 10000] [--in-flight 16] [--backend cpu] [--json]
//
// Many forward + backward calls through the async path with a fixed number in flight, as a server would
// make them, reporting memory before, during and after: resident set size, V8 heap and external memory
// (array buffers included). Per-call leaks show as growth that keeps rising with the call count; the
// run prints RSS at each tenth so the trend is visible, not only the two ends.

import { CausalMask, fromFloat32, makeSplashMHA, type Tensor } from '../lib/index';
import { randomNormal } from '../lib/random';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

interface MemoryRow {
  calls: number;
  rssMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
  arrayBuffersMiB: number;
}

function memory(calls: number): MemoryRow {
  globalThis.gc?.();
  const m = process.memoryUsage();
  const mib = (x: number) => Math.round((x / 2 ** 20) * 10) / 10;
  return { calls, rssMiB: mib(m.rss), heapUsedMiB: mib(m.heapUsed), externalMiB: mib(m.external), arrayBuffersMiB: mib(m.arrayBuffers) };
}

export async function soak(opts: { calls: number; inFlight: number; backend: string; heads: number; seq: number; dim: number },
  onRow: (r: MemoryRow) => void = () => {}): Promise<{ rows: MemoryRow[]; seconds: number }> {
  const { calls, inFlight, heads: h, seq: s, dim: d } = opts;
  const t = (seed: number): Tensor => fromFloat32(randomNormal(h * s * d, seed, 0.3), [h, s, d], 'float32');
  const [q, k, v, dout] = [1, 2, 3, 4].map(t);
  const kernel = makeSplashMHA(new CausalMask([s, s]), { backend: opts.backend as 'cpu', saveResiduals: true });
  const rows: MemoryRow[] = [];
  const mark = (n: number) => { const r = memory(n); rows.push(r); onRow(r); };
  // Warm-up, so that the thread pool, the dispatcher and V8's code are in place before the first figure.
  for (let i = 0; i < 20; i++) await (await kernel.vjp(q, k, v)).backward(dout);
  mark(0);
  const t0 = performance.now();
  let started = 0;
  let done = 0;
  const step = Math.max(1, Math.floor(calls / 10));
  async function lane(): Promise<void> {
    while (started < calls) {
      started++;
      const { backward } = await kernel.vjp(q, k, v);
      await backward(dout);
      done++;
      if (done % step === 0) mark(done);
    }
  }
  await Promise.all(Array.from({ length: inFlight }, lane));
  const seconds = (performance.now() - t0) / 1000;
  if (rows[rows.length - 1].calls !== done) mark(done);
  return { rows, seconds };
}

async function main(): Promise<void> {
  const calls = Number(option('calls', '10000'));
  const inFlight = Number(option('in-flight', '16'));
  const backend = option('backend', 'cpu');
  const json = process.argv.includes('--json');
  const shape = { heads: 2, seq: 128, dim: 32 };
  const { rows, seconds } = await soak({ calls, inFlight, backend, ...shape }, json ? undefined : (r) =>
    console.log(`${String(r.calls).padStart(7)} calls  rss ${r.rssMiB} MiB  heap ${r.heapUsedMiB} MiB  external ${r.externalMiB} MiB  array buffers ${r.arrayBuffersMiB} MiB`));
  const first = rows[0];
  const last = rows[rows.length - 1];
  const summary = {
    backend, calls, inFlight, ...shape, seconds: Math.round(seconds * 10) / 10,
    rssGrowthMiB: Math.round((last.rssMiB - first.rssMiB) * 10) / 10,
    heapGrowthMiB: Math.round((last.heapUsedMiB - first.heapUsedMiB) * 10) / 10,
    externalGrowthMiB: Math.round((last.externalMiB - first.externalMiB) * 10) / 10,
    rows,
  };
  if (json) console.log(JSON.stringify(summary));
  else console.log(`${calls} forward+backward calls (${shape.heads}x${shape.seq}x${shape.dim}, causal, ${inFlight} in flight) in ${summary.seconds} s; ` +
    `RSS ${summary.rssGrowthMiB >= 0 ? '+' : ''}${summary.rssGrowthMiB} MiB, heap ${summary.heapGrowthMiB} MiB, external ${summary.externalGrowthMiB} MiB`);
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
