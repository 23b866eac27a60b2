// The fuzzers, on a short budget (npm run fuzz runs them longer): random calls across the N-API
// boundary, and processMask against toDense() on 10,000 random masks. SPLASH_FUZZ_SEED picks another
// seed to reproduce a report from a longer run.
import assert from 'node:assert/strict';

import { loadNative } from '../lib/backends/native';
import { fuzzAddon, type FuzzedAddon } from './fuzz/addon';
import { fuzzProcessMask } from './fuzz/process-mask';

const seed = Number(process.env.SPLASH_FUZZ_SEED ?? 20261130);
const addon = loadNative().addon as unknown as FuzzedAddon | null;
const small = process.env.SPLASH_TEST_SCALE === 'small';

describe('fuzzing', function () {
  this.timeout(300_000);

  (addon ? it : it.skip)(`the addon: ${small ? 800 : 3000} random calls, each sound or a TypeError / RangeError (seed ${seed})`, async () => {
    const stats = await fuzzAddon(addon as FuzzedAddon, seed, small ? 800 : 3000);
    // The mix must reach every outcome, or the fuzzer has stopped testing something.
    for (const [outcome, n] of Object.entries(stats)) {
      if (outcome !== 'runtimeErrors') assert.ok(n > 50, `${outcome}: only ${n} of the calls`);
    }
  });

  it(`processMask: 10000 random masks against toDense() (seed ${seed})`, () => {
    fuzzProcessMask(seed, 10_000);
  });
});
