// A worker that starts a long forward and a long backward on a native backend, says so, and is then
// terminated by the test while both run (test/reliability.test.ts). The tensors' data arrive from the
// test on SharedArrayBuffers, so a worker costs no data generation. Plain JS over the compiled package
// (npm test compiles it first): worker threads do not inherit the test runner's TypeScript loader.
const { parentPort, workerData } = require('node:worker_threads');
const { makeSplashMHA, FullMask, tensor } = require('../../dist/index.js');

const { backend, heads: h, seq: s, dim: d, data } = workerData;
const kernel = makeSplashMHA(new FullMask([s, s]), { backend, saveResiduals: true });
const [q, k, v, out, dout] = data.slice(0, 5).map((x) => tensor(x, [h, s, d]));
const logsumexp = tensor(data[5].subarray(0, h * s), [h, s]);
// Both calls stay in flight until the worker is terminated; their results are never used.
kernel.forward(q, k, v).catch(() => {});
kernel.backward({ q, k, v, out, logsumexp, dout }).catch(() => {});
parentPort.postMessage('running');
