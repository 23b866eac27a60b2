// The f32 forward of the cpu backend against onnxruntime-node, full and causal, on the sizes:
// `npx tsx bench/cpu-vs-ort.ts [--sizes 512,1024,2048,4096,8192] [--rounds 3] [--repeats 9]`.
// Each round times splash (bench/cpu-quick.ts, one process per size) and ORT (bench/peers/ort-peer.ts,
// both of its operators), alternating which goes first; the table gives each side's median over the
// rounds of its per-round medians, and the ratios. H = 8, D = 128, 2 ORT threads; ORT must already be
// installed in bench/peers (npm run bench -- ort installs it).

import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { flag } from './args';
import { median } from './timing';

function runJson(script: string, args: string[]): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, script), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${script} failed:\n${r.stderr}`);
  return r.stdout;
}

const sizes = (flag('sizes') ?? '512,1024,2048,4096,8192').split(',').map(Number);
const rounds = Number(flag('rounds') ?? 3);
const repeats = flag('repeats') ?? '9';
const ms = new Map<string, number[]>(); // "splash full 1024", "mha causal 1024", …
const add = (k: string, v: number) => ms.set(k, [...(ms.get(k) ?? []), v]);

function splash(): void {
  for (const s of sizes) {
    const out = runJson('cpu-quick.ts', ['--seq', String(s), '--dtypes', 'float32', '--passes', 'fwd', '--masks', 'full,causal',
      '--repeats', repeats, '--json']);
    for (const line of out.split('\n').filter((l) => l.startsWith('{'))) {
      const r = JSON.parse(line) as { mask: string; ms: number };
      add(`splash ${r.mask} ${s}`, r.ms);
    }
  }
}

function ort(): void {
  const out = runJson(path.join('peers', 'ort-peer.ts'), ['--sizes', sizes.join(','), '--json']);
  const report = JSON.parse(out.trim().split('\n').pop() as string) as { rows: { op: string; mask: string; seq: number; ms: number }[] };
  for (const r of report.rows) add(`${r.op} ${r.mask} ${r.seq}`, r.ms);
}

for (let round = 0; round < rounds; round++) {
  if (round % 2 === 0) { splash(); ort(); } else { ort(); splash(); }
  process.stderr.write(`round ${round + 1} of ${rounds} done\n`);
}

const m = (k: string) => median(ms.get(k) ?? [NaN]);
console.log(`f32 forward, H = 8, D = 128; medians of ${rounds} alternating rounds (ms); ratio = ORT time / splash time`);
console.log('S'.padStart(6) + ' | splash full | causal | causal/full | ORT mha full | mha causal | attention full | attention causal |' +
  ' full vs mha | full vs attention | causal vs mha | causal vs attention');
for (const s of sizes) {
  const [sf, sc, mf, mc, af, ac] = [m(`splash full ${s}`), m(`splash causal ${s}`), m(`mha full ${s}`), m(`mha causal ${s}`),
    m(`attention full ${s}`), m(`attention causal ${s}`)];
  const f = (x: number) => x.toFixed(1);
  const r = (x: number) => `${x.toFixed(2)}x`;
  console.log(`${String(s).padStart(6)} | ${f(sf)} | ${f(sc)} | ${(sc / sf).toFixed(2)} | ${f(mf)} | ${f(mc)} | ${f(af)} | ${f(ac)} |` +
    ` ${r(mf / sf)} | ${r(af / sf)} | ${r(mc / sc)} | ${r(ac / sc)}`);
}
