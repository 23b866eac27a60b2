// npm run fuzz -- [--calls N] [--masks N] [--seed S] [--seeds K]: the fuzzers for longer than the test
// suite runs them, over K seeds from S. Prints each seed's outcome counts; exits 1 on the first failure.
import { loadNative } from '../../lib/backends/native';
import { fuzzAddon, type FuzzedAddon } from './addon';
import { fuzzProcessMask } from './process-mask';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`--${name}: expected a non-negative integer, got ${process.argv[i + 1]}`);
  return value;
}

async function main(): Promise<void> {
  const calls = option('calls', 100_000);
  const masks = option('masks', 100_000);
  const first = option('seed', 1);
  const seeds = option('seeds', 1);
  const addon = loadNative().addon as unknown as FuzzedAddon | null;
  if (addon === null && calls > 0) throw new Error(`no native addon: ${loadNative().error}`);
  for (let seed = first; seed < first + seeds; seed++) {
    const t0 = performance.now();
    const stats = calls > 0 ? await fuzzAddon(addon as FuzzedAddon, seed, calls) : null;
    fuzzProcessMask(seed, masks);
    console.log(`seed ${seed}: ${calls} calls ${JSON.stringify(stats)}, ${masks} masks, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
