// Measures, in a fresh process, how long the event loop can stall while two async CPU forwards run,
// next to how long one synchronous forward holds it (test/reliability.test.ts). A fresh process keeps
// the test runner's own heap, and its garbage collections, out of the figure. Prints one JSON line.
const { makeSplashMHA, FullMask, fromFloat32 } = require('../../dist/index.js');
const { randomNormal } = require('../../dist/random.js');
const { loopGaps } = require('./loop-gaps.js');

const [h, s, d] = [8, 4096, 128];
const kernel = makeSplashMHA(new FullMask([s, s]), { backend: 'cpu' });
const [q, k, v] = [140, 141, 142].map((seed) => fromFloat32(randomNormal(h * s * d, seed, 0.3), [h, s, d], 'float32'));

async function main() {
  // The first calls also map fresh pages for their input copies, which later calls reuse.
  await Promise.all([kernel.forward(q, k, v), kernel.forward(q, k, v)]);
  let t0 = performance.now();
  kernel.forwardSync(q, k, v);
  const syncMs = performance.now() - t0;
  let asyncMs = 0;
  const gaps = await loopGaps(async () => {
    t0 = performance.now();
    await Promise.all([kernel.forward(q, k, v), kernel.forward(q, k, v)]);
    asyncMs = performance.now() - t0;
  });
  const stallMs = Math.max(...gaps);
  process.stdout.write(`${JSON.stringify({ stallMs, syncMs, asyncMs })}\n`);
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
