// Two builds of the native addon side by side: `npx tsx bench/cpu-ab.ts --base OLD.node [--new NEW.node]
// [--rounds 4] [cpu-quick options…]`. Each round runs bench/cpu-quick.ts once per build, in its own
// process, alternating which build goes first (A B, B A, …) so that a drift of the machine's load
// weighs on both alike; the table gives each build's median over the rounds and their ratio. Without
// --new the second build is the one the package loads by itself.

import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { flag } from './args';
import { median } from './timing';

interface Row {
  dtype: string;
  mask: string;
  pass: string;
  seq: number;
  heads: number;
  ms: number;
  gflops: number;
}

const base = flag('base');
if (!base) {
  console.error('usage: npx tsx bench/cpu-ab.ts --base OLD.node [--new NEW.node] [--rounds 4] [cpu-quick options]');
  process.exit(2);
}
const fresh = flag('new');
const rounds = Number(flag('rounds') ?? 4);
// Everything but our own options goes to cpu-quick.
const own = new Set(['--base', '--new', '--rounds']);
const passOn: string[] = [];
for (let i = 2; i < process.argv.length; i++) {
  if (own.has(process.argv[i])) i++;
  else passOn.push(process.argv[i]);
}

function runBuild(addon: string | undefined): Row[] {
  const env = { ...process.env };
  if (addon) env.SPLASH_ADDON_PATH = path.resolve(addon);
  else delete env.SPLASH_ADDON_PATH;
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'cpu-quick.ts'), ...passOn, '--json'],
    { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cpu-quick failed with ${addon ?? 'the default addon'}:\n${r.stderr}`);
  return r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Row);
}

const key = (r: Row) => `${r.pass} ${r.dtype} ${r.mask} H=${r.heads} S=${r.seq}`;
const times = new Map<string, { base: number[]; fresh: number[] }>();
for (let round = 0; round < rounds; round++) {
  const order: ('base' | 'fresh')[] = round % 2 === 0 ? ['base', 'fresh'] : ['fresh', 'base'];
  for (const which of order) {
    for (const row of runBuild(which === 'base' ? base : fresh)) {
      const t = times.get(key(row)) ?? { base: [], fresh: [] };
      t[which].push(row.ms);
      times.set(key(row), t);
    }
  }
  process.stderr.write(`round ${round + 1} of ${rounds} done\n`);
}

console.log(`base: ${base}; new: ${fresh ?? 'the package\'s own addon'}; ${rounds} rounds, alternating order`);
console.log('case'.padEnd(40) + 'base ms'.padStart(10) + 'new ms'.padStart(10) + 'new/base'.padStart(10) + '   per round (base | new)');
for (const [k, t] of times) {
  const b = median(t.base);
  const n = median(t.fresh);
  console.log(k.padEnd(40) + b.toFixed(2).padStart(10) + n.toFixed(2).padStart(10) + (n / b).toFixed(3).padStart(10) +
    `   ${t.base.map((x) => x.toFixed(1)).join(' ')} | ${t.fresh.map((x) => x.toFixed(1)).join(' ')}`);
}
