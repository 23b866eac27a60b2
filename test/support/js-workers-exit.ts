// Makes async js-backend calls on worker threads and then leaves nothing to do: the process must exit
// on its own (test/js-backend.test.ts runs it with a timeout). Prints one line.
import { CausalMask, fromFloat32, makeSplashMHA } from '../../lib/index';
import { configureJsWorkers } from '../../lib/backends/js-pool';
import { randomNormal } from '../../lib/random';

configureJsWorkers({ workers: 2, minWork: 0 });
const [h, s, d] = [2, 256, 32];
const [q, k, v] = [1, 2, 3].map((seed) => fromFloat32(randomNormal(h * s * d, seed, 0.3), [h, s, d], 'float32'));
const kernel = makeSplashMHA(new CausalMask([s, s]), { backend: 'js' });
void Promise.all([kernel.forward(q, k, v), kernel.forward(q, k, v)]).then(() => {
  process.stdout.write(`done on ${configureJsWorkers({}).workers} workers\n`);
});
